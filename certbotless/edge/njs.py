"""njs, nginx's JavaScript module, for what nginx's configuration language cannot say (Traefik's
replacePathRegex on every match, passTLSClientCert's serial number, dates and subject
alternative names, digestAuth, forwardAuth's maxResponseBodySize and forwardBody, active
health checks: edge/health_checks.py, circuit breakers: edge/breaker.py). The functions ship
with certbotless (njs/certbotless.js) and are a file of the rendered configuration; nginx.conf
loads the module only when a route needs it. What an edge's njs cannot do is refused, by
name: routes that need the module at all, where its nginx has none; health checks and circuit
breakers (served without them), where its njs is older than 0.8.1 (Debian bookworm's 0.7.9),
without js_periodic and js_shared_dict_zone."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import replace
from functools import cache
from pathlib import Path

from certbotless.edge.breaker import breaker_files, breaker_http, breaker_logs
from certbotless.edge.conditions import in_nginx_string
from certbotless.edge.error_pages import PAGE_URL, needs_page_url
from certbotless.edge.health_checks import (
    CHECKS,
    SERVICE_DOWN,
    ZONE,
    checks_json,
    needs_health_checks,
)
from certbotless.edge.mounts import DIGEST_KEY_TARGET, SNIPPETS_DIR
from certbotless.edge.rewrite_phase import RAW_PATH, REDIRECTED_URL
from certbotless.labels.values import INTERNAL_LOCATION
from certbotless.model import LabelProblem, Route

# Where nginx:stable (nginx.org's packages) and Debian's libnginx-mod-http-js put it.
NJS_MODULE = "/usr/lib/nginx/modules/ngx_http_js_module.so"
JS_TARGET = f"{SNIPPETS_DIR}/njs/certbotless.js"
_JS_SOURCE = Path(__file__).with_name("njs") / "certbotless.js"
REPLACED_PATH = "$certbotless_replaced_by_njs"  # replacedPath's answer (see the .js)
CLIENT_INFO = "$certbotless_client_info_by_njs"  # clientCertInfo's answer
DIGEST_USER = "$certbotless_digest_user"  # digestUser's answer
DIGEST_CHALLENGE = "$certbotless_digest_challenge"  # digestChallenge's answer
AUTH_BODY_SEEN = "$certbotless_auth_body_seen"  # authBodyMeasure's count of the body's bytes
# The header authAnswerMeasured sets on its answer to the auth subrequest (never sent) when the
# auth server's body is longer than the limit.
AUTH_BODY_OVER = "$sent_http_certbotless_auth_body_over"
# `nginx -t` on an empty configuration that loads the module, then names js_periodic in the
# main context: nginx names the module only when it cannot load it, and says the directive is
# unknown when the module has none (njs before 0.8.1), else that it is not allowed there (the
# configuration fails either way).
PROBE_COMMAND = ["nginx", "-t", "-c", "/dev/null", "-g",
                 f"load_module {NJS_MODULE}; js_periodic certbotless;"]  # fmt: skip
# What an nginx's njs can do (njs_features): NJS, the module loads; PERIODIC, it has js_periodic
# and js_shared_dict_zone (njs >= 0.8.1), which health checks and circuit breakers need.
NJS, PERIODIC = "njs", "js_periodic"
NjsFeatures = frozenset[str]
ALL_FEATURES: NjsFeatures = frozenset({NJS, PERIODIC})


def needs_njs(route: Route) -> bool:
    redirect = route.rewrite_phase.redirect_regex
    return (route.replace_path_everywhere or (redirect is not None and redirect.by_njs)
            or _njs_fields(route) != "" or needs_digest_key(route) or measures_auth_body(route)
            or needs_health_checks(route) or route.circuit_breaker is not None
            or needs_page_url(route) or forwards_body(route))  # fmt: skip


def measures_auth_body(route: Route) -> bool:
    """Whether the route's forward auth limits the auth answer's body (maxResponseBodySize)."""
    return route.auth_url is not None and route.auth_options.max_answer_body is not None


def forwards_body(route: Route) -> bool:
    """Whether the route's forward auth sends the request's body (forwardBody)."""
    return route.auth_url is not None and route.auth_options.forwards_body


def needs_digest_key(route: Route) -> bool:
    return route.basic_auth is not None and route.basic_auth.digest


def _njs_fields(route: Route) -> str:
    """The client certificate's fields passTLSClientCert asks for that njs writes (its
    numbers and subject alternative names)."""
    passing = route.client_tls.pass_cert
    return ", ".join(passing.njs_fields) if passing is not None else ""


def module_loaded(output: str) -> bool:
    """Whether PROBE_COMMAND's output says nginx loaded the module."""
    return "ngx_http_js_module" not in output


def njs_features(output: str) -> NjsFeatures:
    """What the njs of the nginx whose PROBE_COMMAND said `output` can do."""
    if not module_loaded(output):
        return frozenset()
    if 'unknown directive "js_periodic"' in output:
        return frozenset({NJS})
    return ALL_FEATURES


@cache
def local_njs_features(nginx: str = "nginx") -> NjsFeatures:
    """What this machine's nginx's njs can do."""
    command = [nginx, *PROBE_COMMAND[1:]]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    return njs_features(done.stderr + done.stdout)


def njs_directives(routes: Iterable[Route]) -> dict[str, str]:
    """nginx.conf's parts when a route needs njs: the module loaded first (`njs_module`), and
    in the http block its functions and the dollar they read (`njs_http`)."""
    routes = list(routes)
    if not any(map(needs_njs, routes)):
        return {"njs_module": "", "njs_http": ""}
    http = (f"\n    js_import certbotless from {JS_TARGET};"
            f"\n    js_set {REPLACED_PATH} certbotless.replacedPath;"
            f"\n    js_set {REDIRECTED_URL} certbotless.redirectedUrl;"
            f"\n    js_set {CLIENT_INFO} certbotless.clientCertInfo;"
            f"\n    js_set {DIGEST_USER} certbotless.digestUser;"
            f"\n    js_set {DIGEST_CHALLENGE} certbotless.digestChallenge;"
            f"\n    js_set {PAGE_URL} certbotless.errorPageUrl;"
            f"\n    js_var {AUTH_BODY_SEEN};"
            '\n    geo $certbotless_dollar { default "$"; }\n')  # fmt: skip
    if any(map(needs_health_checks, routes)):
        http += (f"    js_shared_dict_zone zone={ZONE}:1m type=string;"
                 f"\n    js_set {SERVICE_DOWN} certbotless.serviceDown;"
                 f'\n    js_var {CHECKS} "{in_nginx_string(checks_json(routes))}";\n')  # fmt: skip
    http += breaker_http(routes)
    return {"njs_module": f"load_module {NJS_MODULE};\n", "njs_http": http}


def js_files(routes: Iterable[Route]) -> dict[str, str]:
    """The functions' files (target → text), when a route needs them."""
    routes = list(routes)
    if not any(map(needs_njs, routes)):
        return {}
    return {JS_TARGET: _JS_SOURCE.read_text(), **breaker_files(routes)}


def without_njs(
    routes: Sequence[Route], available: NjsFeatures
) -> tuple[list[Route], list[LabelProblem]]:
    """The routes an edge serves, whose njs can do `available`: a route's health check and
    circuit breaker are left out when its njs has no js_periodic and js_shared_dict_zone, the
    routes needing njs when its nginx has no module; each with a problem."""
    kept, problems = [], {}
    for route in routes:
        check, breaker = route.upstream.health_check, route.circuit_breaker
        if check is not None and PERIODIC not in available:
            problems[(route.service, check.label)] = _no_periodic(route, check.label)
            route = replace(route, upstream=replace(route.upstream, health_check=None))
        if breaker is not None and PERIODIC not in available:
            label = breaker.label or "circuitBreaker"
            problems[(route.service, label)] = LabelProblem(
                route.service, label, breaker.expression, _BREAKER_NEEDS
            )
            route = replace(route, circuit_breaker=None)
        if needs_njs(route) and NJS not in available:
            problems[(route.service, "")] = _refusal(route)
            continue
        kept.append(route)
    return kept, list(problems.values())


def _no_periodic(route: Route, label: str) -> LabelProblem:
    return LabelProblem(route.service, label, "", "Traefik's active health check needs njs "
                        "0.8.1 or later (js_periodic, js_shared_dict_zone), which the edge's "
                        "nginx has not: the service is served without it (always up); use the "
                        "edge image (nginx:stable has it), or give the service a Docker "
                        "HEALTHCHECK: Swarm takes a task that fails it out of the service's "
                        "DNS and VIP")  # fmt: skip


_BREAKER_NEEDS = (
    "this circuitBreaker needs njs 0.8.1 or later (js_shared_dict_zone; Debian bookworm's nginx "
    "1.22 has njs 0.7.9), which the edge's nginx has not: the router is served without it; use "
    "the edge image (nginx:stable has it)"
)


def _refusal(route: Route) -> LabelProblem:
    if route.replace_path_everywhere and route.replace_path is not None:
        feature, value = "replacePathRegex", route.replace_path[0]
    elif (redirect := route.rewrite_phase.redirect_regex) is not None and redirect.by_njs:
        feature, value = "redirectRegex", redirect.regex
    elif route.basic_auth is not None and route.basic_auth.digest:
        feature, value = "digestAuth", route.basic_auth.realm
    elif forwards_body(route):
        feature, value = "forwardAuth's forwardBody", "true"
    elif measures_auth_body(route):
        feature = "forwardAuth's maxResponseBodySize"
        value = str(route.auth_options.max_answer_body)
    elif needs_page_url(route) and route.error_pages is not None:
        feature, value = "errors' {url}", route.error_pages.url
    else:
        feature, value = "passTLSClientCert", _njs_fields(route)
    return LabelProblem(route.service, feature, value, f"this {feature} needs njs (nginx's "
                        f"JavaScript module, {NJS_MODULE}), which the edge's nginx has not: the "
                        "router is not routed; use the edge image (nginx:stable has it) or "
                        "install libnginx-mod-http-js")  # fmt: skip


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


def body_reading_location(
    index: int, route: Route, match: str, checks: str, gates: Sequence[int]
) -> tuple[str, str]:
    """forwardAuth's forwardBody: the route's location `match` reads the request's body, within
    `checks` (the size checks of the route's body), then njs's forwardBodyRead asks the auth
    server with it and passes the request on to the route's own location, or the refusal to
    the gates of `gates` (guards.auth_answer_locations): (the reading location, the name of
    the route's own). A body over maxBodySize is Traefik's 401 without a body or a type. An
    edge keeps a body in memory up to client_body_buffer_size, the rest in a temporary file,
    where Traefik holds it all in memory."""
    route_location, over = f"@certbotless_body_read_{index}", f"@certbotless_body_over_{index}"
    asked = route.auth_options
    limit = asked.max_request_body
    lines = [f"set $certbotless_body_next {route_location};",
             f"set $certbotless_body_over {over};",
             f"set $certbotless_body_limit {-1 if limit is None else limit};",
             f"set $certbotless_body_auth {INTERNAL_LOCATION}auth/{index};",
             f"set $certbotless_body_index {index};",
             f'set $certbotless_body_gates "{" ".join(map(str, gates))}";',
             f'set $certbotless_body_names "{" ".join(asked.response_headers)}";',
             f'set $certbotless_auth_{index}_status "";',
             *(f'set {BODY_HEADER}{number} "";'
               for number in range(len(asked.response_headers)))]  # fmt: skip
    if limit is not None:  # client_max_body_size 0 is no limit: forwardBodyRead checks 0
        lines += [f"client_max_body_size {max(limit, 1)};", f"error_page 413 = {over};"]
    if route.body_buffer_size is not None:
        lines.append(f"client_body_buffer_size {route.body_buffer_size};")
    if route.error_pages is not None:  # a refusal's status they replace is theirs
        codes = " ".join(str(code) for code in route.error_pages.statuses)
        lines.append(f"error_page {codes} @certbotless_errors_{index};")
    lines.append("js_content certbotless.forwardBodyRead;")
    body = "".join(f"\n            {line}" for line in lines)
    recursive = "\n            recursive_error_pages on;" * match.startswith("@")
    return (
        f"""
        location {match} {{{recursive}{checks}{body}
        }}

        location {over} {{{breaker_logs(route)}
            set $certbotless_no_body "";
            default_type "";
            return 401 $certbotless_no_body;
        }}""",
        route_location,
    )


BODY_HEADER = "$certbotless_body_header_"  # + n: forwardBodyRead's copy of a listed header
# How the auth location answers forwardBodyRead: the auth server's status and headers, no body.
BODY_DROPPED = """
            proxy_buffering off;
            js_header_filter certbotless.authBodyHeaders;
            js_body_filter certbotless.authBodyDrop;"""


def measured_auth_locations(index: int, auth_uri: str, asking: str, limit: int) -> str:
    """Forward auth with Traefik's maxResponseBodySize: the auth subrequest's location
    (`auth_uri`) is njs's authAnswerMeasured, which asks the auth server at `<auth_uri>/asked`
    (`asking`: how nginx asks it), where njs measures the answer's body as it streams (with or
    without a Content-Length; unbuffered, so no temporary file) and tells whether it is longer
    than `limit` bytes. The auth subrequest then answers with the auth server's status and
    headers (`$status`, `$sent_http_*` for auth_request_set), or 401 and AUTH_BODY_OVER. An
    auth server that cannot be reached gives nginx's 502 or 504 without a body (no error page
    to measure), as without a limit."""
    return f"""
        location = {auth_uri} {{
            internal;
            js_content certbotless.authAnswerMeasured;
        }}

        location = {auth_uri}/asked {{
            internal;
            set $certbotless_auth_body_limit {limit};{asking}
            proxy_buffering off;
            js_header_filter certbotless.authBodyHeaders;
            js_body_filter certbotless.authBodyMeasure buffer_type=buffer;
            error_page 502 504 = @certbotless_auth_{index}_unanswered;
        }}

        location @certbotless_auth_{index}_unanswered {{
            set $certbotless_no_body "";
            return 502 $certbotless_no_body;
        }}"""
