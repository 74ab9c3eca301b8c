"""passTLSClientCert: the client's certificate (`pem`) and names from it (`info.subject.*`,
`info.issuer.*`) passed to the service in Traefik's X-Forwarded-Tls-Client-Cert(-Info)
headers. Only a host whose TLS options ask for client certificates gets one; the info fields
nginx has no variable for, or gives in a form its configuration cannot turn into Traefik's,
are refused by name."""

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
    "info.notafter": "nginx gives the validity dates as text ($ssl_client_v_end, `Dec  6 "
    "21:00:00 2027 GMT`) and its configuration cannot turn them into the Unix time Traefik "
    "sends (NA=…)",
    "info.notbefore": "nginx gives the validity dates as text ($ssl_client_v_start) and its "
    "configuration cannot turn them into the Unix time Traefik sends (NB=…)",
    "info.serialnumber": "nginx gives the serial number in hexadecimal ($ssl_client_serial) "
    "and its configuration cannot write it in decimal, as Traefik sends it",
    "info.sans": "nginx has no variable for the certificate's subject alternative names",
}
_SUBJECT = {option: header for option, header, _ in DN_ATTRIBUTES}
_ISSUER = {option: header for option, header in _SUBJECT.items() if header != "OU"}


def apply(route: Route, mw: Middleware, context: Context) -> Route:
    known_fields(mw, {"pem", *_REFUSED, *(f"info.subject.{o}" for o in _SUBJECT),
                      *(f"info.issuer.{o}" for o in _ISSUER)})  # fmt: skip
    for key, why in _REFUSED.items():
        if flag(mw, key):
            raise Unsupported(mw.label(key), mw.value(key), f"passTLSClientCert's {key}: {why}; "
                              "pass info.subject/info.issuer names or the pem, from which the "
                              "service reads the rest")  # fmt: skip
    subject = tuple(h for o, h in _SUBJECT.items() if flag(mw, f"info.subject.{o}"))
    issuer = tuple(h for o, h in _ISSUER.items() if flag(mw, f"info.issuer.{o}"))
    passing = PassClientCert(flag(mw, "pem"), subject, issuer)
    return replace(route, client_tls=replace(route.client_tls, pass_cert=passing))
