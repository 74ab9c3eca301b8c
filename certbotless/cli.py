"""The `certbotless` command. Thin: parse, build the I/O objects once, call the modules."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from certbotless import __version__
from certbotless.acme.alpn_responder import AlpnResponder
from certbotless.acme.challenges import TokenStore
from certbotless.acme.errors import AcmeError
from certbotless.acme.responder import ChallengeResponder
from certbotless.app import App
from certbotless.daemon.metrics import serve as serve_metrics
from certbotless.daemon.metrics import watch_edge
from certbotless.daemon.scheduler import Daemon
from certbotless.edge.nginx_version import DEFAULT_NGINX_VERSION, nginx_version_number
from certbotless.edge.rollout import RolloutError
from certbotless.edge.tree import TreeError, edge_tree, write_tree
from certbotless.edge.upstreams import without_unpooled_options
from certbotless.edge.validation import NginxConfigError
from certbotless.labels.compose import ComposeError, docker_cli, parse_stack_argument
from certbotless.labels.lint import lint, report_json, report_text
from certbotless.labels.settle import EdgeNotFound
from certbotless.labels.values import CERTIFICATE_NAME_RE, certificate_name_for, profile_for
from certbotless.model import (
    CertSpec,
    ChallengeMode,
    KeyType,
    LabelProblem,
    Listed,
    PassReport,
    PassRequest,
    RevocationReason,
)
from certbotless.ops.account_key import (
    AccountKeyExists,
    AccountKeyMounted,
    AccountKeyUnavailable,
    install_account_key,
    key_owners,
    plan_account_key,
    resolve_account_keys,
)
from certbotless.ops.account_rollover import RolloverFailed, roll_over_account_key
from certbotless.ops.store_key import StoreKeyMounted, resolve_store_key
from certbotless.ops.traefik_import import (
    AcmeJsonError,
    choose_account,
    describe_certificate,
    import_certificates,
    import_plan,
    parse_acme_json,
)
from certbotless.ops.views import listed_json, listed_table
from certbotless.redaction import Redactor, redact_logs
from certbotless.settings import (
    LETSENCRYPT_PRODUCTION,
    LETSENCRYPT_STAGING,
    LogFormat,
    Settings,
    SettingsError,
    unknown_variables,
)
from certbotless.swarm.api import SWARM_ERRORS, docker_endpoint
from certbotless.swarm.lease import LeaseBusy
from certbotless.web.access import StatusPageError
from certbotless.web.overview import overview_json
from certbotless.web.summary import summary_text

log = logging.getLogger("certbotless")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="certbotless",
        description="ACME certificates for an nginx edge on Docker Swarm. "
        "Configuration comes from CERTBOTLESS_* environment variables (see docs/environment.md).",
    )
    parser.add_argument("--version", action="version", version=f"certbotless {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("run", help="run the daemon: scheduled and event-driven passes")

    _add_renew(commands.add_parser("renew", help="one pass, then exit (0 = all fine)"))
    _add_issue(commands.add_parser("issue", help="get a certificate for DOMAIN… now"))

    listing = commands.add_parser("list", help="stored certificates and their expiry")
    listing.add_argument("--json", action="store_true", help="machine-readable output")

    status = commands.add_parser(
        "status", help="the status page's summary: what needs someone, and the rate limits"
    )
    status.add_argument("--json", action="store_true", help="the status page's /api/v1/overview")

    commands.add_parser("render", help="print the nginx configuration a pass would deploy")

    gc = commands.add_parser(
        "gc",
        help="remove certificate versions and nginx.confs no service uses "
        "(CERTBOTLESS_GC_KEEP_VERSIONS, CERTBOTLESS_GC_KEEP_EXPIRED_DAYS)",
    )
    gc.add_argument("--dry-run", action="store_true", help="only show what would be removed")

    revoke = commands.add_parser(
        "revoke", help="revoke a certificate, then issue a new one if a label still wants it"
    )
    revoke.add_argument("name", metavar="NAME", help="certificate name, as `list` shows it")
    revoke.add_argument(
        "--reason",
        choices=[reason.name for reason in RevocationReason],
        default=RevocationReason.unspecified.name,
        help="RFC 5280 reason (default: unspecified; keyCompromise if the key leaked)",
    )

    account = commands.add_parser("account", help="the ACME account: `rollover` gives it a new "
                                  "key (RFC 8555 keyChange), keeping the account")  # fmt: skip
    account.add_argument("action", choices=["rollover"])
    account.add_argument("--issuer", metavar="NAME", help="whose account, of "
                         "CERTBOTLESS_ACME_ISSUERS (default: the first)")  # fmt: skip
    commands.add_parser("doctor", help="check everything certbotless needs, with fixes")
    _add_lint(
        commands.add_parser(
            "lint", help="check stacks' compose files before deploy (needs no swarm or daemon)"
        )
    )
    _add_import_traefik(
        commands.add_parser(
            "import-traefik",
            help="store the ACME account and certificates of Traefik's acme.json (no order)",
        )
    )
    return parser


def _add_lint(lint: argparse.ArgumentParser) -> None:
    lint.add_argument(
        "stacks",
        nargs="+",
        metavar="[NAME=]FILE[,FILE…]",
        help="one stack per argument: its compose files, merged in order as docker stack deploy "
        "-c does; its name defaults to the first file's name without extension. Stacks named "
        "earlier count as deployed earlier (they own what they claim first)",
    )
    lint.add_argument("--json", action="store_true", help="machine-readable output")
    lint.add_argument(
        "--edge",
        metavar="SERVICE",
        help="the nginx service as deployed (default: CERTBOTLESS_NGINX_SERVICE, else edge_nginx)",
    )
    lint.add_argument(
        "--no-docker-cli",
        action="store_true",
        help="read the files with certbotless's own reader even where the Docker CLI is present",
    )
    lint.add_argument("--render", metavar="DIR", type=Path, help="also write what a pass would "
                      "roll, each file where the edge mounts it, under DIR")  # fmt: skip
    lint.add_argument("--rebase", action="store_true", help="with --render: the files' paths "
                      "into DIR, for nginx -p DIR/ -c DIR/etc/nginx/nginx.conf")  # fmt: skip
    lint.add_argument("--nginx-version", metavar="X.Y.Z", type=nginx_version_number,
                      default=DEFAULT_NGINX_VERSION,
                      help="with --render: the edge image's nginx (default: 1.22.0)")  # fmt: skip


def _add_renew(renew: argparse.ArgumentParser) -> None:
    renew.add_argument(
        "--force",
        nargs="*",
        metavar="NAME",
        help="renew now, whatever their state or back-off: these certificates, or every one "
        "when no NAME is given",
    )
    renew.add_argument(
        "--dry-run",
        action="store_true",
        help="order every certificate but store and roll nothing (Let's Encrypt production "
        "is swapped for staging; any other CA is used as configured)",
    )


def _add_issue(issue: argparse.ArgumentParser) -> None:
    issue.add_argument("domains", nargs="+", metavar="DOMAIN")
    issue.add_argument(
        "--key-type",
        type=KeyType,
        choices=list(KeyType),
        default=KeyType.EC256,
        help="private key type (default: ec256)",
    )
    issue.add_argument(
        "--profile", help="ACME profile to request (an IP address: shortlived unless given)"
    )
    issue.add_argument("--name", help="certificate name (default: the first domain)")
    issue.add_argument(
        "--challenge",
        type=ChallengeMode,
        choices=list(ChallengeMode),
        default=ChallengeMode.HTTP01,
        help="http-01 (default), dns-01, mixed (wildcards by DNS-01) or tls-alpn-01 (port "
        "443, through the front); a wildcard needs DNS-01",
    )
    issue.add_argument(
        "--dns-provider", help="DNS-01 provider (default: CERTBOTLESS_DNS01_PROVIDER)"
    )
    issue.add_argument("--dns-zone", help="DNS-01 zone (default: found by asking DNS)")
    issue.add_argument(
        "--no-rollout", action="store_true", help="store the certificate but do not roll nginx"
    )


def _add_import_traefik(command: argparse.ArgumentParser) -> None:
    command.add_argument("acme_json", metavar="ACME_JSON", type=Path, help="Traefik's acme.json")
    command.add_argument("--dry-run", action="store_true", help="only list what would be imported")
    command.add_argument(
        "--replace-account",
        action="store_true",
        help="make acme.json's account certbotless's even though certbotless has one already",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"certbotless: {error}", file=sys.stderr)
        return 2
    redact_logs(Redactor(settings.secrets))
    _configure_logging(settings)
    for name in unknown_variables():
        log.warning(
            "%s is not a certbotless setting (a typo?); docs/environment.md lists them", name
        )
    if args.command == "renew" and args.dry_run:
        settings = _staging_for_dry_runs(settings)
    if args.command in OFFLINE_COMMANDS:  # no App: it would reach for Docker
        return OFFLINE_COMMANDS[args.command](settings, args)
    try:
        return COMMANDS[args.command](App(settings), args)
    except (
        EdgeNotFound,
        NginxConfigError,
        RolloutError,
        AccountKeyUnavailable,
        RolloverFailed,
        AcmeError,
        LeaseBusy,
        LookupError,
        SettingsError,  # an issuer's EAB secret, read when the issuers are built
    ) as error:
        print(f"certbotless: {error}", file=sys.stderr)
        return 1
    except SWARM_ERRORS as error:
        print(f"certbotless: the Docker API at {docker_endpoint()} failed: {error}; is it "
              "reachable (the stack's docker-api proxy, or /var/run/docker.sock mounted), and a "
              "swarm manager's?", file=sys.stderr)  # fmt: skip
        return 1


def _configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _JsonFormatter()
        if settings.log_format == LogFormat.JSON
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logging.basicConfig(level=settings.log_level, handlers=[handler])
    for noisy in ("urllib3", "docker", "apscheduler", "acme"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _staging_for_dry_runs(settings: Settings) -> Settings:
    """A dry run against Let's Encrypt goes to its staging CA, whose limits are for this."""
    staging = {LETSENCRYPT_PRODUCTION: LETSENCRYPT_STAGING}
    issuers = tuple(dataclasses.replace(i, directory=staging.get(i.directory, i.directory))
                    for i in settings.acme_issuers)  # fmt: skip
    directory = staging.get(settings.acme_directory, settings.acme_directory)
    return dataclasses.replace(settings, acme_directory=directory, acme_issuers=issuers)


def run_daemon(app: App, args: argparse.Namespace) -> int:
    try:
        app.store.objects.key = resolve_store_key(app.settings, app.swarm, True)
        app.account_keys = resolve_account_keys(
            app.settings, app.swarm, app.store, mount_into_own_service=True
        )
    except (StoreKeyMounted, AccountKeyMounted) as mounted:
        log.info("%s", mounted)
        # As PID 1 of its container, the process ignores SIGTERM unless it says otherwise;
        # Swarm would wait the whole stop grace period.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        while True:  # until Swarm stops this task
            time.sleep(60)
    for orphan in app.swarm.remove_orphaned_jobs():
        log.info("removed %s, a check job a stopped certbotless left behind", orphan)
    app.ensure_accounts()  # early word on each CA and account (a restart must find them)
    daemon = Daemon(app.reconciler, app.swarm, app.settings.schedule, app.alerter(),
                    app.pass_history)  # fmt: skip
    responder = ChallengeResponder(app.tokens, *app.settings.responder_listen, health=daemon.health)
    responder.start()
    log.info("challenge responder and /healthz on port %d", responder.port)
    if (alpn := _alpn_responder(app.tokens, app.settings)) is not None:
        alpn.start()
        log.info("TLS-ALPN-01 responder on port %d", alpn.port)
    if app.settings.metrics_listen is not None:
        serve_metrics(app.settings.metrics_listen)
        watch_edge(lambda: None if (s := app.edge_watch.latest) is None else s.stale_per_task())
        log.info("metrics on port %d", app.settings.metrics_listen[1])
    try:
        status_page = app.status_server(daemon)
    except StatusPageError as error:
        print(f"certbotless: {error}", file=sys.stderr)
        return 2
    if status_page is not None:
        status_page.start()
        log.info("status page on port %d", status_page.port)
    daemon.run()
    return 0


def renew(app: App, args: argparse.Namespace) -> int:
    with _responder_unless_running(app.tokens, app.settings):
        report = app.reconciler.run_pass(
            PassRequest(force=_forced(args.force), dry_run=args.dry_run, progress=log.info)
        )
    return _summarize(report)


def _forced(names: list[str] | None) -> bool | frozenset[str]:
    """`--force` alone: every certificate; `--force a b`: these; no `--force`: none."""
    if names is None:
        return False
    return frozenset(names) or True


def issue(app: App, args: argparse.Namespace) -> int:
    domains = tuple(d.strip().lower() for d in args.domains)
    name = (args.name or certificate_name_for(domains[0])).strip().lower()
    if not CERTIFICATE_NAME_RE.fullmatch(name):
        print(f"certbotless: --name {name!r}: use lowercase letters, digits, '-' "
              "and dots, e.g. --name shop", file=sys.stderr)  # fmt: skip
        return 2
    if args.challenge not in (ChallengeMode.DNS01, ChallengeMode.MIXED) and any(
        d.startswith("*.") for d in domains
    ):
        print("certbotless: a wildcard needs --challenge dns-01 (or mixed)", file=sys.stderr)
        return 2
    spec = CertSpec(
        name, domains, args.key_type, profile_for(domains, args.profile), challenge=args.challenge,
        dns_provider=args.dns_provider, dns_zone=args.dns_zone,
    )  # fmt: skip
    with _responder_unless_running(app.tokens, app.settings):
        report = app.reconciler.run_pass(
            PassRequest(extra_specs=(spec,), roll=not args.no_rollout, progress=_say)
        )
    for cert in report.certificates:
        if cert.name == name and name in report.issued:
            print(f"{name}: serial {cert.serial}, valid until "
                  f"{cert.not_after:%Y-%m-%d %H:%M} UTC")  # fmt: skip
    return _summarize(report)


def list_certificates(app: App, args: argparse.Namespace) -> int:
    code = _list(app.listing(), args.json)
    for problem in app.store.untrusted():  # on stderr beside --json's list
        print(f"IGNORED: {problem.message}", file=sys.stderr if args.json else sys.stdout)
    return code


def status(app: App, args: argparse.Namespace) -> int:
    """0: nothing needs anyone; 1: a certificate is failing, expiring or expired."""
    view = app.overview()
    print(json.dumps(overview_json(view), indent=2) if args.json else summary_text(view), end="")
    return 1 if view.counts["problems"] else 0


def render(app: App, args: argparse.Namespace) -> int:
    print(app.render(), end="")
    return 0


def revoke(app: App, args: argparse.Namespace) -> int:
    reason = RevocationReason[args.reason]
    return _summarize(app.reconciler.revoke(args.name, reason, progress=_say))


def account(app: App, args: argparse.Namespace) -> int:
    """`account rollover [--issuer NAME]`: that issuer's account key replaced (the first's by
    default); the new key's secret mounted, the old one retired."""
    owners = key_owners(app.settings)
    name = args.issuer or app.settings.issuers[0].name
    if name not in owners:
        print(f"certbotless account rollover: no issuer is named {name!r}; "
              f"CERTBOTLESS_ACME_ISSUERS names: {', '.join(owners)}", file=sys.stderr)  # fmt: skip
        return 2
    member = next(m for m in app.issuer.members if m.name == name)
    for line in roll_over_account_key(app.settings, app.swarm, app.store, member.session,
                                      owner=owners[name]):  # fmt: skip
        print(line)
    return 0


def doctor(app: App, args: argparse.Namespace) -> int:
    checks = app.doctor().run()
    for check in checks:
        print(f"{'ok  ' if check.ok else 'FAIL'} {check.what}: {check.detail}")
        if not check.ok and check.fix:
            print(f"     fix: {check.fix}")
    return 0 if all(check.ok for check in checks) else 1


def collect_garbage(app: App, args: argparse.Namespace) -> int:
    removals = app.reconciler.collect_garbage(dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for removal in removals:
        print(f"{verb} {removal.target.kind} {removal.target.name}: {removal.reason}")
    print(f"{verb} {len(removals)} object(s)")
    return 0


def lint_stacks(settings: Settings, args: argparse.Namespace) -> int:
    """0: clean; 1: a problem; 2: input that cannot be read, or a tree that cannot be written."""
    if args.render is None and args.rebase:
        print("certbotless lint: --rebase goes with --render DIR", file=sys.stderr)
        return 2
    try:
        report = lint(
            [parse_stack_argument(argument) for argument in args.stacks],
            settings,
            os.environ,
            docker=None if args.no_docker_cli else docker_cli(),
            edge=args.edge,
        )
    except ComposeError as error:
        print(f"certbotless lint: {error}", file=sys.stderr)
        if args.json:
            print(json.dumps({"ok": False, "error": str(error)}, indent=2))
        return 2
    print(report_json(report) if args.json else report_text(report), end="\n" if args.json else "")
    unserved: tuple[LabelProblem, ...] = ()
    if args.render is not None:
        # What the deployer says to the labels for an edge of that nginx, lint says too.
        _, unserved = without_unpooled_options(report.routes, args.nginx_version)
        for problem in unserved:
            print(f"certbotless lint: {problem.service}: {problem.label}: {problem.message}",
                  file=sys.stderr)  # fmt: skip
        tree = edge_tree(report.routes, report.specs, settings, args.nginx_version)
        try:
            written = write_tree(tree, args.render, settings.certs_dir, rebase=args.rebase)
        except (TreeError, OSError) as error:
            print(f"certbotless lint: --render {args.render}: {error}", file=sys.stderr)
            return 2
        print(f"certbotless lint: wrote {len(written)} files under {args.render}", file=sys.stderr)
    return 0 if report.ok and not unserved else 1


# Commands that need no swarm: run without building the App.
OFFLINE_COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "lint": lint_stacks,
}


def import_traefik(app: App, args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    try:
        parsed = parse_acme_json(args.acme_json.read_bytes(), now, app.settings.acme_directory)
    except OSError as error:
        print(f"certbotless: cannot read {args.acme_json}: {error.strerror}", file=sys.stderr)
        return 2
    except AcmeJsonError as error:
        print(f"certbotless: {args.acme_json} {error}", file=sys.stderr)
        return 2
    account = choose_account(parsed, app.settings.acme_directory)
    try:
        action = (
            None
            if account is None
            else plan_account_key(app.settings, app.store, account.key_pem, args.replace_account)
        )
    except AccountKeyExists as refused:
        print(f"certbotless: {refused}", file=sys.stderr)
        if not args.dry_run:
            return 1
        action = None
    for line in import_plan(parsed, account, action, args.dry_run):
        print(line)
    if args.dry_run:
        return 1 if account is not None and action is None else 0  # the account is refused
    imported = import_certificates(parsed.certificates, app.store, app.orders, now)
    for cert in imported.stored:
        print(f"imported {describe_certificate(cert)}")
    for cert in imported.already_stored:
        print(f"stored already: {describe_certificate(cert)}")
    if account is not None and action is not None:  # last: mounting it restarts certbotless
        sys.stdout.flush()
        print(install_account_key(app.settings, app.swarm, app.store, account.key_pem, action))
    return 1 if parsed.skipped else 0


COMMANDS: dict[str, Callable[[App, argparse.Namespace], int]] = {
    "run": run_daemon,
    "renew": renew,
    "issue": issue,
    "list": list_certificates,
    "status": status,
    "render": render,
    "revoke": revoke,
    "account": account,
    "doctor": doctor,
    "gc": collect_garbage,
    "import-traefik": import_traefik,
}


class _JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers (CERTBOTLESS_LOG_FORMAT=json)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            # exc_text first: redaction.redact_logs leaves the traceback there, redacted.
            entry["error"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(entry)


@contextlib.contextmanager
def _responder_unless_running(tokens: TokenStore, settings: Settings) -> Iterator[None]:
    """One-shot commands answer HTTP-01 and TLS-ALPN-01 themselves (a cron-style job has no
    daemon), unless a daemon in this container already listens: it serves the shared directory."""
    with contextlib.ExitStack() as running:
        for listener in (lambda: ChallengeResponder(tokens, *settings.responder_listen),
                         lambda: _alpn_responder(tokens, settings)):  # fmt: skip
            try:
                responder = listener()
            except OSError:
                continue
            if responder is not None:
                responder.start()
                running.callback(responder.stop)
        yield


def _alpn_responder(tokens: TokenStore, settings: Settings) -> AlpnResponder | None:
    listen = settings.tls_alpn_listen
    return None if listen is None else AlpnResponder(tokens.alpn, *listen)


def _say(message: str) -> None:
    print(message, flush=True)


def _summarize(report: PassReport) -> int:
    for problem in report.problems:
        print(f"label problem: {problem}")
    for name, error in report.failed.items():
        print(f"FAILED {name}: {error}")
    print(
        f"issued {len(report.issued)}, failed {len(report.failed)}, "
        f"label problems {len(report.problems)}, nginx rolled: {'yes' if report.rolled else 'no'}"
    )
    if report.rollout_error:
        print(f"ROLLOUT FAILED: {report.rollout_error}")
    return 0 if report.ok else 1


def _list(rows: list[Listed], as_json: bool) -> int:
    now = datetime.now(UTC)
    if as_json:
        print(json.dumps([listed_json(row, now) for row in rows], indent=2))
    else:
        print("\n".join(listed_table(rows, now)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
