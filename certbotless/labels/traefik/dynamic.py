"""Traefik dynamic-configuration files (YAML or TOML, as Traefik's file provider reads them) →
the middlewares that routers name `name@file`, in the model labels define them in.

Given to the sidecar as Swarm configs and named in CERTBOTLESS_TRAEFIK_DYNAMIC_CONFIG. Only
`http.middlewares`, `http.serversTransports` and `tls.options` are read; a file that cannot be
read refuses every router using `@file` (never served without a middleware or client
certificates that may guard it), and nothing else.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml

from certbotless.labels.traefik.middlewares.options import (
    FileMiddlewares,
    Middleware,
    ReadTransport,
)
from certbotless.labels.traefik.servers_transport import parse_servers_transports
from certbotless.labels.traefik.tls_options import TlsOptions, parse_tls_options

MAX_FILE_BYTES = 1024 * 1024
SETTING = "CERTBOTLESS_TRAEFIK_DYNAMIC_CONFIG"


class DynamicConfigError(ValueError):
    pass


def read_dynamic_config(paths: Iterable[Path]) -> FileMiddlewares:
    """The middlewares and TLS options of every file (two files defining one name: refused,
    as Traefik refuses such duplicates; the problem names the name)."""
    paths = tuple(paths)
    if not paths:
        return FileMiddlewares()
    sources = ", ".join(str(p) for p in paths)
    definitions: dict[str, Middleware] = {}
    tls_options: dict[str, TlsOptions] = {}
    transports: dict[str, ReadTransport | str] = {}
    try:
        for path in paths:
            try:
                data = path.read_bytes()
            except OSError as error:
                raise DynamicConfigError(f"cannot be read ({error.strerror})") from None
            if len(data) > MAX_FILE_BYTES:
                raise DynamicConfigError(f"is over {MAX_FILE_BYTES} bytes")
            document = parse_document(data.decode("utf-8", "replace"), path)
            found = middlewares_of(document, path)
            options = parse_tls_options(_section(document, "tls", "options"), path)
            servers = parse_servers_transports(
                _section(document, "http", "serversTransports"), path
            )
            twice = sorted(set(found) & set(definitions) | set(options) & set(tls_options)
                           | set(servers) & set(transports))  # fmt: skip
            if twice:
                raise DynamicConfigError(f"defines {', '.join(twice)} again (another file "
                                         "already did); Traefik refuses that too")  # fmt: skip
            definitions.update(found)
            tls_options.update(options)
            transports.update(servers)
    except DynamicConfigError as error:
        why = f"the Traefik dynamic configuration {path} {error}"
        return FileMiddlewares(sources=sources, error=f"{why}; fix it ({SETTING})")
    return FileMiddlewares(definitions, tls_options, transports, sources)


def parse_dynamic_config(text: str, path: Path) -> dict[str, Middleware]:
    """`http.middlewares` of one file: TOML when its name ends in .toml, YAML otherwise."""
    return middlewares_of(parse_document(text, path), path)


def parse_document(text: str, path: Path) -> object:
    """One file's document: TOML when its name ends in .toml, YAML otherwise."""
    try:
        if path.suffix.lower() == ".toml":
            document: object = tomllib.loads(text)
        else:
            document = yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DynamicConfigError(f"is not valid {path.suffix.lstrip('.') or 'YAML'}: "
                                 f"{first_line}") from None  # fmt: skip
    return document


def _section(document: object, top: str, inner: str) -> Mapping[str, object]:
    """`top.inner` of a document (empty when absent)."""
    outer = _mapping(document, "the file").get(top) if document is not None else None
    section = _mapping(outer, top).get(inner) if outer is not None else None
    return {} if section is None else _mapping(section, f"{top}.{inner}")


def middlewares_of(document: object, path: Path) -> dict[str, Middleware]:
    """`http.middlewares` of one document."""
    found = {}
    for name, body in _section(document, "http", "middlewares").items():
        found[str(name)] = _middleware(str(name), _mapping(body, f"middleware {name}"), path)
    return found


def _mapping(value: object, what: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise DynamicConfigError(f"has {what} that is not a mapping")
    return value


def _middleware(name: str, body: Mapping[str, object], path: Path) -> Middleware:
    """One middleware: its kind (the one key of its body, lowercased) and its fields flattened
    as labels would give them (`customResponseHeaders.X-A`, lists comma-separated)."""
    kinds = [str(kind) for kind in body]
    middleware = Middleware(name, kinds[0].lower() if kinds else "", "", "")
    middleware.kinds = {k.lower() for k in kinds[1:] if k.lower() != middleware.kind}
    for kind in kinds[:1]:
        prefix = f"{path.name}: http.middlewares.{name}.{kind}"
        options = body[kind]
        if options is None or options == {}:
            continue
        for key, value in _flatten(_mapping(options, f"middleware {name}.{kind}")):
            middleware.fields[key.lower()] = (f"{prefix}.{key}", _text(value))
    return middleware


def _flatten(options: Mapping[str, object], prefix: str = "") -> list[tuple[str, object]]:
    flat: list[tuple[str, object]] = []
    for key, value in options.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat += _flatten(value, path + ".")
        else:
            flat.append((path, value))
    return flat


def _text(value: object) -> str:
    """A value as a label would hold it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(_text(item) for item in value)
    if value is None or isinstance(value, Mapping):
        return ""
    return str(value).strip()
