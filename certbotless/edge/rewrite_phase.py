"""A route's Traefik middlewares that answer or rewrite in nginx's rewrite phase, before its
access checks (model's `RewritePhase`): the allowed hosts check (500 "Bad Host"), the scheme
redirect over HTTPS, the regex redirect, and the regex prefix strip. Their regexes are PCRE
already written to read as Go's."""

from __future__ import annotations

import re

from certbotless.edge.conditions import in_nginx_string, quoted
from certbotless.model import Route
from certbotless.rewrite_phase import (
    AllowedHosts,
    RedirectRegex,
    SchemeRedirect,
    StripPrefixRegex,
)

# The host as Go's r.Host has it: the Host header (HTTP/2's :authority when none was sent).
_HOST = """set $certbotless_host $http_host;
if ($certbotless_host = "") { set $certbotless_host $host; }"""


def early_answers(route: Route) -> str:
    """The allowed hosts check, then the scheme and regex redirects (Traefik's headers
    middleware checks hosts after a CORS preflight, which comes before this)."""
    phase = route.rewrite_phase
    lines = []
    if phase.allowed_hosts or phase.scheme_redirect or phase.redirect_regex:
        lines += _HOST.splitlines()
    if phase.allowed_hosts is not None:
        lines += _allowed_hosts(phase.allowed_hosts)
    if phase.scheme_redirect is not None:
        lines += _scheme_redirect(phase.scheme_redirect)
    if phase.redirect_regex is not None:
        lines += _redirect(phase.redirect_regex)
    return "".join(f"\n            {line}" for line in lines)


# Traefik's entry point (no trusted IPs) replaces the client's X-Forwarded-* and X-Real-Ip
# before any middleware: these are the values its headers middleware sees (the others of
# them, removed and not set again, are absent).
_ENTRY_POINT_HEADERS = {
    "x-forwarded-host": "$certbotless_host",
    "x-real-ip": "$remote_addr",
    "x-forwarded-proto": "$scheme",
}
REMOVED_HEADERS = frozenset({
    "x-forwarded-for", "x-forwarded-uri", "x-forwarded-method", "x-forwarded-prefix",
    "x-forwarded-scheme", "x-scheme", "x-forwarded-tls-client-cert",
    "x-forwarded-tls-client-cert-info",
})  # fmt: skip


# Traefik's forwardedPort: the Host header's port, else 443 over TLS, else 80.
FORWARDED_PORT = (
    "set $certbotless_forwarded_port 80;",
    "if ($scheme = https) { set $certbotless_forwarded_port 443; }",
    'if ($http_host ~ "^(?:\\[[^]]*\\]|[^:\\[\\]]*):([^:]+)$") '
    "{ set $certbotless_forwarded_port $1; }",
)


def entry_point_value(name: str, host: str = "$certbotless_host") -> str | None:
    """The variable holding request header `name` (lower case) as Traefik's middlewares see
    it (`host`: the variable holding the Host header); None: Traefik removed it."""
    if name in REMOVED_HEADERS:
        return None
    if name == "x-forwarded-host":
        return host
    return _ENTRY_POINT_HEADERS.get(name, "$http_" + name.replace("-", "_"))


def _allowed_hosts(allowed: AllowedHosts) -> list[str]:
    checked = "$certbotless_checked_host"
    lines = [f"set {checked} $certbotless_host;"]
    for header in reversed(allowed.headers):  # the first one set wins: it is set last
        variable = entry_point_value(header.lower())
        if variable is None:
            continue
        lines.append(f"if ({variable}) {{ set {checked} {variable}; }}")
    listed = "|".join(re.escape(host) for host in allowed.hosts)
    lines.append(f'if ({checked} !~* "^({listed})$") {{ return 500 "Bad Host\\n"; }}')
    return lines


def _scheme_redirect(redirect: SchemeRedirect) -> list[str]:
    """Over HTTPS, a Host naming another port than the redirect's is sent there (Traefik drops
    :443 from both URLs before comparing them); a marker variable, as nginx's `if` has no
    `and`."""
    port, mark = "$certbotless_host_port", "$certbotless_scheme_moved"
    target = "" if redirect.port == 443 else f":{redirect.port}"
    location = f"https://$host{target}$request_uri"
    if redirect.scheme != "https":
        return _other_scheme(redirect)
    get_status, other_status = redirect.statuses
    return [
        f'set {port} "";',
        f'if ($certbotless_host ~ ":([0-9]+)$") {{ set {port} ":$1"; }}',
        f'if ({port} = ":443") {{ set {port} ""; }}',
        f'set {mark} "";',
        f'if ({port} != "{target}") {{ set {mark} "y"; }}',
        f'if ($https != "on") {{ set {mark} ""; }}',
        f'if ($request_method = GET) {{ set {mark} "${{certbotless_scheme_moved}}g"; }}',
        f'if ({mark} = "yg") {{ return {get_status} {location}; }}',
        f'if ({mark} = "y") {{ return {other_status} {location}; }}',
    ]


def _other_scheme(redirect: SchemeRedirect) -> list[str]:
    """Traefik's URL of the request (the host split from its port, as Go's SplitHostPort;
    http's :80 and https's :443 dropped) against the redirect's: redirected when they differ."""
    host, port, old, new = ("$certbotless_bare_host", "$certbotless_host_port",
                            "$certbotless_scheme_from", "$certbotless_scheme_to")  # fmt: skip
    mark = "$certbotless_scheme_moved"
    target = f":{redirect.port}" if redirect.port else ""
    get_status, other_status = redirect.statuses
    return [
        f'set {host} $certbotless_host; set {port} "";',
        f'if ($certbotless_host ~ "^(\\[[^\\]]*\\]|[^:]*)(:[0-9]*)$") '
        f"{{ set {host} $1; set {port} $2; }}",
        f'set {mark} "$scheme{port}";',
        f'if ({mark} ~ "^(http:80|https:443)$") {{ set {port} ""; }}',
        f'set {old} "$scheme://{host}{port}$request_uri";',
        f'set {new} "{redirect.scheme}://{host}{target}$request_uri";',
        f'set {mark} "";',
        f'if ({old} != {new}) {{ set {mark} "y"; }}',
        f'if ($request_method = GET) {{ set {mark} "${{certbotless_scheme_moved}}g"; }}',
        f'if ({mark} = "yg") {{ return {get_status} {new}; }}',
        f'if ({mark} = "y") {{ return {other_status} {new}; }}',
    ]


REDIRECTED_URL = "$certbotless_redirected_by_njs"  # njs's redirectedUrl (see the .js)


def _redirect(redirect: RedirectRegex) -> list[str]:
    """Go's ReplaceAllString on the URL as sent, and a redirect when it changed (a marker
    variable: nginx's `if` has no `and`); 502 when Go cannot parse the new URL."""
    url, to, mark = "$certbotless_redirect_from", "$certbotless_redirect_to", "$certbotless_moved"
    get_status, other_status = redirect.statuses
    if redirect.by_njs:
        return _redirect_by_njs(redirect)
    if redirect.unparsable:
        return [f'set {url} "$scheme://$certbotless_host$request_uri";',
                f'if ({url} ~ "^(?>{quoted(redirect.regex)})") {{ return 502; }}']  # fmt: skip
    return [
        f'set {url} "$scheme://$certbotless_host$request_uri";',
        f"set {to} {url};",
        f'if ({url} ~ "^(?>{quoted(redirect.regex)})([\\s\\S]*)$") '
        f'{{ set {to} "{redirect.replacement}"; }}',
        f'set {mark} "";',
        f'if ({to} != {url}) {{ set {mark} "y"; }}',
        f'if ($request_method = GET) {{ set {mark} "${{certbotless_moved}}g"; }}',
        f'if ({mark} = "yg") {{ return {get_status} {to}; }}',
        f'if ({mark} = "y") {{ return {other_status} {to}; }}',
    ]


def _redirect_by_njs(redirect: RedirectRegex) -> list[str]:
    """njs's redirectedUrl: "" for no redirect, "!502" for Traefik's 502, else the new URL."""
    to, mark = "$certbotless_redirect_to", "$certbotless_moved"
    get_status, other_status = redirect.statuses
    return [
        "absolute_redirect off;",  # Traefik's Location as made, even a relative one
        'set $certbotless_redirect_from "$scheme://$certbotless_host$request_uri";',
        f'set $certbotless_redirect_regex "{in_nginx_string(redirect.regex)}";',
        f'set $certbotless_redirect_replacement "{in_nginx_string(redirect.replacement)}";',
        f"set {to} {REDIRECTED_URL};",
        f'if ({to} = "!502") {{ return 502; }}',
        f'set {mark} "";',
        f'if ({to} != "") {{ set {mark} "y"; }}',
        f'if ($request_method = GET) {{ set {mark} "${{certbotless_moved}}g"; }}',
        f'if ({mark} = "yg") {{ return {get_status} {to}; }}',
        f'if ({mark} = "y") {{ return {other_status} {to}; }}',
    ]


# The path as the client wrote it (escaped), without the query: a named capture, which nginx
# does not escape again as it escapes `$1` once the request's URI had a `%`.
RAW_PATH = 'if ($request_uri ~ "^(?<certbotless_request_path>[^?]*)") { }'
# One character of the path as the client wrote it: an escape or a character (nginx refuses a
# `%` that starts no escape, and a space).
_UNIT = "(?:%[0-9A-Fa-f]{2}|[^% ])"
# "<decoded> <raw>" when the raw path has as many characters as the decoded one, counted
# in _UNITs: nginx changed nothing but the escapes (no merged slashes, no dot segments), so
# the decoded path's characters are the raw path's, one for one.
_SAME_LENGTH = f"^([\\s\\S](?1){_UNIT}| )"
ALIGNED = "$certbotless_aligned"


def raw_path_check() -> list[str]:
    """The raw path, and ALIGNED set to "y" when each of its characters is one of $uri's."""
    pair = "$certbotless_path_pair"
    return [RAW_PATH, f'set {pair} "$uri $certbotless_request_path";', f'set {ALIGNED} "";',
            f'if ({pair} ~ "{_SAME_LENGTH}$") {{ set {ALIGNED} "y"; }}']  # fmt: skip


def raw_upstream(path: str, when: str = f'{ALIGNED} = "y"') -> str:
    """The service asked for `path` as written (with the query), as Traefik passes on the
    raw path: a URI in proxy_pass goes as is, where nginx would escape a rewritten $uri."""
    return f'if ({when}) {{ set $upstream "${{upstream}}{path}$is_args$args"; }}'


def strip_prefix_regex_rewrites(strip: StripPrefixRegex) -> str:
    """Traefik's stripPrefix(Regex): for each regex in turn, its match at the path's start when
    not empty (atomic: PCRE keeps the match Go's leftmost-first search picks) is removed, the
    rest given a leading `/` (none when nothing is left: the service is asked for `/`, or for
    the added prefix alone) after the added prefix; the first that matches ends the rewrites.
    A rest that starts with a `.` or `..` segment is answered 400, as Traefik refuses a path
    that cleaning would change. As Traefik, the rest is taken from the raw path (as many of
    its characters as the decoded prefix has, an escape counting one), so `%2F` stays
    escaped; when nginx normalized the path (merged slashes, dot segments), the decoded rest
    is sent escaped again. When no regex matches, the added prefix goes before the path."""
    prefix, added = "$certbotless_stripped_prefix", strip.add_prefix
    lines = [f'set {prefix} "";']
    # The first regex that matches names the prefix: set last, so the list is read backwards.
    for written, _groups in reversed(strip.regexes):
        regex = quoted(written)
        lines.append(f'if ($uri ~ "^(?<certbotless_stripped_prefix>(?>{regex}))(?<=[\\s\\S])") '
                     "{ }")  # fmt: skip
    lines += raw_path_check() + _raw_rest(added)
    for written, groups in strip.regexes:
        regex = quoted(written)  # PCRE text inside nginx's "…"
        matched = f"^(?>{regex})(?<=[\\s\\S])"
        rest = f"${groups + 1}"
        lines += [f'if ($uri ~ "{matched}\\.\\.?(?:/|$)") {{ return 400; }}',
                  f'rewrite "{matched}$" {added or "/"} break;',
                  f'rewrite "{matched}(/[\\s\\S]*)$" {added}{rest} break;',
                  f'rewrite "{matched}([\\s\\S]*)$" {added}/{rest} break;']  # fmt: skip
    if added:  # no regex matched: the added prefix before the whole path
        lines.append(f"rewrite ^(.*)$ {added}$1 break;")
    lines.append(f"proxy_set_header X-Forwarded-Prefix {prefix};")
    return "".join(f"\n            {line}" for line in lines)


def _raw_rest(added: str) -> list[str]:
    """The raw path after as many of its characters as the stripped prefix has, given a
    leading `/` after `added`, sent to the service when the raw path is aligned with $uri."""
    pair, rest, path = "$certbotless_strip_pair", "$certbotless_raw_rest", "$certbotless_raw_path"
    mark = "$certbotless_raw_strip"
    # Nothing stripped: the path as it came, after the added prefix (none: nginx's own path).
    unstripped = f'set {path} "{added}$certbotless_request_path";' if added else f'set {mark} "";'
    return [
        f'set {pair} "$certbotless_stripped_prefix $certbotless_request_path";',
        f'set {rest} "";',
        f'if ({pair} ~ "{_SAME_LENGTH}(?<certbotless_raw_rest>[^ ]*)$") {{ }}',
        f'set {path} "{added}/{rest}";',
        f'if ({rest} ~ "^/") {{ set {path} "{added}{rest}"; }}',
        f'if ({rest} = "") {{ set {path} "{added or "/"}"; }}',
        f'set {mark} "$certbotless_aligned";',
        f'if ($certbotless_stripped_prefix = "") {{ {unstripped} }}',
        raw_upstream(path, f'{mark} = "y"'),
    ]
