"""njs, nginx's JavaScript module, for what nginx's configuration language cannot say (Traefik's
replacePathRegex on every match, passTLSClientCert's serial number and dates, digestAuth). The
functions ship with certbotless (njs/certbotless.js) and are a file of the rendered configuration;
nginx.conf loads the module only when a route needs it. An edge whose nginx has no module
gets those routes refused, by name."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from functools import cache
from pathlib import Path

from certbotless.edge.breaker import breaker_files, breaker_http, breaker_needs
from certbotless.edge.conditions import quoted
from certbotless.edge.mounts import DIGEST_KEY_TARGET, SNIPPETS_DIR
from certbotless.edge.rewrite_phase import RAW_PATH
from certbotless.model import LabelProblem, Route

# Where nginx:stable (nginx.org's packages) and Debian's libnginx-mod-http-js put it.
NJS_MODULE = "/usr/lib/nginx/modules/ngx_http_js_module.so"
JS_TARGET = f"{SNIPPETS_DIR}/njs/certbotless.js"
_JS_SOURCE = Path(__file__).with_name("njs") / "certbotless.js"
# The dollar sign for values nginx would otherwise read as a variable (a geo's values are
# taken as written).
DOLLAR = "${certbotless_dollar}"
REPLACED_PATH = "$certbotless_replaced_by_njs"  # replacedPath's answer (see the .js)
CLIENT_INFO = "$certbotless_client_info_by_njs"  # clientCertInfo's answer
DIGEST_USER = "$certbotless_digest_user"  # digestUser's answer
DIGEST_CHALLENGE = "$certbotless_digest_challenge"  # digestChallenge's answer
# `nginx -t` on an empty configuration that loads the module: nginx names the module only
# when it cannot load it (the configuration fails anyway: it has no events section).
PROBE_COMMAND = ["nginx", "-t", "-c", "/dev/null", "-g", f"load_module {NJS_MODULE};"]


def needs_njs(route: Route) -> bool:
    return (route.replace_path_everywhere or _numbers(route) != "" or needs_digest_key(route)
            or route.circuit_breaker is not None)  # fmt: skip


def needs_digest_key(route: Route) -> bool:
    return route.basic_auth is not None and route.basic_auth.digest


def _numbers(route: Route) -> str:
    """The client certificate's numbers passTLSClientCert asks for (njs writes them)."""
    passing = route.client_tls.pass_cert
    return ", ".join(passing.numbers) if passing is not None else ""


def module_loaded(output: str) -> bool:
    """Whether PROBE_COMMAND's output says nginx loaded the module."""
    return "ngx_http_js_module" not in output


@cache
def local_has_njs(nginx: str = "nginx") -> bool:
    """Whether this machine's nginx has the module."""
    command = [nginx, *PROBE_COMMAND[1:]]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    return module_loaded(done.stderr + done.stdout)


def directive_probe(directive: str) -> list[str]:
    """`nginx -t` of nothing but the module and `directive` where no http directive may be:
    nginx says the directive "is not allowed here" when its njs has it, "unknown directive"
    when not (an njs older than the directive)."""
    return [*PROBE_COMMAND[:-1], f"load_module {NJS_MODULE}; {directive};"]


def knows_directive(output: str, directive: str) -> bool:
    """Whether `directive_probe(directive)`'s output says nginx's njs has the directive."""
    return module_loaded(output) and f'unknown directive "{directive}"' not in output


@cache
def local_knows(directive: str, nginx: str = "nginx") -> bool:
    """Whether this machine's nginx has njs with `directive`."""
    command = [nginx, *directive_probe(directive)[1:]]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    return knows_directive(done.stderr + done.stdout, directive)


def njs_directives(routes: Iterable[Route]) -> dict[str, str]:
    """nginx.conf's parts when a route needs njs: the module loaded first (`njs_module`), and
    in the http block its functions and the dollar they read (`njs_http`)."""
    if not any(map(needs_njs, routes)):
        return {"njs_module": "", "njs_http": ""}
    http = (f"\n    js_import certbotless from {JS_TARGET};"
            f"\n    js_set {REPLACED_PATH} certbotless.replacedPath;"
            f"\n    js_set {CLIENT_INFO} certbotless.clientCertInfo;"
            f"\n    js_set {DIGEST_USER} certbotless.digestUser;"
            f"\n    js_set {DIGEST_CHALLENGE} certbotless.digestChallenge;"
            '\n    geo $certbotless_dollar { default "$"; }\n')  # fmt: skip
    http += breaker_http(routes)
    return {"njs_module": f"load_module {NJS_MODULE};\n", "njs_http": http}


def js_files(routes: Iterable[Route]) -> dict[str, str]:
    """The functions' files (target → text), when a route needs them."""
    routes = list(routes)
    if not any(map(needs_njs, routes)):
        return {}
    return {JS_TARGET: _JS_SOURCE.read_text(), **breaker_files(routes)}


def without_njs(
    routes: Sequence[Route], has_njs: bool, knows: Callable[[str], bool] = lambda _: True
) -> tuple[list[Route], list[LabelProblem]]:
    """The routes an edge serves: those needing njs are left out, each with a problem, when its
    nginx has no module; a circuitBreaker is left out of its route (reported, the route served
    without it, as Traefik's shaping middlewares that cannot be applied) when njs lacks what
    it needs (`knows`: whether the edge's njs has a directive)."""
    routes, problems = _without_breakers(routes, has_njs, knows)
    if has_njs:
        return routes, problems
    kept = [route for route in routes if not needs_njs(route)]
    refused = {route.service: _refusal(route) for route in routes if needs_njs(route)}
    return kept, [*problems, *refused.values()]


def _without_breakers(
    routes: Sequence[Route], has_njs: bool, knows: Callable[[str], bool]
) -> tuple[list[Route], list[LabelProblem]]:
    kept, problems = [], []
    for route in routes:
        breaker = route.circuit_breaker
        missing = [] if breaker is None else (
            [d for d in breaker_needs() if not knows(d)] if has_njs else ["njs"])  # fmt: skip
        if breaker is None or not missing:
            kept.append(route)
            continue
        kept.append(replace(route, circuit_breaker=None))
        problems.append(LabelProblem(route.service, breaker.label or "circuitBreaker",
                                     breaker.expression, _breaker_refusal(missing)))  # fmt: skip
    return kept, problems


def _breaker_refusal(missing: list[str]) -> str:
    lacks = (f"njs (nginx's JavaScript module, {NJS_MODULE})" if missing == ["njs"] else
             f"njs 0.8.0 or later ({', '.join(missing)}; Debian bookworm's nginx 1.22 has njs "
             "0.7.9)")  # fmt: skip
    return (
        f"this circuitBreaker needs {lacks}, which the edge's nginx has not: the router is "
        "served without it; use the edge image (nginx:stable has it)"
    )


def _refusal(route: Route) -> LabelProblem:
    if route.replace_path_everywhere and route.replace_path is not None:
        feature, value = "replacePathRegex", route.replace_path[0]
    elif route.basic_auth is not None and route.basic_auth.digest:
        feature, value = "digestAuth", route.basic_auth.realm
    else:
        feature, value = "passTLSClientCert", _numbers(route)
    return LabelProblem(route.service, feature, value, f"this {feature} needs njs (nginx's "
                        f"JavaScript module, {NJS_MODULE}), which the edge's nginx has not: the "
                        "router is not routed; use the edge image (nginx:stable has it) or "
                        "install libnginx-mod-http-js")  # fmt: skip


def in_nginx_string(text: str) -> str:
    """`text` inside an nginx "…" string that nginx reads as written (no variables)."""
    return quoted(text).replace("$", DOLLAR)


def replace_everywhere_rewrites(regex: str, template: str) -> str:
    """Traefik's replacePathRegex by njs (replacedPath): the service is asked for the new path
    as written; X-Replaced-Path is the path asked for when the regex matched; 400 or 500 where
    Traefik answers them."""
    asked, new = "$certbotless_replaced_path", "$certbotless_new_path"
    lines = [
        RAW_PATH,
        f'set $certbotless_path_regex "{in_nginx_string(regex)}";',
        f'set $certbotless_path_replacement "{in_nginx_string(template)}";',
        f"set {new} {REPLACED_PATH};",
        f'set {asked} "";',
        f'if ({new} = "!400") {{ return 400; }}',
        f'if ({new} = "!500") {{ return 500; }}',
        f'if ({new} ~ "^/") {{ set {asked} $certbotless_request_path; '
        f'set $upstream "${{upstream}}{new}$is_args$args"; }}',
        f"proxy_set_header X-Replaced-Path {asked};",
    ]
    return "".join(f"\n            {line}" for line in lines)


def digest_checks(route: Route, users_files: str) -> list[str]:
    """Traefik's digestAuth by njs (digestUser, digestChallenge): a request that does not
    authenticate gets 401 with the challenge, as go-http-auth's; the service gets the user's
    name in `user_header` (headerField), and no Authorization with `remove_header`."""
    auth = route.basic_auth
    assert auth is not None and auth.digest
    lines = [
        f'set $certbotless_digest_realm "{auth.realm}";',
        f'set $certbotless_digest_users "{users_files}";',
        f"set $certbotless_digest_key {DIGEST_KEY_TARGET};",
        f'if ({DIGEST_USER} ~ "^(:|$)") {{ add_header WWW-Authenticate "{DIGEST_CHALLENGE}" '
        'always; return 401 "401 Unauthorized\\n"; }',
    ]
    if auth.remove_header:
        lines.append('proxy_set_header Authorization "";')
    if auth.user_header:
        lines.append(f"proxy_set_header {auth.user_header} {DIGEST_USER};")
    return lines
