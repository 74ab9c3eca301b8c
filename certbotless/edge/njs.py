"""njs, nginx's JavaScript module, for what nginx's configuration language cannot say (Traefik's
replacePathRegex on every match, passTLSClientCert's serial number, dates and subject
alternative names, digestAuth, forwardAuth's maxResponseBodySize). The
functions ship with certbotless (njs/certbotless.js) and are a file of the rendered configuration;
nginx.conf loads the module only when a route needs it. An edge whose nginx has no module
gets those routes refused, by name."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path

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
AUTH_BODY_SEEN = "$certbotless_auth_body_seen"  # authBodyMeasure's count of the body's bytes
# The header authAnswerMeasured sets on its answer to the auth subrequest (never sent) when the
# auth server's body is longer than the limit.
AUTH_BODY_OVER = "$sent_http_certbotless_auth_body_over"
# `nginx -t` on an empty configuration that loads the module: nginx names the module only
# when it cannot load it (the configuration fails anyway: it has no events section).
PROBE_COMMAND = ["nginx", "-t", "-c", "/dev/null", "-g", f"load_module {NJS_MODULE};"]


def needs_njs(route: Route) -> bool:
    return (route.replace_path_everywhere or _njs_fields(route) != "" or needs_digest_key(route)
            or measures_auth_body(route))  # fmt: skip


def measures_auth_body(route: Route) -> bool:
    """Whether the route's forward auth limits the auth answer's body (maxResponseBodySize)."""
    return route.auth_url is not None and route.auth_options.max_answer_body is not None


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


@cache
def local_has_njs(nginx: str = "nginx") -> bool:
    """Whether this machine's nginx has the module."""
    command = [nginx, *PROBE_COMMAND[1:]]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    return module_loaded(done.stderr + done.stdout)


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
            f"\n    js_var {AUTH_BODY_SEEN};"
            '\n    geo $certbotless_dollar { default "$"; }\n')  # fmt: skip
    return {"njs_module": f"load_module {NJS_MODULE};\n", "njs_http": http}


def js_files(routes: Iterable[Route]) -> dict[str, str]:
    """The functions' file (target → text), when a route needs them."""
    return {JS_TARGET: _JS_SOURCE.read_text()} if any(map(needs_njs, routes)) else {}


def without_njs(routes: Sequence[Route], has_njs: bool) -> tuple[list[Route], list[LabelProblem]]:
    """The routes an edge serves: those needing njs are left out, each with a problem, when its
    nginx has no module."""
    if has_njs:
        return list(routes), []
    kept = [route for route in routes if not needs_njs(route)]
    problems = {route.service: _refusal(route) for route in routes if needs_njs(route)}
    return kept, list(problems.values())


def _refusal(route: Route) -> LabelProblem:
    if route.replace_path_everywhere and route.replace_path is not None:
        feature, value = "replacePathRegex", route.replace_path[0]
    elif route.basic_auth is not None and route.basic_auth.digest:
        feature, value = "digestAuth", route.basic_auth.realm
    elif measures_auth_body(route):
        feature = "forwardAuth's maxResponseBodySize"
        value = str(route.auth_options.max_answer_body)
    else:
        feature, value = "passTLSClientCert", _njs_fields(route)
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
