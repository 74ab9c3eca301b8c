"""Every enabled label dialect read and settled together, as the settings choose them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType

from certbotless.labels.claims import Ledger
from certbotless.labels.settle import EdgeNotFound, discover, find_edge_service
from certbotless.labels.status_route import merged, status_page_claims, status_target
from certbotless.labels.traefik.dynamic import read_dynamic_config
from certbotless.labels.traefik.labels import traefik_claims
from certbotless.labels.values import edge_may_mount
from certbotless.model import DialectClaims, Discovery, ServiceInfo
from certbotless.settings import NginxConfMode, Settings


def edge_if_any(settings: Settings, services: Sequence[ServiceInfo]) -> str | None:
    """The edge service: the configured one, else the one labelled in certbotless's own stack;
    None when there is neither."""
    try:
        return settings.nginx_service or find_edge_service(services, settings.own_service)
    except EdgeNotFound:
        return None


def discovered(
    settings: Settings,
    services: Sequence[ServiceInfo],
    edge: str | None,
    secrets: frozenset[str] | None = None,
    recorded: Mapping[str, str] = MappingProxyType({}),
) -> Discovery:
    """The routes and certificates every enabled label dialect asks for, settled together: the
    first claimant of a name, host, host+path or middleware name keeps it, whichever dialect it
    wrote. `secrets`: the swarm's secret names, which basic-auth labels name (None: not known,
    as for `lint`); only those the edge may mount count. `recorded`: the claims recorded before
    (`Discovery.claims`: the claims now)."""
    if secrets is not None:
        secrets = frozenset(s for s in secrets if edge_may_mount(s, settings.user_secrets))
    ledger = Ledger(recorded)
    traefik = (
        traefik_claims(
            services,
            settings.traefik_exposed_by_default,
            secrets,
            read_dynamic_config(settings.traefik_dynamic_config),
            status_target(settings, services),
            settings.traefik_default_rule,
            settings.traefik_rule_syntax,
            settings.traefik_server_urls,
            ledger,
        )
        if "traefik" in settings.label_dialects
        else {}
    )
    foreign = merged(_written_in("traefik", traefik), status_page_claims(services, settings))
    return discover(
        services,
        edge,
        routing=settings.nginx_conf == NginxConfMode.RENDERED,
        native="certbotless" in settings.label_dialects,
        foreign=foreign,
        secrets=secrets,
        ledger=ledger,
        dns01=settings.dns01_allowed,
        issuers=tuple(issuer.name for issuer in settings.issuers),
    )


def _written_in(dialect: str, claims: Mapping[str, DialectClaims]) -> dict[str, DialectClaims]:
    """Each route marked with the dialect whose labels asked for it (the status page says)."""
    return {
        service: replace(found, routes=tuple(replace(r, dialect=dialect) for r in found.routes))
        for service, found in claims.items()
    }
