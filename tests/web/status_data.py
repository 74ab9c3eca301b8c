"""A status page over fake data, on a real listener: what the HTTP and browser tests load."""

from __future__ import annotations

import contextlib
from collections.abc import Container, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import bcrypt

from certbotless.daemon.pass_history import PassRecord
from certbotless.edge.watch import EdgeServing, EdgeTask
from certbotless.model import (
    BasicAuth,
    CertificateStatus,
    Condition,
    Discovery,
    FailureReason,
    KeyType,
    LabelProblem,
    Listed,
    PassReport,
    PastOrder,
    RenewalFailure,
    Route,
)
from certbotless.setting_values import OrderShare
from certbotless.settings import StatusPage
from certbotless.web.server import StatusServer
from tests.support.factories import stored_cert

# The real time: `certbotless list --json` (which the API must match) reads the clock.
NOW = datetime.now(UTC).replace(microsecond=0)
USER, PASSWORD = "ops", "correct horse battery staple"
SHA_HASH = "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ="  # a route's basic-auth users: never shown
CA_WORDS = (
    "urn:ietf:params:acme:error:unauthorized: 203.0.113.7: Invalid response from "
    "http://api.example.test/.well-known/acme-challenge/x: 404"
)


def _record(listed_name: str, domains: tuple[str, ...], **changes: object) -> CertificateStatus:
    record = CertificateStatus(listed_name, domains=domains, renew_source="lifetime")
    return replace(record, **changes)  # type: ignore[arg-type]


FALLBACK_REASON = "letsencrypt: unreachable (newOrder failed 6 times)"


def listing() -> list[Listed]:
    """An ok certificate, one expiring, one failing with the CA's words, one never issued and
    failing, one nobody asks for any more."""
    shop = stored_cert("shop", ("shop.example.test", "www.shop.example.test"),
                       issued=NOW - timedelta(days=20), version="1")  # fmt: skip
    old = stored_cert("old", ("old.example.test",), issued=NOW - timedelta(days=87), version="2")
    api = stored_cert("api", ("api.example.test",), issued=NOW - timedelta(days=70), version="3")
    manual = stored_cert("manual", ("manual.example.test",), issued=NOW - timedelta(days=5),
                         version="4", key_type=KeyType.RSA2048)  # fmt: skip
    failing = _record(
        "api", api.domains, serial=api.serial, not_after=api.not_after,
        condition=Condition.FAILING, reason=FailureReason.VALIDATION_FAILED, message=CA_WORDS,
        failures=3, last_failure=NOW - timedelta(minutes=10),
        next_attempt=NOW + timedelta(minutes=10), renew_at=NOW - timedelta(days=10),
    )  # fmt: skip
    never = _record(
        "new", ("new.example.test",), condition=Condition.FAILING,
        reason=FailureReason.CA_UNREACHABLE, message="the CA did not answer: timed out",
        failures=1, last_failure=NOW - timedelta(minutes=2),
        next_attempt=NOW + timedelta(minutes=3),
    )  # fmt: skip
    return [
        Listed("shop", shop, True, True, None,
               _record("shop", shop.domains, serial=shop.serial, not_after=shop.not_after,
                       condition=Condition.READY, renew_at=NOW + timedelta(days=40),
                       renew_source="ari", profile="shortlived", issuer="letsencrypt")),
        Listed("old", old, True, True, None,
               _record("old", old.domains, serial=old.serial, not_after=old.not_after,
                       condition=Condition.READY, renew_at=NOW - timedelta(days=27),
                       issuer="zerossl", skipped=(FALLBACK_REASON,))),
        Listed("api", api, True, True, RenewalFailure(NOW - timedelta(minutes=10), CA_WORDS),
               failing),
        Listed("new", None, None, True,
               RenewalFailure(NOW - timedelta(minutes=2), never.message), never),
        Listed("manual", manual, False, False, None, None),
    ]  # fmt: skip


ROUTES = (
    Route("shop_web", ("shop.example.test", "www.shop.example.test"), 8000),
    Route("api_app", ("api.example.test",), 5000),
    Route("legacy_site", ("old.example.test",), 80),
    Route("api_admin", ("api.example.test",), 9000, path="/admin", methods=("GET", "POST"),
          basic_auth=BasicAuth(users=(f"ops:{SHA_HASH}",)), allow_from=("10.0.0.0/8",),
          dialect="traefik"),
    Route("hello_web", ("hello.example.test",), 8080, redirect_to_https=False),
)  # fmt: skip
# What a label problem says, in its words.
PROBLEM = LabelProblem("blog_web", "traefik.http.middlewares.auth.digestauth.users", "ops:x",
                       "digest auth is not something nginx can do; use basicauth")  # fmt: skip
DISCOVERY = Discovery(ROUTES, (), (PROBLEM,))


def passes() -> list[PassRecord]:
    ok = PassReport(issued=("shop",), rolled=True, roll_seconds=4.2)
    records = tuple(row.status for row in listing() if row.status)
    bad = PassReport(
        failed={"api": CA_WORDS},
        rollout_error="nginx -t: unknown directive",
        roll_seconds=1.5,
        statuses=records,
    )
    return [
        PassRecord(NOW - timedelta(minutes=5), 12.3, bad),
        PassRecord(NOW - timedelta(hours=6), 31.0, ok),
    ]


ORDERS = [PastOrder(NOW - timedelta(days=d), ("shop.example.test",), True) for d in range(6)]
# A claimant whose orders failed: 10 in the last hour, each counting 3 against its share of 30.
ORDERS += [PastOrder(NOW - timedelta(minutes=m), (f"n{m}.example",), False,
                     claimant="service evil_app") for m in range(10)]  # fmt: skip


@dataclass
class FakeSource:
    rows: list[Listed] = field(default_factory=listing)

    def listing(self) -> list[Listed]:
        return list(self.rows)

    def discovery(self) -> Discovery:
        return DISCOVERY

    def orders(self) -> list[PastOrder]:
        return list(ORDERS)

    def order_share(self) -> OrderShare:
        return OrderShare()

    def passes(self) -> list[PassRecord]:
        return passes()

    def edge(self) -> EdgeServing:
        """Two nginx tasks; the second still serves shop's previous serial."""
        tasks = (EdgeTask("10.0.9.3", "node1abcdef0123456", "running"),
                 EdgeTask("10.0.9.4", "node2abcdef0123456", "running"))  # fmt: skip
        expected = {row.name: row.cert.serial for row in self.rows if row.cert}
        serials = {
            name: {task.address: serial for task in tasks} for name, serial in expected.items()
        }
        if "shop" in serials:
            serials["shop"]["10.0.9.4"] = "ab0"
        return EdgeServing(NOW - timedelta(minutes=4), tasks, serials, expected)


@dataclass
class RecordedActions:
    asked: list[tuple[str, str, str]] = field(default_factory=list)

    def renew(self, name: str, who: str) -> str:
        self.asked.append(("renew", name, who))
        return f"{name}: renewal asked for"

    def retry(self, name: str, who: str) -> str:
        self.asked.append(("retry", name, who))
        return f"{name}: retry asked for"

    def revoke(self, name: str, who: str, serial: str) -> str:
        self.asked.append(("revoke", name, who))
        return f"{name}: revocation asked for"


def write_htpasswd(directory: Path) -> Path:
    path = directory / "htpasswd"
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    path.write_text(f"# made by htpasswd -nB\n{USER}:{hashed.replace('$2b$', '$2y$', 1)}\n")
    return path


@contextlib.contextmanager
def serving(page: StatusPage, source: FakeSource | None = None,
            actions: RecordedActions | None = None,
            edge: Container[str] = frozenset()) -> Iterator[StatusServer]:  # fmt: skip
    """The real server on a free loopback port (`page.listen` should say port 0); `edge`: the
    addresses of the edge's nginx tasks."""
    server = StatusServer(page, source or FakeSource(), actions or RecordedActions(), edge=edge)
    server.start()
    try:
        yield server
    finally:
        server.stop()
