"""The route to certbotless's own status page: a host named by the `certbotless.status_page`
label on the sidecar's service (and Traefik's `api@internal`, see labels/traefik/labels.py), on
the page's listener. The page protects itself whatever the route; the route repeats the page's
allowlist and forward auth so that the edge refuses early too."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from certbotless.labels.values import CERTIFICATE_NAME_RE, InvalidLabel, parse_hostname
from certbotless.model import (
    CertSpec,
    DialectClaims,
    LabelProblem,
    Route,
    ServiceInfo,
    StatusTarget,
)
from certbotless.settings import Settings

STATUS_PAGE_LABEL = "certbotless.status_page"


def status_target(settings: Settings, services: Sequence[ServiceInfo]) -> StatusTarget | None:
    """Where the status page is, when it is served and certbotless's own service is among
    `services` (a route names the service that owns it)."""
    page = settings.status_page
    if page is None or settings.own_service not in {s.name for s in services}:
        return None
    assert settings.own_service is not None
    return StatusTarget(settings.own_service, page.port, page.allow_from, page.forward_auth)


def status_page_claims(
    services: Sequence[ServiceInfo], settings: Settings
) -> dict[str, DialectClaims]:
    """The route and certificate the label on certbotless's own service asks for."""
    own = next((s for s in services if s.name == settings.own_service), None)
    if own is None or STATUS_PAGE_LABEL not in own.labels:
        return {}
    value = own.labels[STATUS_PAGE_LABEL]
    target = status_target(settings, services)
    if target is None:
        problem = LabelProblem(
            own.name, STATUS_PAGE_LABEL, value,
            "the status page is off: set CERTBOTLESS_STATUS_LISTEN and one of its protections "
            "(see docs/status-page.md), or remove this label",
        )  # fmt: skip
        return {own.name: DialectClaims(problems=(problem,))}

    def invalid(_label: str, message: str) -> InvalidLabel:
        return InvalidLabel(LabelProblem(own.name, STATUS_PAGE_LABEL, value, message))

    try:
        hosts = tuple(dict.fromkeys(parse_hostname(h, invalid) for h in value.split(",")))
    except InvalidLabel as refused:
        return {own.name: DialectClaims(problems=(refused.problem,))}
    route = Route(target.service, hosts, target.port, auth_url=target.auth_url,
                  allow_from=target.allow_from)  # fmt: skip
    certificates: tuple[tuple[str, CertSpec], ...] = ()
    if CERTIFICATE_NAME_RE.fullmatch(hosts[0]):
        certificates = ((STATUS_PAGE_LABEL, CertSpec(hosts[0], hosts)),)
    return {own.name: DialectClaims((route,), certificates)}


def merged(*claims: Mapping[str, DialectClaims]) -> dict[str, DialectClaims]:
    """Claims of several sources for the same services, together."""
    together: dict[str, DialectClaims] = {}
    for found in claims:
        for name, claim in found.items():
            had = together.get(name, DialectClaims())
            together[name] = DialectClaims(had.routes + claim.routes,
                                           had.certificates + claim.certificates,
                                           had.problems + claim.problems)  # fmt: skip
    return together
