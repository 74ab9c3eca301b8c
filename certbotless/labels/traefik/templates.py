"""gorilla/mux's templates, which Traefik v1 and v2 read in Path, PathPrefix and HostRegexp:
literal text with `{name}` or `{name:pattern}` variables (pkg/muxer/http/matcher_v2.go hands
them to gorilla/mux's regexp.go) → one PCRE over nginx's lower-case $host or the routing path.
Pure."""

from __future__ import annotations

import re

from certbotless.labels.traefik.go_regex import NotPortable, to_pcre

# A variable without a pattern matches one path segment, or one label of a host.
_DEFAULT_PATH_VARIABLE = "[^/]+"
_DEFAULT_HOST_VARIABLE = "[^.]+"


class TemplateError(ValueError):
    """The template's braces do not pair, or a variable's pattern cannot be read alike."""


def has_variables(template: str) -> bool:
    return "{" in template


def _braces(template: str) -> list[tuple[int, int]]:
    """The outermost {…} spans, as gorilla's braceIndices pairs them."""
    spans, level, start = [], 0, 0
    for index, char in enumerate(template):
        if char == "{":
            if level == 0:
                start = index
            level += 1
        elif char == "}":
            level -= 1
            if level == 0:
                spans.append((start, index + 1))
            elif level < 0:
                raise TemplateError(f"unbalanced braces in {template!r}")
    if level != 0:
        raise TemplateError(f"unbalanced braces in {template!r}")
    return spans


def template_pcre(template: str, host: bool, prefix: bool = False) -> str:
    """The PCRE that matches what gorilla/mux's template matches: the whole host or path (its
    start only, for PathPrefix)."""
    default = _DEFAULT_HOST_VARIABLE if host else _DEFAULT_PATH_VARIABLE
    parts, end = [], 0
    for start, stop in _braces(template):
        parts.append(re.escape(template[end:start]))
        name, colon, pattern = template[start + 1 : stop - 1].partition(":")
        if not name.strip() or (colon and not pattern):
            raise TemplateError(f"missing name or pattern in {template[start:stop]!r}")
        try:
            parts.append(f"({to_pcre(pattern).text if colon else default})")
        except NotPortable as error:
            raise TemplateError(f"{template[start:stop]}: {error}") from None
        end = stop
    parts.append(re.escape(template[end:]))
    return "^" + "".join(parts) + ("" if prefix else "$")
