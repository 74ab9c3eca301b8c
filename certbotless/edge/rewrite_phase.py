"""A route's Traefik middlewares that answer or rewrite in nginx's rewrite phase, before its
access checks (model's `RewritePhase`): the allowed hosts check (500 "Bad Host"), the regex
redirect, and the regex prefix strip. Their regexes are PCRE already written to read as Go's."""

from __future__ import annotations

import re

from certbotless.edge.conditions import quoted
from certbotless.model import Route
from certbotless.rewrite_phase import AllowedHosts, RedirectRegex, StripPrefixRegex

# The host as Go's r.Host has it: the Host header (HTTP/2's :authority when none was sent).
_HOST = """set $certbotless_host $http_host;
if ($certbotless_host = "") { set $certbotless_host $host; }"""


def early_answers(route: Route) -> str:
    """The allowed hosts check, then the regex redirect (Traefik's headers middleware checks
    hosts after a CORS preflight, which comes before this)."""
    phase = route.rewrite_phase
    lines = []
    if phase.allowed_hosts is not None or phase.redirect_regex is not None:
        lines += _HOST.splitlines()
    if phase.allowed_hosts is not None:
        lines += _allowed_hosts(phase.allowed_hosts)
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


def _allowed_hosts(allowed: AllowedHosts) -> list[str]:
    checked = "$certbotless_checked_host"
    lines = [f"set {checked} $certbotless_host;"]
    for header in reversed(allowed.headers):  # the first one set wins: it is set last
        name = header.lower()
        if name in REMOVED_HEADERS:
            continue
        variable = _ENTRY_POINT_HEADERS.get(name, "$http_" + name.replace("-", "_"))
        lines.append(f"if ({variable}) {{ set {checked} {variable}; }}")
    listed = "|".join(re.escape(host) for host in allowed.hosts)
    lines.append(f'if ({checked} !~* "^({listed})$") {{ return 500 "Bad Host\\n"; }}')
    return lines


def _redirect(redirect: RedirectRegex) -> list[str]:
    """Go's ReplaceAllString on the URL as sent, and a redirect when it changed (a marker
    variable: nginx's `if` has no `and`)."""
    url, to, mark = "$certbotless_redirect_from", "$certbotless_redirect_to", "$certbotless_moved"
    get_status, other_status = redirect.statuses
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


def strip_prefix_regex_rewrites(strip: StripPrefixRegex) -> str:
    """Traefik's stripPrefix(Regex): for each regex in turn, its match at the path's start when
    not empty (atomic: PCRE keeps the match Go's leftmost-first search picks) is removed, the
    rest given a leading `/` (none when nothing is left: the service is asked for `/`, or for
    the added prefix alone) after the added prefix; the first that matches ends the rewrites.
    A rest that starts with a `.` or `..` segment is answered 400, as Traefik refuses a path
    that cleaning would change."""
    prefix, added = "$certbotless_stripped_prefix", strip.add_prefix
    lines = [f'set {prefix} "";']
    for written, groups in strip.regexes:
        regex = quoted(written)  # PCRE text inside nginx's "…"
        matched = f"^(?>{regex})(?<=[\\s\\S])"
        rest = f"${groups + 1}"
        lines += [f'if ($uri ~ "{matched}\\.\\.?(?:/|$)") {{ return 400; }}',
                  f'if ($uri ~ "^((?>{regex}))(?<=[\\s\\S])") {{ set {prefix} $1; }}',
                  f'rewrite "{matched}$" {added or "/"} break;',
                  f'rewrite "{matched}(/[\\s\\S]*)$" {added}{rest} break;',
                  f'rewrite "{matched}([\\s\\S]*)$" {added}/{rest} break;']  # fmt: skip
    lines.append(f"proxy_set_header X-Forwarded-Prefix {prefix};")
    return "".join(f"\n            {line}" for line in lines)
