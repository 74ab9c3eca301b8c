"""Traefik middlewares (defined in labels or in dynamic-configuration files) → options of the
route they are applied to, one module per middleware kind as Traefik keeps
`pkg/middlewares/<name>/`.

Each kind's module has `apply(route, middleware, context) -> Route`: it reads the middleware's
options (`options.Middleware`; `options.known_fields` refuses the ones it does not know) and
returns the route with them applied, raising `options.Unsupported` for what it cannot honour.
`apply.py` applies a router's middlewares in order: resolving names, chains (which name other
middlewares, so they are its own), Traefik 1's frontend labels, and refusing the route (a
middleware that may guard access) or serving it without the middleware (one that only shapes
requests, `apply.SHAPING_KINDS`).

To add a middleware: a new module here with its `apply`, and one line in APPLY_BY_KIND below,
keyed by Traefik's type name in lower case (`traefik.http.middlewares.<name>.<type>.<option>`);
a kind that only shapes requests also goes in `apply.SHAPING_KINDS`, if it is not there yet.
"""

from __future__ import annotations

from certbotless.labels.traefik.middlewares import (
    add_prefix,
    basic_auth,
    buffering,
    circuit_breaker,
    compress,
    digest_auth,
    errors,
    forward_auth,
    headers,
    in_flight_req,
    ip_allow_list,
    pass_tls_client_cert,
    rate_limit,
    redirect_regex,
    redirect_scheme,
    replace_path,
    replace_path_regex,
    retry,
    strip_prefix,
    strip_prefix_regex,
)
from certbotless.labels.traefik.middlewares.options import Apply

# Traefik's type name, lower case → the `apply` of its module.
APPLY_BY_KIND: dict[str, Apply] = {
    "addprefix": add_prefix.apply,
    "basicauth": basic_auth.apply,
    "buffering": buffering.apply,
    "circuitbreaker": circuit_breaker.apply,
    "compress": compress.apply,
    "digestauth": digest_auth.apply,
    "errors": errors.apply,
    "forwardauth": forward_auth.apply,
    "headers": headers.apply,
    "inflightreq": in_flight_req.apply,
    "ipallowlist": ip_allow_list.apply,
    "ipwhitelist": ip_allow_list.apply,  # Traefik v2's name for ipAllowList
    "passtlsclientcert": pass_tls_client_cert.apply,
    "ratelimit": rate_limit.apply,
    "redirectregex": redirect_regex.apply,
    "redirectscheme": redirect_scheme.apply,
    "replacepath": replace_path.apply,
    "replacepathregex": replace_path_regex.apply,
    "retry": retry.apply,
    "stripprefix": strip_prefix.apply,
    "stripprefixregex": strip_prefix_regex.apply,
}
