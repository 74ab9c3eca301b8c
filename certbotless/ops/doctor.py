"""`certbotless doctor`: everything certbotless needs, checked in order, each with its fix."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from certbotless.acme.challenges import TokenStore
from certbotless.acme.errors import AcmeError
from certbotless.acme.http01 import ChallengeNotServed, EdgeSelfCheck
from certbotless.acme.issuer import AcmeIssuer
from certbotless.daemon.alerts import channels_for
from certbotless.labels.settle import EdgeNotFound, discover, find_edge_service
from certbotless.model import CHALLENGE_PREFIX, ServiceInfo
from certbotless.ops.account_key import AccountKeyUnavailable
from certbotless.redaction import Redactor
from certbotless.settings import NginxConfMode, Settings
from certbotless.swarm.api import SWARM_ERRORS, Swarm, docker_endpoint
from certbotless.swarm.lease import LEASE_CONFIG, SwarmPassLock
from certbotless.swarm.store import CertStore

# Enough to show a pattern; a swarm with hundreds of names should not wait on each.
MAX_DOMAINS_CHECKED = 20


@dataclass(frozen=True)
class Check:
    """One finding."""

    what: str
    ok: bool
    detail: str
    fix: str = ""


class Doctor:
    def __init__(
        self,
        settings: Settings,
        swarm: Swarm,
        tokens: TokenStore,
        issuer_factory: Callable[[], AcmeIssuer],
        lease: SwarmPassLock | None = None,
        challenge_timeout: float = 60.0,
        store: CertStore | None = None,
    ) -> None:
        self.lease = lease
        self.store = store
        self.settings = settings
        self.swarm = swarm
        self.tokens = tokens
        self.issuer_factory = issuer_factory
        self.challenge_timeout = challenge_timeout

    def run(self) -> list[Check]:
        """Every check, then the alert channels; no secret in any of their words."""
        redact = Redactor(self.settings.secrets)
        return [
            dataclasses.replace(check, detail=redact(check.detail), fix=redact(check.fix))
            for check in [*self._swarm_and_acme_checks(), self._alerts_check()]
        ]

    def _alerts_check(self) -> Check:
        channels = ", ".join(channel.name for channel in channels_for(self.settings))
        return Check("alerts", True, channels or "none (CERTBOTLESS_ALERT_WEBHOOK and "
                     "CERTBOTLESS_SMTP_URL are unset)")  # fmt: skip

    def _swarm_and_acme_checks(self) -> list[Check]:
        checks: list[Check] = []
        try:
            info = self.swarm.engine_info()
        except SWARM_ERRORS as error:
            fix = (
                "deploy the docker-api proxy of stacks/edge.yml with the sidecar (DOCKER_HOST), "
                "or mount /var/run/docker.sock into the certbotless service"
            )
            return [Check(f"Docker API ({docker_endpoint()})", False, str(error), fix)]
        checks.append(Check("Docker API", True, f"engine {info.get('ServerVersion', '?')}"))
        manager = bool((info.get("Swarm") or {}).get("ControlAvailable"))
        checks.append(
            Check("on a manager", manager, "yes" if manager else "this node is not a manager",
                  "constrain the certbotless service to node.role == manager")
        )  # fmt: skip
        if not manager:
            return checks
        services = self.swarm.services()
        edge = self._edge_check(services, checks)
        if edge is not None:
            checks.append(self._challenge_through_tasks(edge))
            checks.append(self._challenge_from_outside(services, edge))
        checks.extend(self._acme_checks())
        if self.lease is not None:
            checks.append(self._lease_check())
        if self.store is not None:
            checks.append(store_check(self.store))
        return checks

    def _lease_check(self) -> Check:
        assert self.lease is not None
        state = self.lease.state()
        if state.newer:
            return Check("pass lease", False, state.newer)
        now = datetime.now(UTC)
        if not state.holder or state.expires is None or state.expires <= now:
            return Check("pass lease", True, f"free (config {LEASE_CONFIG})")
        left = (state.expires - now).total_seconds()
        return Check("pass lease", True,
                     f"held by {state.holder}, for {left:.0f} s more unless renewed")  # fmt: skip

    def _edge_check(self, services: list[ServiceInfo], checks: list[Check]) -> ServiceInfo | None:
        own_name = self.settings.own_service or self.swarm.own_service_name()
        try:
            name = self.settings.nginx_service or find_edge_service(services, own_name)
        except EdgeNotFound as missing:
            checks.append(Check("nginx service", False, str(missing),
                                "label the nginx service of certbotless's stack "
                                "certbotless.edge=true"))  # fmt: skip
            return None
        edge = next((s for s in services if s.name == name), None)
        if edge is None:
            fix = "set CERTBOTLESS_NGINX_SERVICE to the nginx service's name"
            checks.append(Check("nginx service", False, f"no service is named {name}", fix))
            return None
        networks = ", ".join(edge.network_names) or "no network"
        own = next((s for s in services if s.name == own_name), None)
        if own is not None and not set(own.network_ids) & set(edge.network_ids):
            checks.append(
                Check("nginx service", False,
                      f"{edge.name} (on {networks}) shares no network with {own.name}, so it "
                      "cannot forward ACME challenges",
                      f"attach both to one overlay network, e.g. {networks.split(', ')[0]}")
            )  # fmt: skip
            return None
        checks.append(Check("nginx service", True, f"{edge.name} on {networks}"))
        return edge

    def _challenge_through_tasks(self, edge: ServiceInfo) -> Check:
        what = "challenge path through every nginx task"
        # Straight to each task: with the PROXY protocol header the front would have sent.
        problem = self._challenge_problem(
            f"tasks.{edge.name}", "certbotless-doctor.invalid", task=True
        )
        if problem:
            fix = (
                f"nginx must forward {CHALLENGE_PREFIX} to "
                f"{self.settings.responder_upstream} (see `certbotless render`)"
            )
            return Check(what, False, problem, fix)
        return Check(what, True, f"every task of {edge.name} answers")

    def _challenge_from_outside(self, services: list[ServiceInfo], edge: ServiceInfo) -> Check:
        """As the CA will: each wanted domain resolved by DNS, on port 80."""
        what = "challenge path from outside (DNS, port 80)"
        routing = self.settings.nginx_conf == NginxConfMode.RENDERED
        domains = sorted(
            {d for spec in discover(services, edge.name, routing).specs for d in spec.domains}
        )
        if not domains:
            return Check(what, True, "no domain is wanted yet")
        failing = []
        for domain in domains[:MAX_DOMAINS_CHECKED]:
            problem = self._challenge_problem(domain, domain, timeout=5)
            if problem:
                failing.append(problem)
        checked = min(len(domains), MAX_DOMAINS_CHECKED)
        if failing:
            return Check(what, False, "; ".join(failing),
                         "point each domain's DNS at the nodes that run nginx and let port 80 "
                         "in: the CA connects there")  # fmt: skip
        return Check(what, True, f"{checked} of {len(domains)} domains checked, all answer")

    def _challenge_problem(
        self, address: str, domain: str, timeout: float | None = None, task: bool = False
    ) -> str:
        token = "certbotless-doctor-" + secrets.token_urlsafe(16)
        self.tokens.put(token, token + ".check")
        check = EdgeSelfCheck(
            address,
            timeout=timeout or self.challenge_timeout,
            proxy_protocol=task and self.settings.proxy_protocol,
        )
        try:
            check.wait_until_served(domain, token, token + ".check")
        except ChallengeNotServed as error:
            return str(error)
        finally:
            self.tokens.remove(token)
        return ""

    def _acme_checks(self) -> list[Check]:
        try:
            issuer = self.issuer_factory()
        except AccountKeyUnavailable as error:
            return [Check("ACME account key", False, str(error),
                          "run this in the certbotless service, which mounts the key")]  # fmt: skip
        try:
            directory = issuer.acme.directory
        except AcmeError as error:
            fix = "check CERTBOTLESS_ACME_DIRECTORY; for a private CA set CERTBOTLESS_CA_BUNDLE"
            return [Check("ACME directory", False, str(error), fix)]
        checks = [
            Check(
                "ACME directory",
                True,
                f"{issuer.directory_url} ({len(directory.to_partial_json())} resources)",
            )
        ]
        try:
            account = issuer.existing_account()
        except AcmeError as error:
            fix = "see the CA's words; set CERTBOTLESS_EAB_* if it requires EAB"
            checks.append(Check("ACME account", False, str(error), fix))
        else:
            checks.append(
                Check("ACME account", True, account or "none yet: registered at the first order")
            )
        return checks


def store_check(store: CertStore) -> Check:
    """Whether the store's objects can be authenticated here, and those certbotless did not
    make (ignored by every pass, never removed)."""
    if store.objects.unauthenticated:
        return Check("certificate store", False, "the store key is not mounted here, so what "
                     "certbotless made cannot be told from what carries its labels",
                     "run it in the sidecar: docker exec <sidecar> certbotless doctor")  # fmt: skip
    problems = store.untrusted()
    if not problems:
        return Check("certificate store", True, "every object with certbotless's labels is its own")
    named = "; ".join(problem.message for problem in problems[:10])
    more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
    return Check("certificate store", False, f"{len(problems)} objects: {named}{more}",
                 "remove them (`certbotless list` names them all)")  # fmt: skip
