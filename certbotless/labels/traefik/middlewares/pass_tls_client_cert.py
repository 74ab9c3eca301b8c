"""passTLSClientCert: the client's certificate (`pem`) and names from it (`info.subject.*`,
`info.issuer.*`; `info.serialNumber`, `info.notBefore`, `info.notAfter` and `info.sans` written
by njs, as nginx gives them in another form or not at all) passed to the service in Traefik's
X-Forwarded-Tls-Client-Cert(-Info) headers. Only a host whose TLS options ask for client
certificates gets one."""

from __future__ import annotations

from dataclasses import replace

from certbotless.client_tls import DN_ATTRIBUTES, PassClientCert
from certbotless.labels.traefik.middlewares.options import (
    Context,
    Middleware,
    flag,
    known_fields,
)
from certbotless.model import Route

# The fields njs writes (option → Traefik's name in the header), in Traefik's order.
_BY_NJS = {"info.serialnumber": "SerialNumber", "info.notbefore": "NB", "info.notafter": "NA",
           "info.sans": "SAN"}  # fmt: skip
_SUBJECT = {option: header for option, header, _ in DN_ATTRIBUTES}
_ISSUER = {option: header for option, header in _SUBJECT.items() if header != "OU"}


def apply(route: Route, mw: Middleware, context: Context) -> Route:
    known_fields(mw, {"pem", *_BY_NJS, *(f"info.subject.{o}" for o in _SUBJECT),
                      *(f"info.issuer.{o}" for o in _ISSUER)})  # fmt: skip
    subject = tuple(h for o, h in _SUBJECT.items() if flag(mw, f"info.subject.{o}"))
    issuer = tuple(h for o, h in _ISSUER.items() if flag(mw, f"info.issuer.{o}"))
    by_njs = tuple(name for option, name in _BY_NJS.items() if flag(mw, option))
    passing = PassClientCert(flag(mw, "pem"), subject, issuer, by_njs)
    return replace(route, client_tls=replace(route.client_tls, pass_cert=passing))
