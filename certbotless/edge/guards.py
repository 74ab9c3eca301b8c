"""Who gets through a route, checked before anything is proxied: allowed addresses, basic auth
(users from the labels or a Swarm secret), rate and connection limits, and forward auth."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from certbotless.client_tls import AuthServerTls
from certbotless.edge.breaker import breaker_logs
from certbotless.edge.conditions import client_variable, quoted, rejects_otherwise
from certbotless.edge.mounts import (
    HTPASSWD_DIR,
    SYSTEM_CAS,
    auth_tls_secret_target,
    htpasswd_secret_target,
)
from certbotless.edge.njs import (
    AUTH_BODY_OVER,
    BODY_DROPPED,
    BODY_HEADER,
    digest_checks,
    forwards_body,
    measured_auth_locations,
    measures_auth_body,
)
from certbotless.edge.rewrite_phase import FORWARDED_PORT, entry_point_value
from certbotless.edge.shaping import FORWARDED_HEADERS
from certbotless.labels.values import INTERNAL_LOCATION
from certbotless.model import Route


def access_directives(route: Route) -> str:
    """Who gets in, checked before anything is proxied: address, then password, then rate."""
    if rejects_otherwise(route):  # Traefik's rejectStatusCode: nginx's `deny` answers 403
        lines = [f"if ({client_variable(route.allow_from)} = 0) "
                 f"{{ return {route.allow_reject_status}; }}"]  # fmt: skip
    else:
        lines = [f"allow {network};" for network in route.allow_from]
        if route.allow_from:
            lines.append("deny all;")
    if route.basic_auth is not None and route.basic_auth.digest:
        lines += digest_checks(route, digest_users_files(route))
    elif route.basic_auth is not None:
        lines += _basic_auth_checks(route)
        if route.basic_auth.remove_header:
            lines.append('proxy_set_header Authorization "";')
        if route.basic_auth.user_header:  # Traefik's headerField: who logged in
            lines.append(f"proxy_set_header {route.basic_auth.user_header} $remote_user;")
    if route.rate_limit is not None:
        burst = route.rate_limit.burst
        more = f" burst={burst} nodelay" if burst else ""  # nginx refuses burst=0
        lines += [f"limit_req zone={rate_zone(route)}{more};", "limit_req_status 429;"]
    if route.max_connections is not None:
        lines += [f"limit_conn {connection_zone(route)} {route.max_connections};",
                  "limit_conn_status 429;"]  # fmt: skip
    return "".join(f"\n            {line}" for line in lines)


def htpasswd_target(route: Route) -> str:
    """Where the edge mounts a route's basic-auth users: the secret that holds them, by its
    name, or the users from the labels, named by their content."""
    assert route.basic_auth is not None
    if route.basic_auth.secret:
        return htpasswd_secret_target(route.basic_auth.secret)
    return _users_target(route.basic_auth.users)


def merges_users(route: Route) -> bool:
    """Whether the route's basic auth takes users from the labels and a secret both (Traefik's
    users and usersFile, merged)."""
    auth = route.basic_auth
    return auth is not None and not auth.digest and bool(auth.users) and bool(auth.secret)


def _basic_auth_checks(route: Route) -> list[str]:
    """auth_basic on the route's users file. With users and usersFile both (merges_users),
    Traefik's merge, the labels' users winning: nginx reads one users file a request, so the
    user's name (`$remote_user`, before any password is checked) picks it: the labels' users
    for a name they give, whatever the secret says of it, else the secret's."""
    auth = route.basic_auth
    assert auth is not None
    if not merges_users(route):
        return [f'auth_basic "{auth.realm}";', f"auth_basic_user_file {htpasswd_target(route)};"]
    users = "$certbotless_basic_users"
    lines = [f"set {users} {htpasswd_secret_target(auth.secret)};"]
    lines += [f'if ($remote_user ~ "^{quoted(re.escape(user.partition(":")[0]))}$") '
              f"{{ set {users} {_users_target(auth.users)}; }}"
              for user in auth.users]  # fmt: skip
    return [*lines, f'auth_basic "{auth.realm}";', f"auth_basic_user_file {users};"]


def _users_target(users: tuple[str, ...]) -> str:
    digest = hashlib.sha256("\n".join(users).encode()).hexdigest()[:16]
    return f"{HTPASSWD_DIR}/{digest}"


def digest_users_files(route: Route) -> str:
    """digestAuth's users files, space-separated: the secret's (usersFile), then the labels'
    (users), whose lines win, as Traefik merges them."""
    assert route.basic_auth is not None
    files = [htpasswd_secret_target(route.basic_auth.secret)] if route.basic_auth.secret else []
    if route.basic_auth.users:
        files.append(_users_target(route.basic_auth.users))
    return " ".join(files)


def htpasswd_files(by_host: Mapping[str, list[Route]]) -> dict[str, str]:
    """The basic- and digest-auth users the labels give, a file per set (target → text)."""
    return {
        _users_target(route.basic_auth.users): "\n".join(route.basic_auth.users) + "\n"
        for host_routes in by_host.values()
        for route in host_routes
        if route.basic_auth is not None and route.basic_auth.users
    }


def htpasswd_secrets(routes: Iterable[Route]) -> set[str]:
    """The Swarm secrets holding the basic-auth users of `routes`."""
    return {r.basic_auth.secret for r in routes if r.basic_auth is not None and r.basic_auth.secret}


def rate_zone(route: Route) -> str:
    """The shared-memory zone counting one route's requests (a zone per route: routes never
    share a budget)."""
    assert route.rate_limit is not None
    key = (f"{route.service}|{route.path}|{route.exact_path}|{route.rate_limit.per_minute}"
           f"|{route.rate_limit.key}")  # fmt: skip
    return "certbotless_" + hashlib.sha256(key.encode()).hexdigest()[:12]


def connection_zone(route: Route) -> str:
    """The shared-memory zone counting one route's requests in flight per client."""
    key = f"{route.service}|{route.path}|{route.exact_path}|connections|{route.connection_key}"
    return "certbotless_" + hashlib.sha256(key.encode()).hexdigest()[:12]


def rate_zones(by_host: Mapping[str, list[Route]]) -> str:
    """The http block's zones for every route's rate and connection limits."""
    routes = {route for host_routes in by_host.values() for route in host_routes}
    zones = sorted({
        f"    limit_req_zone {zone_key(r.rate_limit.key)} zone={rate_zone(r)}:1m "
        f"rate={r.rate_limit.per_minute}r/m;\n"
        for r in routes if r.rate_limit is not None
    } | {
        f"    limit_conn_zone {zone_key(r.connection_key)} zone={connection_zone(r)}:1m;\n"
        for r in routes if r.max_connections is not None
    })  # fmt: skip
    keys = {r.rate_limit.key for r in routes if r.rate_limit is not None}
    keys |= {r.connection_key for r in routes if r.max_connections is not None}
    subnets = sorted(int(k.removeprefix("subnet:")) for k in keys if k.startswith("subnet:"))
    return "".join(zones) + "".join(_subnet_map(bits) for bits in subnets)


def _subnet_variable(bits: int) -> str:
    return f"$certbotless_ipv6_{bits}"


def _subnet_map(bits: int) -> str:
    """An IPv6 client's /bits network as the first bits/8 bytes of its address (16 bytes in
    $binary_remote_addr; any byte, NUL and newline too, hence (?s)); an IPv4 client's whole
    address (4 bytes)."""
    size = bits // 8
    capture = f"certbotless_ipv6_{bits}_net"
    return (f"    map $binary_remote_addr {_subnet_variable(bits)} {{\n"
            f'        "~(?s)^(?<{capture}>.{{{size}}}).{{{16 - size}}}$" ${capture};\n'
            f"        default $binary_remote_addr;\n    }}\n")  # fmt: skip


def zone_key(key: str) -> str:
    """nginx's key for a limit counted per `key` (model.RateLimit.key). Never empty (nginx
    does not count an empty key; Traefik counts those requests together), so the host and a
    header are written after a letter; every client together is one constant; an IPv6
    network is a map's (_subnet_map)."""
    if key == "host":
        return '"h$http_host"'
    if key.startswith("header:"):
        name = key.removeprefix("header:").lower()
        seen = entry_point_value(name, "$http_host")
        return f'"h{seen or ""}"'
    if key.startswith("subnet:"):
        return _subnet_variable(int(key.removeprefix("subnet:")))
    return '"one"' if key == "one" else "$binary_remote_addr"


def auth_answered_statuses(route: Route) -> list[int]:
    """The statuses of a forward-auth refusal that get the auth server's own answer: 401 and
    403, and 500 (nginx's auth_request makes one of any other answer but a 2xx). Statuses the
    route's error pages (errors middleware) replace stay theirs; with those pages the
    service's errors are intercepted, so a 500 could be the service's: it stays nginx's."""
    paged = set(route.error_pages.statuses) if route.error_pages is not None else set()
    return [code for code in (401, 403) if code not in paged] + ([] if paged else [500])


def forward_auth_directives(index: int, route: Route) -> str:
    """The route's requests asked about at its forward-auth location first, and the answer's
    listed headers passed on to the upstream. A refusal (401, 403) or any other answer but a
    2xx (nginx's auth_request turns those into 500) is the auth server's own answer, as in
    Traefik: see `auth_answer_location`. Statuses the route's error pages (errors
    middleware) replace stay theirs, and with those pages a 500 stays nginx's."""
    if route.auth_url is None:
        return ""
    if forwards_body(route):  # njs asked it (njs.body_reading_location) and copied these
        return "".join(
            f"\n            proxy_set_header {header} {BODY_HEADER}{number};"
            for number, header in enumerate(route.auth_options.response_headers)
        )
    # With maxResponseBodySize, njs answers the auth subrequest (njs.measured_auth_locations):
    # the auth server's status and headers are that answer's own.
    measured = measures_auth_body(route)
    answered = "$sent_http_" if measured else "$upstream_http_"
    lines = [f"auth_request {INTERNAL_LOCATION}auth/{index};",
             f"auth_request_set $certbotless_auth_{index}_status "
             f"{'$status' if measured else '$upstream_status'};"]  # fmt: skip
    if measured:
        lines.append(f"auth_request_set $certbotless_auth_{index}_over {AUTH_BODY_OVER};")
    for number, header in enumerate(route.auth_options.response_headers):
        variable = f"$certbotless_auth_{index}_{number}"
        upstream = answered + header.lower().replace("-", "_")
        lines += [f"auth_request_set {variable} {upstream};",
                  f"proxy_set_header {header} {variable};"]  # fmt: skip
    lines += [f"error_page {code} = @certbotless_auth_answer_{index}_{code};"
              for code in auth_answered_statuses(route)]  # fmt: skip
    return "".join(f"\n            {line}" for line in lines)


# What the auth location sets itself (Traefik's forward auth sets the X-Forwarded-* whatever
# the client sent).
_SET_FOR_AUTH = {
    "content-length", "x-original-uri", "x-original-method", "x-forwarded-uri",
    "x-forwarded-method", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "proxy",
}  # fmt: skip


def auth_tls_secrets(routes: Iterable[Route]) -> dict[str, bool]:
    """The Swarm secrets of the routes' forward-auth TLS (name → whether it holds a key)."""
    found: dict[str, bool] = {}
    for route in routes:
        tls = route.client_tls.auth_server
        if tls is not None:
            found.update({name: False for name in (tls.ca_secret, tls.cert_secret) if name})
            if tls.key_secret:
                found[tls.key_secret] = True
    return found


def _auth_server_tls(route: Route) -> AuthServerTls | None:
    """The route's forwardAuth.tls; an https auth server without it is verified against the
    image's CAs, as Go's default client verifies it in Traefik."""
    tls = route.client_tls.auth_server
    if tls is None and (route.auth_url or "").lower().startswith("https://"):
        return AuthServerTls()
    return tls


def _auth_tls_directives(tls: AuthServerTls | None) -> str:
    """How the edge speaks TLS to the auth server, as Traefik's forwardAuth.tls: its
    certificate verified against the CA (else the image's own CAs) unless insecureSkipVerify,
    any chain length, and the client certificate shown."""
    if tls is None:
        return ""
    lines = []
    if tls.verify:
        ca = auth_tls_secret_target(tls.ca_secret) if tls.ca_secret else SYSTEM_CAS
        lines += ["proxy_ssl_verify on;", "proxy_ssl_verify_depth 100;",
                  f"proxy_ssl_trusted_certificate {ca};"]  # fmt: skip
    if tls.cert_secret:
        cert, key = auth_tls_secret_target(tls.cert_secret), auth_tls_secret_target(tls.key_secret)
        lines += [f"proxy_ssl_certificate {cert};", f"proxy_ssl_certificate_key {key};"]
    return "".join(f"\n            {line}" for line in lines)


def _asking_directives(route: Route) -> str:
    """How nginx asks the route's auth server: its client's headers (only
    `request_headers` when given, as Traefik's authRequestHeaders), the request line in
    both the X-Original-* and Traefik's X-Forwarded-* names, with GET as Traefik (the
    request's method with `keeps_method`, preserveRequestMethod), its body only with
    forwardBody (read before: njs.body_reading_location). The timeouts are short because
    every request of the route waits for this answer."""
    asked = route.auth_options
    listed = "".join(
        f"\n            proxy_set_header {name} $http_{name.lower().replace('-', '_')};"
        for name in asked.request_headers
        if name.lower() not in _SET_FOR_AUTH | set(_ENTRY_POINT_SETS) | _removed_lower(route)
    )
    only_listed = "\n            proxy_pass_request_headers off;" * bool(
        route.auth_options.request_headers
    )
    method = "$request_method" if route.auth_options.keeps_method else "GET"
    return f"""
            set $auth_url {route.auth_url};
            proxy_pass $auth_url;
            proxy_method {method};
            proxy_ssl_server_name on;{_auth_tls_directives(_auth_server_tls(route))}
            proxy_connect_timeout 2s;
            proxy_send_timeout 5s;
            proxy_read_timeout 5s;{_body_directives(route)}{only_listed}{listed}
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Forwarded-Uri $request_uri;
            proxy_set_header X-Forwarded-Method $request_method;{FORWARDED_HEADERS}{
        _entry_point_headers(route)
    }"""


def _body_directives(route: Route) -> str:
    """The request's body to the auth server with forwardBody (nginx's own Content-Length),
    else none."""
    if forwards_body(route):
        return "\n            proxy_pass_request_body on;"
    lines = ["proxy_pass_request_body off;", 'proxy_set_header Content-Length "";']
    return "".join(f"\n            {line}" for line in lines)


# Headers Traefik's entry point (no trusted IPs) sets itself before any middleware: the auth
# server gets them as forwardAuth copies them (X-Forwarded-Server: Traefik's host name, here
# the edge's). Lower-case name → (name, value).
_ENTRY_POINT_SETS = {
    "x-real-ip": ("X-Real-IP", "$remote_addr"),
    "x-forwarded-server": ("X-Forwarded-Server", "$hostname"),
    "x-forwarded-port": ("X-Forwarded-Port", "$certbotless_forwarded_port"),
}
_EMPTY = '""'  # a header nginx does not send


def _removed_by_entry(route: Route) -> set[str]:
    """The client's headers Traefik's entry point removes and sets no other value of (those
    passTLSClientCert sets are the service's concern when the route passes certificates)."""
    removed = {"X-Forwarded-Prefix", "X-Forwarded-Scheme", "X-Scheme"}
    if route.client_tls.pass_cert is None:
        removed |= {"X-Forwarded-Tls-Client-Cert", "X-Forwarded-Tls-Client-Cert-Info"}
    return removed


def _removed_lower(route: Route) -> set[str]:
    return {name.lower() for name in _removed_by_entry(route)}


def _entry_point_headers(route: Route) -> str:
    """What of Traefik's entry point reaches its auth server: forwardAuth copies the request's
    headers (only the listed ones with authRequestHeaders); with trustForwardHeader=false
    it drops the X-Forwarded-* and X-Real-Ip first, and with trustForwardHeader given
    (either way) it sets X-Forwarded-Port when missing. Trailers, a hop-by-hop header of
    Traefik's list that nginx passes on, never reaches it."""
    asked = route.auth_options
    trust, listed = asked.trusts_forward_headers, {n.lower() for n in asked.request_headers}
    copied = {name: trust is not False and (not listed or name in listed)
              for name in _ENTRY_POINT_SETS}  # fmt: skip
    copied["x-forwarded-port"] = trust is not None or not listed or "x-forwarded-port" in listed
    lines = list(FORWARDED_PORT) if copied["x-forwarded-port"] else []
    lines += [f"proxy_set_header {name} {value if copied[key] else _EMPTY};"
              for key, (name, value) in _ENTRY_POINT_SETS.items()]  # fmt: skip
    lines += [f'proxy_set_header {name} "";' for name in sorted(_removed_by_entry(route))]
    lines.append('proxy_set_header Trailers "";')
    return "".join(f"\n            {line}" for line in lines)


# Hop-by-hop headers of an auth answer that Traefik drops and nginx would pass on.
_HOP_BY_HOP = ("Te", "Trailers", "Upgrade")


def auth_location(index: int, route: Route) -> str:
    """Forward auth: the subrequest that asks the route's auth server; a 2xx lets the request
    through."""
    limit = route.auth_options.max_answer_body
    if measures_auth_body(route) and limit is not None:
        return measured_auth_locations(index, f"{INTERNAL_LOCATION}auth/{index}",
                                       _asking_directives(route), limit)  # fmt: skip
    dropped = BODY_DROPPED if forwards_body(route) else ""
    return f"""
        location = {INTERNAL_LOCATION}auth/{index} {{
            internal;{_asking_directives(route)}{dropped}
        }}"""


def _answer_body_over_limit(index: int, route: Route) -> str:
    """The 401 gate's first check with maxResponseBodySize: an auth answer whose body is over
    the limit is Traefik's own 401, without a body or a type (a `return` with text, even
    empty, sends no error page)."""
    if not measures_auth_body(route):
        return ""
    return f"""
            set $certbotless_no_body "";
            default_type "";
            if ($certbotless_auth_{index}_over) {{
                return 401 $certbotless_no_body;
            }}"""


def auth_answer_locations(index: int, route: Route) -> str:
    """A request the auth server did not let through gets the auth server's own answer
    (status, headers, body), as Traefik passes it on. nginx's auth subrequest keeps only its
    status, so the auth server is asked once more and that answer passed on. A Location it
    gives relative is made absolute against its address, unless `keeps_location`
    (preserveLocationHeader); a 401 is a redirect to `signin_url` when given. The
    status came from elsewhere when the auth server was not asked or said yes (basic auth's
    401, an allow list's 403): it stays. An auth server that cannot be reached is a 500, as
    in Traefik."""
    where = urlsplit(route.auth_url or "")
    origin = f"{where.scheme}://{where.netloc}"
    directory = origin + (where.path or "/")[: (where.path or "/").rfind("/") + 1]
    if route.auth_options.keeps_location:
        relative = "\n            proxy_redirect off;"
    else:
        relative = (
            f"\n            proxy_redirect ~^//(.*)$ {where.scheme}://$1;"
            f"\n            proxy_redirect ~^(/.*)$ {origin}$1;"
            f"\n            proxy_redirect ~^(?![a-zA-Z][a-zA-Z0-9+.-]*:)(.+)$ {directory}$1;"
        )
    signin = (
        f"""
            if ($certbotless_auth_{index}_status = 401) {{
                return 302 {route.auth_options.signin_url};
            }}"""
        if route.auth_options.signin_url
        else ""
    )
    # The log phase runs where the request ends: a circuit breaker counts the answer there.
    logs = breaker_logs(route)
    over = _answer_body_over_limit(index, route)
    # One gate per status: nginx's `return` takes no variable status.
    blocks = [
        f"""
        location @certbotless_auth_answer_{index}_{code} {{{logs}
            recursive_error_pages on;
            error_page 418 = @certbotless_auth_answer_{index};{over + signin if code == 401 else ""}
            if ($certbotless_auth_{index}_status ~ "^[1345]") {{
                return 418;
            }}
            return {code};
        }}"""
        for code in auth_answered_statuses(route)
    ]
    hidden = "".join(f"\n            proxy_hide_header {name};" for name in _HOP_BY_HOP)
    asking = _asking_directives(route) + relative + hidden
    blocks.append(f"""
        location @certbotless_auth_answer_{index} {{{logs}
            recursive_error_pages on;
            error_page 502 504 = @certbotless_auth_unreachable_{index};{asking}
        }}

        location @certbotless_auth_unreachable_{index} {{{logs}
            return 500;
        }}""")
    return "".join(blocks)
