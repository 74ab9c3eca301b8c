"""The application: every real implementation of the seams, built once from Settings."""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import replace
from datetime import UTC, datetime

from josepy.jwk import JWK

from certbotless.acme.account import ExternalAccountBinding
from certbotless.acme.caa import CaaPolicy, DnsCaaRecords, caa_identity
from certbotless.acme.challenges import TokenStore
from certbotless.acme.dns01 import Dns01Solver, DnsLookup, PropagationPolicy
from certbotless.acme.dns_providers import ProvidersFromSecrets
from certbotless.acme.errors import AcmeError
from certbotless.acme.http01 import EdgeHttp01Solver, EdgeSelfCheck
from certbotless.acme.issuer import AcmeIssuer, IssuerOptions
from certbotless.acme.issuer_chain import IssuerChain
from certbotless.acme.solvers import ChallengeSolvers
from certbotless.acme.tls_alpn01 import TlsAlpn01Solver
from certbotless.daemon.alerts import Alerter, channels_for
from certbotless.daemon.metrics import AcmeRequestMetrics, IssuerOrderMetrics
from certbotless.daemon.pass_history import PassHistory
from certbotless.daemon.scheduler import Daemon
from certbotless.edge.deployer import SwarmEdgeDeployer
from certbotless.edge.rollout import ServedCertificates
from certbotless.edge.watch import EdgeWatch
from certbotless.issuer_settings import IssuerSetting
from certbotless.labels.dialects import edge_if_any
from certbotless.model import Listed
from certbotless.ops.account_key import key_owners, resolve_account_key
from certbotless.ops.doctor import Doctor
from certbotless.ops.store_key import store_key_file
from certbotless.ops.views import listing, rendered
from certbotless.passes.reconcile import Reconciler
from certbotless.seams import PassParts, Progress
from certbotless.settings import Settings
from certbotless.swarm.api import SWARM_ERRORS, Swarm
from certbotless.swarm.authenticity import read_store_key
from certbotless.swarm.claims import SwarmClaimLedger
from certbotless.swarm.lease import SwarmPassLock
from certbotless.swarm.locks import FilePassLock
from certbotless.swarm.status import (
    StatusConfig,
    SwarmAlertMemory,
    SwarmDnsRecordLedger,
    SwarmOrderHistory,
    SwarmStatusStore,
)
from certbotless.swarm.store import CertStore
from certbotless.web.overview import Filter, Overview, overview
from certbotless.web.peers import EdgePeers
from certbotless.web.server import StatusServer
from certbotless.web.source import AppStatusSource, DaemonActions

log = logging.getLogger(__name__)


class App:
    def __init__(self, settings: Settings, swarm: Swarm | None = None,
                 issuer: AcmeIssuer | IssuerChain[AcmeIssuer] | None = None) -> None:  # fmt: skip
        self.swarm = swarm or Swarm()
        if settings.own_service is None:
            # Its stack is where certbotless takes the `certbotless.edge` label from.
            settings = replace(settings, own_service=self.swarm.own_service_name())
        # One-off jobs' owner: the sidecar's service (a restarted task cleans up after the last).
        self.swarm.owner = settings.own_service or self.swarm.owner
        self.swarm.trusts_stacks = settings.trust_stack_namespace
        self.settings = settings
        # Not authenticated where the key (made on the daemon's first start) is not mounted.
        self.store = CertStore(self.swarm, read_store_key(store_key_file(settings)))
        status_config = StatusConfig(self.swarm)
        self.statuses = SwarmStatusStore(status_config)
        self.alert_memory = SwarmAlertMemory(status_config)
        self.orders = SwarmOrderHistory(status_config)
        self.edge = SwarmEdgeDeployer(settings, self.swarm, self.store)
        holder = (
            f"{settings.own_service or 'certbotless'} on {socket.gethostname()} pid {os.getpid()}"
        )
        self.lease = SwarmPassLock(self.swarm, FilePassLock(settings.lock_file), holder)
        self.tokens = TokenStore(settings.challenge_dir)
        self.dns_records = SwarmDnsRecordLedger(status_config)
        self.dns_providers = ProvidersFromSecrets(
            settings.secrets_dir, settings.dns01_nameserver_port
        )
        # Set on SIGTERM: no new pass, no new order, no roll.
        self.stopping = threading.Event()
        # The daemon resolves it itself (it may mount the key into its own service first);
        # other commands read it on first use.
        self.account_keys: dict[str, JWK] | None = None
        self._issuer = IssuerChain([issuer]) if isinstance(issuer, AcmeIssuer) else issuer
        parts = PassParts(
            services=self.swarm,
            store=self.store,
            statuses=self.statuses,
            orders=self.orders,
            claims=SwarmClaimLedger(status_config, lambda: self.store.objects.key),  # signed
            edge=self.edge,
            lock=self.lease,
            issuer=lambda: self.issuer,
            solver_for=self.solver_for,
        )
        self.reconciler = Reconciler(settings, parts, self.stopping)
        # What each edge task serves, asked after each pass (through the edge's network, as
        # the self-check is).
        self.edge_watch = EdgeWatch(
            lambda: edge_if_any(settings, self.swarm.services()),
            self.swarm.tasks,
            lambda edge: ServedCertificates(
                f"tasks.{edge}", proxy_protocol=settings.proxy_protocol
            ),
        )
        watching = settings.self_check
        self.pass_history = PassHistory(
            after_add=(lambda record: self.edge_watch.after_pass(record.report))
            if watching
            else None
        )

    @property
    def issuer(self) -> IssuerChain[AcmeIssuer]:
        if self._issuer is None:
            self._issuer = IssuerChain(self.make_issuers(), IssuerOrderMetrics())
        return self._issuer

    def make_issuers(self) -> list[AcmeIssuer]:
        """One AcmeIssuer per CA of CERTBOTLESS_ACME_ISSUERS, each with its own account."""
        settings = self.settings
        keys = dict(self.account_keys or {})
        owners = key_owners(settings)
        issuers = []
        for issuer in settings.issuers:
            key = keys.get(issuer.name) or resolve_account_key(
                settings, self.swarm, self.store, False, owners[issuer.name]
            )
            eab = issuer.external_account_binding(settings.secrets_dir)
            issuers.append(AcmeIssuer(
                issuer.directory,
                key,
                ChallengeSolvers(EdgeHttp01Solver(self.tokens), self.dns01_solver(log.info),
                                 self.tls_alpn01_solver(log.info)),
                email=settings.email,
                ca_bundle=settings.ca_bundle,
                options=IssuerOptions(
                    eab=None if eab is None else ExternalAccountBinding(*eab),
                    preferred_chain=issuer.preferred_chain,
                    concurrency=settings.concurrency,
                    observer=AcmeRequestMetrics(issuer.name),
                    caa=self.caa_policy(issuer),
                    name=issuer.name,
                    profile=issuer.profile,
                ),
                stop=self.stopping,
            ))  # fmt: skip
        return issuers

    def ensure_accounts(self) -> None:
        """Each issuer's account registered or found (a failure is logged: a pass retries)."""
        for issuer in self.issuer.members:
            try:
                issuer.ensure_account()
            except AcmeError as error:
                log.warning("issuer %s: ACME account not checked yet: %s", issuer.name, error)

    def make_issuer(self) -> AcmeIssuer:
        """The first issuer (what `doctor` checks)."""
        return self.issuer.members[0]

    def caa_policy(self, issuer: IssuerSetting) -> CaaPolicy | None:
        """CAA checked before each order, for a CA whose CAA identity is known or set (an
        issuer's `caa`, else CERTBOTLESS_CAA_IDENTITIES when it is `off`)."""
        settings = self.settings
        off = (settings.caa_identities or "").strip().lower() == "off"
        identities = caa_identity(issuer.caa or ("off" if off else None), issuer.directory)
        records = DnsCaaRecords(settings.dns01_resolvers)
        return CaaPolicy(identities, records) if identities else None

    def solver_for(self, edge: str | None, progress: Progress) -> ChallengeSolvers:
        """HTTP-01 through the edge, checked through each of its tasks before the CA looks, and
        DNS-01, which first withdraws the records an earlier pass (or process) left: the pass
        lock is held, so no order of another pass is using them."""
        check = None
        if edge is not None and self.settings.self_check:
            check = EdgeSelfCheck(f"tasks.{edge}", proxy_protocol=self.settings.proxy_protocol)
        dns01 = self.dns01_solver(progress)
        try:
            for problem in dns01.withdraw_leftovers():
                log.warning("%s", problem)
        except SWARM_ERRORS as error:
            log.warning("cannot read the DNS-01 records left from before: %s", error)
        return ChallengeSolvers(
            EdgeHttp01Solver(self.tokens, check, progress), dns01, self.tls_alpn01_solver(progress)
        )

    def tls_alpn01_solver(self, progress: Progress) -> TlsAlpn01Solver | None:
        """TLS-ALPN-01's certificates, for this container's responder (None: it is off)."""
        if self.settings.tls_alpn_listen is None:
            return None
        return TlsAlpn01Solver(self.tokens.alpn, progress)

    def dns01_solver(self, progress: Progress) -> Dns01Solver:
        settings = self.settings
        return Dns01Solver(
            self.dns_providers,
            self.dns_records,
            DnsLookup(settings.dns01_resolvers, settings.dns01_nameserver_port),
            settings.dns01_provider,
            PropagationPolicy(
                settings.dns01_propagation_timeout, settings.dns01_propagation_interval
            ),
            progress,
        )

    def listing(self) -> list[Listed]:
        return listing(self.settings, self.swarm, self.store, self.statuses, self.edge,
                       self.reconciler.parts.claims.load())  # fmt: skip

    def render(self) -> str:
        return rendered(self.settings, self.swarm, self.store, self.edge,
                        self.reconciler.parts.claims.load())  # fmt: skip

    def doctor(self) -> Doctor:
        return Doctor(
            self.settings, self.swarm, self.tokens, self.make_issuer, self.lease, store=self.store
        )

    def overview(self) -> Overview:
        """What the status page shows, as far as a one-off command knows (no daemon: no passes
        and no edge probe)."""
        source = AppStatusSource(self.settings, self.swarm, self.orders, self.listing,
                                 PassHistory(), untrusted=self.store.untrusted,
                                 recorded=self.reconciler.parts.claims.load)  # fmt: skip
        return overview(source, Filter(), datetime.now(UTC))

    def status_server(self, daemon: Daemon) -> StatusServer | None:
        """The status page, when configured (StatusPageError when its htpasswd is unusable)."""
        page = self.settings.status_page
        if page is None:
            return None
        source = AppStatusSource(self.settings, self.swarm, self.orders, self.listing,
                                 daemon.history, self.edge_watch, self.store.untrusted,
                                 self.reconciler.parts.claims.load)  # fmt: skip
        # The edge's nginx tasks: the only peers whose forwarded headers the page believes.
        edge = EdgePeers(lambda: edge_if_any(self.settings, self.swarm.services()))
        return StatusServer(page, source, DaemonActions(daemon, self.reconciler), edge=edge)

    def alerter(self) -> Alerter | None:
        channels = channels_for(self.settings)
        return Alerter(channels, memory=self.alert_memory) if channels else None
