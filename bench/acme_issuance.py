"""Issuance benchmark: certbotless against certbot and lego, all on one local Pebble.

Run with `bash scripts/bench [--quick] [--concurrency N] [--consecutive N]`, which brings the rig
up first (pebble-challtestsrv answers every name with 127.0.0.1). This module starts its own Pebble
on 127.0.0.1:14200 with Pebble's defaults, so 5% of nonces are rejected as badNonce; Pebble
validates HTTP-01 on 127.0.0.1:5003, where each tool in turn answers.

Measured per tool: the median latency of one certificate (account already registered: one
warm-up issuance first, not counted in the median), the wall time for 50 distinct domains, and
the failed runs. certbotless orders the 50 domains at the concurrency it ships with
(`Settings().concurrency`), and again at `--concurrency` for comparison (shown, not judged); it
also issues `--consecutive` certificates one after another. The exit status is 1 when certbotless
misses a target (median <= 0.5 s, 50 domains <= 3 s, no failure).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.peers import Certbot, Lego, Peer
from certbotless.acme.challenges import TokenStore
from certbotless.acme.errors import AcmeError
from certbotless.acme.http01 import EdgeHttp01Solver
from certbotless.acme.issuer import AcmeIssuer, IssuerOptions
from certbotless.acme.keys import load_account_key
from certbotless.acme.responder import ChallengeResponder
from certbotless.model import CertSpec, IssuedCert
from certbotless.settings import Settings
from rig.pebble import PebbleServer, port_open
from rig.state import read_env

HOST = "127.0.0.1"
PEBBLE_PORT = 14200
MANAGEMENT_PORT = 15200
HTTP_PORT = 5003
FIFTY = 50
TARGET_MEDIAN = 0.5
TARGET_FIFTY = 3.0
SHOWN_ERRORS = 5
SHIPPED_CONCURRENCY = Settings().concurrency

Say = Callable[[str], None]


@dataclass
class ToolResult:
    """What one tool did: latencies of its successful timed runs, 50-domain wall time, failures."""

    name: str
    latencies: list[float] = field(default_factory=list)
    fifty: float | None = None
    fifty_estimated: bool = False
    runs: int = 0
    errors: list[str] = field(default_factory=list)

    def record(self, ok: bool, error: str = "") -> None:
        self.runs += 1
        if not ok:
            self.errors.append(error)

    @property
    def median(self) -> float | None:
        return statistics.median(self.latencies) if self.latencies else None


@dataclass
class Batch:
    """Outcome of a series of issuances: all at once (issue_many) or one after another."""

    seconds: float
    count: int
    errors: list[str]


@dataclass
class CertbotlessRuns:
    """certbotless's figures: the judged ones in `result`, plus the extra series."""

    result: ToolResult
    consecutive: Batch | None = None
    compared: Batch | None = None  # the 50 domains at --concurrency, for comparison


def domain(tool: str, phase: str, index: int, tag: str) -> str:
    return f"{tool}-{phase}{index}-{tag}.bench.test"


def issue_one(issuer: AcmeIssuer, name: str) -> tuple[bool, float, str]:
    started = time.perf_counter()
    try:
        issuer.issue(CertSpec(name, (name,)))
    except Exception as error:  # an unexpected type is a failure to report, not a crash
        return False, time.perf_counter() - started, f"{name}: {type(error).__name__}: {error}"
    return True, time.perf_counter() - started, ""


def issue_batch(issuer: AcmeIssuer, names: Sequence[str]) -> Batch:
    specs = [CertSpec(name, (name,)) for name in names]
    errors: list[str] = []
    seen: set[str] = set()
    started = time.perf_counter()
    try:
        for spec, outcome in issuer.issue_many(specs):
            seen.add(spec.name)
            if isinstance(outcome, AcmeError):
                errors.append(f"{spec.name}: {type(outcome).__name__}: {outcome}")
            elif not isinstance(outcome, IssuedCert) or not outcome.fullchain_pem:
                errors.append(f"{spec.name}: unexpected outcome {outcome!r}")
    except Exception as error:
        errors.append(f"issue_many raised {type(error).__name__}: {error}")
    seconds = time.perf_counter() - started
    errors += [
        f"{spec.name}: no outcome from issue_many" for spec in specs if spec.name not in seen
    ]
    return Batch(seconds, len(specs), errors)


def issue_consecutively(issuer: AcmeIssuer, names: Sequence[str], say: Say) -> Batch:
    """Each issuance starts when the previous one has ended."""
    errors: list[str] = []
    started = time.perf_counter()
    for done, name in enumerate(names, 1):
        ok, _, error = issue_one(issuer, name)
        if not ok:
            errors.append(error)
        if done % 50 == 0:
            say(f"certbotless consecutive {done}/{len(names)}, {len(errors)} failed")
    return Batch(time.perf_counter() - started, len(names), errors)


def bench_certbotless(
    directory_url: str, ca_bundle: Path, workdir: Path, tag: str, args: argparse.Namespace, say: Say
) -> CertbotlessRuns:
    runs = CertbotlessRuns(ToolResult("certbotless"))
    result = runs.result
    tokens = TokenStore(workdir / "tokens")
    responder = ChallengeResponder(tokens, HOST, HTTP_PORT)
    responder.start()
    account_key = load_account_key(None)

    def issuer_at(concurrency: int) -> AcmeIssuer:
        return AcmeIssuer(
            directory_url,
            account_key,
            EdgeHttp01Solver(tokens),
            ca_bundle=ca_bundle,
            options=IssuerOptions(concurrency=concurrency),
        )

    try:
        issuer = issuer_at(SHIPPED_CONCURRENCY)
        ok, seconds, error = issue_one(issuer, domain("certbotless", "w", 0, tag))
        result.record(ok, error)
        say(f"certbotless warm-up (registers the account): {seconds:.3f} s {error or 'ok'}")
        for i in range(args.runs):
            ok, seconds, error = issue_one(issuer, domain("certbotless", "l", i, tag))
            result.record(ok, error)
            if ok:
                result.latencies.append(seconds)
            say(f"certbotless latency {i + 1}/{args.runs}: {seconds:.3f} s {error or 'ok'}")
        names = [domain("certbotless", "f", i, tag) for i in range(FIFTY)]
        batch = issue_batch(issuer, names)
        result.fifty = batch.seconds
        result.runs += batch.count
        result.errors += batch.errors
        say(
            f"certbotless {FIFTY} domains at the shipped concurrency {SHIPPED_CONCURRENCY}: "
            f"{batch.seconds:.2f} s, {len(batch.errors)} failed"
        )
        if args.concurrency not in (0, SHIPPED_CONCURRENCY):
            other = issuer_at(args.concurrency)
            other.ensure_account()  # an account lookup, not part of the timed batch
            names = [domain("certbotless", "g", i, tag) for i in range(FIFTY)]
            runs.compared = issue_batch(other, names)
            say(
                f"certbotless {FIFTY} domains at concurrency {args.concurrency}: "
                f"{runs.compared.seconds:.2f} s, {len(runs.compared.errors)} failed"
            )
        if args.consecutive > 0:
            say(
                f"certbotless {args.consecutive} issuances one after another "
                "(Pebble rejects 5% of nonces)"
            )
            names = [domain("certbotless", "c", i, tag) for i in range(args.consecutive)]
            runs.consecutive = issue_consecutively(issuer, names, say)
            say(
                f"certbotless consecutive: {len(runs.consecutive.errors)}/"
                f"{runs.consecutive.count} failed in {runs.consecutive.seconds:.1f} s"
            )
    finally:
        responder.stop()
    return runs


def bench_peer(peer: Peer, tag: str, args: argparse.Namespace, say: Say) -> ToolResult:
    result = ToolResult(peer.name)

    def run(phase: str, index: int) -> float | None:
        """Seconds one invocation took, None if it failed."""
        outcome = peer.issue(domain(peer.name, phase, index, tag))
        result.record(outcome.ok, outcome.error)
        if not outcome.ok:
            say(f"{peer.name} FAILED after {outcome.seconds:.2f} s: {outcome.error}")
        return outcome.seconds if outcome.ok else None

    def shown(seconds: float | None) -> str:
        return "failed" if seconds is None else f"{seconds:.2f} s"

    say(f"{peer.name} warm-up (registers the account): {shown(run('w', 0))}")
    for i in range(args.runs):
        seconds = run("l", i)
        if seconds is not None:
            result.latencies.append(seconds)
        say(f"{peer.name} latency {i + 1}/{args.runs}: {shown(seconds)}")
    median = result.median
    if args.quick:
        result.fifty = None if median is None else median * FIFTY
        result.fifty_estimated = True
        return result
    say(f"{peer.name} {FIFTY} domains, one invocation after another")
    started = time.perf_counter()
    for i in range(FIFTY):
        run("f", i)
        if (i + 1) % 10 == 0:
            say(f"{peer.name} {i + 1}/{FIFTY} in {time.perf_counter() - started:.1f} s")
    result.fifty = time.perf_counter() - started
    return result


def ratio(peer: float | None, ours: float | None) -> str:
    if peer is None or ours is None or ours <= 0:
        return "-"
    return f"{peer / ours:.1f}x"


def table(results: Sequence[ToolResult]) -> str:
    ours = results[0]
    header = [
        "tool",
        "median 1 cert (s)",
        f"{FIFTY} domains (s)",
        "failures",
        "latency peer/certbotless",
        f"{FIFTY} domains peer/certbotless",
    ]
    rows = [header]
    for r in results:
        fifty = "-" if r.fifty is None else f"{r.fifty:.2f}"
        if r.fifty_estimated and r.fifty is not None:
            fifty += f" (median\u00d7{FIFTY} (estimated))"
        peer = r is not ours
        rows.append(
            [
                r.name,
                "-" if r.median is None else f"{r.median:.3f}",
                fifty,
                f"{len(r.errors)}/{r.runs}",
                ratio(r.median, ours.median) if peer else "-",
                ratio(r.fifty, ours.fifty) if peer else "-",
            ]
        )
    widths = [max(len(row[c]) for row in rows) for c in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def missed_targets(
    ours: ToolResult, consecutive: Batch | None, compared: Batch | None
) -> list[str]:
    missed = []
    if ours.median is None or ours.median > TARGET_MEDIAN:
        missed.append(f"median 1 cert {ours.median} s > {TARGET_MEDIAN} s")
    if ours.fifty is None or ours.fifty > TARGET_FIFTY:
        missed.append(f"{FIFTY} domains {ours.fifty} s > {TARGET_FIFTY} s")
    if ours.errors:
        missed.append(f"{len(ours.errors)} failed runs")
    if consecutive is not None and consecutive.errors:
        missed.append(f"{len(consecutive.errors)}/{consecutive.count} consecutive issuances failed")
    if compared is not None and compared.errors:
        missed.append(
            f"{len(compared.errors)}/{compared.count} failed in the comparison at --concurrency"
        )
    return missed


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.acme_issuance", description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"skip the peers' {FIFTY}-domain runs; report median\u00d7{FIFTY} (estimated) instead",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=16,
        help=f"also order the {FIFTY} domains this many at a time, for comparison with the "
        f"shipped {SHIPPED_CONCURRENCY} (shown, not judged; 0: skip)",
    )
    parser.add_argument(
        "--consecutive", type=int, default=200, help="certbotless issuances in a row (0: skip)"
    )
    parser.add_argument("--runs", type=int, default=10, help="timed runs for the median (>= 10)")
    args = parser.parse_args(argv)
    if args.runs < 10:
        parser.error("--runs must be at least 10")
    if args.concurrency < 0:
        parser.error("--concurrency must be 0 (skip) or more")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    began = time.monotonic()

    def say(message: str) -> None:
        print(f"bench [{time.monotonic() - began:6.1f} s] {message}", flush=True)

    ca_bundle = Path(read_env()["CBL_RIG_CA_BUNDLE"])
    busy = [p for p in (PEBBLE_PORT, MANAGEMENT_PORT, HTTP_PORT) if port_open(HOST, p)]
    if busy:
        print(
            f"bench: {HOST} ports {busy} are already in use; stop what holds them", file=sys.stderr
        )
        return 2
    peers: list[Peer] = []
    with tempfile.TemporaryDirectory(prefix="cbl-bench-") as tmp:
        workdir = Path(tmp)
        # Pebble's own defaults (5% badNonce among them) whatever this shell has set.
        for name in [n for n in os.environ if n.startswith("PEBBLE_")]:
            del os.environ[name]
        pebble = PebbleServer(
            "pebble-bench",
            host=HOST,
            ca_bundle=ca_bundle,
            port=PEBBLE_PORT,
            management_port=MANAGEMENT_PORT,
            http_port=HTTP_PORT,
            env={"PEBBLE_VA_NOSLEEP": "1"},
        )
        for cls in (Certbot, Lego):
            peer = cls(pebble.directory_url, ca_bundle, HTTP_PORT, workdir / cls.name)
            peer.install()
            peers.append(peer)
        tag = secrets.token_hex(3)
        say(f"starting Pebble at {pebble.directory_url} (HTTP-01 on {HOST}:{HTTP_PORT}); tag {tag}")
        pebble.start()
        try:
            runs = bench_certbotless(pebble.directory_url, ca_bundle, workdir, tag, args, say)
            ours, consecutive, compared = runs.result, runs.consecutive, runs.compared
            results = [ours] + [bench_peer(peer, tag, args, say) for peer in peers]
        finally:
            pebble.stop()
    say("done")
    print()
    print(table(results))
    print(f"\ncertbotless {FIFTY} domains judged at the shipped concurrency {SHIPPED_CONCURRENCY}")
    if compared is not None:
        print(
            f"certbotless {FIFTY} domains at concurrency {args.concurrency} (not judged): "
            f"{compared.seconds:.2f} s, {len(compared.errors)}/{compared.count} failed"
        )
    if consecutive is not None:
        print(
            f"certbotless {consecutive.count} consecutive issuances (one after another, Pebble's "
            f"5% badNonce): {len(consecutive.errors)}/{consecutive.count} failed, "
            f"{consecutive.seconds:.1f} s"
        )
    for r in results:
        for error in r.errors[:SHOWN_ERRORS]:
            print(f"{r.name} failure: {error}")
    for series, batch in (("consecutive", consecutive), ("compared", compared)):
        for error in batch.errors[:SHOWN_ERRORS] if batch is not None else []:
            print(f"certbotless {series} failure: {error}")
    print(f"\nwhole run: {time.monotonic() - began:.0f} s")
    missed = missed_targets(ours, consecutive, compared)
    if missed:
        print("certbotless MISSED its targets: " + "; ".join(missed))
        return 1
    print(
        f"certbotless met its targets (median <= {TARGET_MEDIAN} s, {FIFTY} domains <= "
        f"{TARGET_FIFTY} s, no failures)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
