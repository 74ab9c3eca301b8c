"""passTLSClientCert: the client's certificate (`pem`) and names from it (`info.subject.*`,
`info.issuer.*`; `info.serialNumber`, `info.notBefore`, `info.notAfter` written by njs, as
nginx gives them in another form) passed to the service in Traefik's
X-Forwarded-Tls-Client-Cert(-Info) headers. Only a host whose TLS options ask for client
certificates gets one; `info.sans`, which nginx has no variable for, is refused by name."""

from __future__ import annotations

from dataclasses import replace

from certbotless.client_tls import DN_ATTRIBUTES, PassClientCert
from certbotless.labels.traefik.middlewares.options import (
    Context,
    Middleware,
    Unsupported,
    flag,
    known_fields,
)
from certbotless.model import Route

# Traefik's options nginx cannot give as Traefik writes them, with why.
_REFUSED = {
    "info.sans": "nginx has no variable for the certificate's subject alternative names",
}
# The numbers njs writes (option → Traefik's name in the header), in Traefik's order.
_NUMBERS = {"info.serialnumber": "SerialNumber", "info.notbefore": "NB", "info.notafter": "NA"}
_SUBJECT = {option: header for option, header, _ in DN_ATTRIBUTES}
_ISSUER = {option: header for option, header in _SUBJECT.items() if header != "OU"}


def apply(route: Route, mw: Middleware, context: Context) -> Route:
    known_fields(mw, {"pem", *_REFUSED, *_NUMBERS, *(f"info.subject.{o}" for o in _SUBJECT),
                      *(f"info.issuer.{o}" for o in _ISSUER)})  # fmt: skip
    for key, why in _REFUSED.items():
        if flag(mw, key):
            raise Unsupported(mw.label(key), mw.value(key), f"passTLSClientCert's {key}: {why}; "
                              "pass info.subject/info.issuer names or the pem, from which the "
                              "service reads the rest")  # fmt: skip
    subject = tuple(h for o, h in _SUBJECT.items() if flag(mw, f"info.subject.{o}"))
    issuer = tuple(h for o, h in _ISSUER.items() if flag(mw, f"info.issuer.{o}"))
    numbers = tuple(name for option, name in _NUMBERS.items() if flag(mw, option))
    passing = PassClientCert(flag(mw, "pem"), subject, issuer, numbers)
    return replace(route, client_tls=replace(route.client_tls, pass_cert=passing))
