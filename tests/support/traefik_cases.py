"""Traefik's own test cases (tests/traefik_cases/*.json) run through certbotless: discovery of the
labels a Swarm stack would carry, rendering, and a real nginx on loopback that answers each
case's requests. Each case ends as one Verdict: it BEHAVES as in Traefik, is REFUSED with a
LabelProblem, is SILENT (accepted, but answers differently), or is NOT_APPLICABLE to Swarm.

Hosts: Traefik's tests use single-label names (localhost, foo, tchouk…) that no certificate can
name and that certbotless therefore refuses; such a name N is read as N.test, in the rule and in
the requests alike (public_host). Requests carry the test's remote address in a PROXY protocol
header (nginx trusts it from 127.0.0.1 only), Go's default 192.0.2.1 when the test sets none."""

from __future__ import annotations

import ipaddress
import json
import re
import socket
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from certbotless.labels.settle import discover
from certbotless.labels.traefik.labels import traefik_claims
from certbotless.labels.traefik.middlewares.options import NO_FILE_MIDDLEWARES, FileMiddlewares
from certbotless.model import LabelProblem, Route, ServiceInfo
from certbotless.setting_values import SettingsError, rule_template, server_url_prefixes
from tests.support.edge_nginx import (
    ECHO_PORT_HEADER,
    LOCAL_NGINX,
    NginxBinary,
    h2c_front,
    serve_routes,
    stop,
)

CASES_DIR = Path(__file__).resolve().parents[1] / "traefik_cases"
LOOPBACK = "127.0.0.1"
FRONT = (f"{LOOPBACK}/32",)  # nginx takes the client's address from PROXY headers sent from here
GO_REMOTE = "192.0.2.1"  # httptest.NewRequest's RemoteAddr
# The operator's CERTBOTLESS_TRAEFIK_SERVER_URLS the cases run with: the echo servers' address.
LOOPBACK_SERVER_URLS = f"http://{LOOPBACK},https://{LOOPBACK},h2c://{LOOPBACK}"
AREAS = {
    "rules": "router rules, v2 and v3",
    "middlewares": "middleware and service label keys",
    "provider": "the Swarm/Docker provider",
    "v1rules": "Traefik 1.7 rules",
}


class Verdict(Enum):
    BEHAVES = "behave"
    REFUSED = "refused"
    SILENT = "silent"
    NOT_APPLICABLE = "not applicable"


@dataclass(frozen=True)
class Outcome:
    case_id: str  # file stem: Traefik's test name/case name
    area: str
    verdict: Verdict
    detail: str  # what differed, the refusal's words, or why it does not apply


@dataclass
class CaseFile:
    stem: str
    area: str
    kind: str  # "rules": rules and their requests; "provider": label sets and their routers
    cases: list[dict[str, Any]] = field(default_factory=list)


def case_files() -> list[CaseFile]:
    found = []
    for path in sorted(CASES_DIR.glob("*.json")):
        data = json.loads(path.read_text())
        if "cases" in data:
            found.append(
                CaseFile(path.stem, data["area"], data.get("kind", "rules"), data["cases"])
            )
    return found


# --- hosts ---------------------------------------------------------------------------------------

_HOST_MATCHER_RE = re.compile(r"(?i)\b(host|hostheader)(\s*\()([^)]*)(\))")
_QUOTED_RE = re.compile(r"`([^`]*)`|\"([^\"]*)\"")
_V1_HOST_RE = re.compile(r"(?i)(\bhost\s*:)([^;]*)")


def public_host(host: str) -> str:
    """A single-label name N (with its port or trailing dot) → N.test; others unchanged. A
    default rule's template that makes a single label (`{{ normalize .Name }}`) gets `.test`
    after it too."""
    if "{{" in host:
        outside = re.sub(r"\{\{.*?\}\}", "", host)
        return host if "." in outside else f"{host}.test"
    name, colon, port = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
    bare = name.rstrip(".")
    if not bare or "." in bare or not bare.isascii() or not bare.replace("-", "").isalnum():
        return host
    dot = "." if name.endswith(".") else ""
    return f"{bare}.test{dot}{colon}{port}"


def public_rule(rule: str, syntax: str) -> str:
    """The rule with its Host values mapped by public_host (v1: Host:a,b)."""
    if syntax == "v1":
        return _V1_HOST_RE.sub(
            lambda m: m[1] + ",".join(public_host(h.strip()) for h in m[2].split(",")), rule
        )

    def values(match: re.Match[str]) -> str:
        quoted = _QUOTED_RE.sub(
            lambda q: q[0][0] + public_host(q[1] if q[1] is not None else q[2]) + q[0][0], match[3]
        )
        return match[1] + match[2] + quoted + match[4]

    return _HOST_MATCHER_RE.sub(values, rule)


# --- labels ------------------------------------------------------------------------------------

R = "traefik.http.routers."


def router_services(case: Mapping[str, Any], ports: Sequence[int]) -> list[ServiceInfo]:
    """The Swarm services a rule case stands for: v2/v3, one service whose routers each go to
    their own Traefik service (an echo server's port); v1, one service per frontend."""
    syntax = case["syntax"]
    routers = case["routers"]
    if syntax == "v1":
        return [_v1_service(router, port) for router, port in zip(routers, ports, strict=False)]
    labels = {"traefik.enable": "true"}
    for index, (router, port) in enumerate(zip(routers, ports, strict=False)):
        name = router["name"]
        labels |= {
            f"{R}{name}.rule": public_rule(router["rule"], syntax),
            f"{R}{name}.entrypoints": "web",
            f"{R}{name}.service": f"s{index}",
            f"traefik.http.services.s{index}.loadbalancer.server.port": str(port),
        }
        if "priority" in router:
            labels[f"{R}{name}.priority"] = str(router["priority"])
        if syntax == "v2":
            labels[f"{R}{name}.ruleSyntax"] = "v2"
    return [ServiceInfo("svc", labels)]


# --- requests ----------------------------------------------------------------------------------


def _v1_service(router: Mapping[str, Any], port: int) -> ServiceInfo:
    labels = {
        "traefik.enable": "true",
        "traefik.frontend.rule": public_rule(router["rule"], "v1"),
        "traefik.port": str(port),
    }
    if "priority" in router:
        labels["traefik.frontend.priority"] = str(router["priority"])
    return ServiceInfo(f"svc-{router['name']}", labels)


def proxy_header(remote: str) -> bytes:
    """PROXY protocol v1 for a client at `remote` (an address, with or without a port)."""
    address = remote
    if remote.count(":") == 1 or remote.startswith("["):
        address = remote.rsplit(":", 1)[0].strip("[]")
    family = "TCP6" if ipaddress.ip_address(address).version == 6 else "TCP4"
    local = "::1" if family == "TCP6" else LOOPBACK
    return f"PROXY {family} {address} {local} 40000 80\r\n".encode()


def request_bytes(request: Mapping[str, Any]) -> bytes:
    """The request as written on the wire: request line, Host, the case's headers in order."""
    url = urlsplit(request["url"])
    host = public_host(url.netloc)
    target = request.get("target") or (url.path or "/") + (f"?{url.query}" if url.query else "")
    lines = [f"{request['method']} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in request.get("headers", [])]
    lines += ["Connection: close", "", ""]
    return "\r\n".join(lines).encode("utf-8")


def send(port: int, request: Mapping[str, Any]) -> tuple[int, int | None]:
    """(status, the echo port that answered or None when nginx answered by itself)."""
    with socket.create_connection((LOOPBACK, port), timeout=5) as connection:
        connection.sendall(proxy_header(request.get("remote") or GO_REMOTE))
        connection.sendall(request_bytes(request))
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    status = int(head[0].split()[1]) if head and head[0].startswith("HTTP/") else 0
    echo = next((int(line.split(":", 1)[1]) for line in head[1:]
                 if line.lower().startswith(ECHO_PORT_HEADER.lower() + ":")), None)  # fmt: skip
    return status, echo


# --- verdicts ----------------------------------------------------------------------------------


def _problems_text(problems: Sequence[LabelProblem]) -> str:
    return " | ".join(f"{p.label}: {p.message}" for p in problems)


def discover_case(
    services: Sequence[ServiceInfo],
    exposed_by_default: bool = False,
    default_rule: str | None = None,
    files: FileMiddlewares = NO_FILE_MIDDLEWARES,
    server_urls: str = LOOPBACK_SERVER_URLS,
) -> tuple[list[Route], list[LabelProblem]]:
    """Routes (every upstream at 127.0.0.1, where the echo servers listen) and problems, as
    discovery settles them between services; `default_rule`: the provider's defaultRule, as
    CERTBOTLESS_TRAEFIK_DEFAULT_RULE would give it; `files`: Traefik's dynamic configuration;
    `server_urls`: where server.url labels may send requests, as
    CERTBOTLESS_TRAEFIK_SERVER_URLS would say (loopback, where the echo servers are)."""
    template = rule_template(default_rule, "TRAEFIK_DEFAULT_RULE")
    allowed = server_url_prefixes(server_urls, "TRAEFIK_SERVER_URLS")
    claims = traefik_claims(services, exposed_by_default=exposed_by_default, default_rule=template,
                            files=files, server_urls=allowed)  # fmt: skip
    found = discover(services, native=False, foreign=claims)
    return [replace(r, service=LOOPBACK) for r in found.routes], list(found.problems)


def rule_case_outcome(
    case: Mapping[str, Any],
    area: str,
    stem: str,
    ports: Sequence[int],
    scratch: Path,
    binary: NginxBinary = LOCAL_NGINX,
) -> Outcome:
    case_id = f"{stem}:{case['id']}"
    if case.get("not_applicable"):
        return Outcome(case_id, area, Verdict.NOT_APPLICABLE, case["not_applicable"])
    names = [router["name"] for router in case["routers"]]
    routes, problems = discover_case(router_services(case, ports))
    served = {port for route in routes for port in [route.port]}
    unrouted = [name for name, port in zip(names, ports, strict=False) if port not in served]
    if case.get("traefik_rejects"):
        if not unrouted or not problems:
            said = "" if problems else " (no problem said)"
            detail = f"Traefik rejects this rule; certbotless serves it{said}"
            return Outcome(case_id, area, Verdict.SILENT, detail)
        return Outcome(case_id, area, Verdict.BEHAVES, _problems_text(problems))
    # A router Traefik accepts but that no request can reach (`traefik_never_matches`): left
    # out with a word, it behaves as Traefik when every answer is Traefik's.
    if unrouted and problems and not case.get("traefik_never_matches"):
        return Outcome(case_id, area, Verdict.REFUSED, _problems_text(problems))
    # A router left out without a word behaves only if Traefik never reaches it either.
    router_of = dict(zip(ports, names, strict=False))
    differences = answers_differing(case, routes, router_of, scratch, binary)
    if differences:
        dropped = f" (router(s) {', '.join(unrouted)} not routed)" if unrouted else ""
        return Outcome(case_id, area, Verdict.SILENT, "; ".join(differences) + dropped)
    return Outcome(case_id, area, Verdict.BEHAVES, _problems_text(problems))


def answers_differing(
    case: Mapping[str, Any],
    routes: Sequence[Route],
    router_of: Mapping[int, str],
    scratch: Path,
    binary: NginxBinary = LOCAL_NGINX,
) -> list[str]:
    """Each request whose answer is not Traefik's: `METHOD url: expected X, got Y`."""
    requests = [r for r in case.get("requests", []) if not r.get("not_applicable")]
    if not requests:
        return []
    nginx, port, _ = serve_routes(routes, scratch, front_subnets=FRONT, binary=binary)
    try:
        differing = []
        for request in requests:
            status, echo = send(port, request)
            got: object = router_of.get(echo) if echo is not None else None
            if isinstance(request["expect"], dict):  # an answer of the edge's own: its status
                got = {"status": status} if echo is None else got
            if got != request["expect"]:
                shown = got or f"no router ({status})"
                sent = f" {request['headers']}" if request.get("headers") else ""
                differing.append(
                    f"{request['method']} {request['url']}{sent}: Traefik "
                    f"{request['expect'] or 'no router'}, certbotless {shown}"
                )
        return differing
    finally:
        stop(nginx)


def provider_services(
    case: Mapping[str, Any], ports: Sequence[int]
) -> tuple[list[ServiceInfo], dict[int, str]]:
    """The case's Swarm services, each Traefik service's port given as a label pointing at an
    echo server (Swarm tells Traefik no ports: its Swarm provider needs the label too, where
    Docker detected the container's), in place of the case's own port label whatever its
    spelling; and which Traefik service each echo port stands for. A container that exposes
    no port (`"ports": []`) gets no port label: Docker would detect none; a Traefik service with
    a `server.url` gets none either (Traefik proxies to the URL), its URL's address is the echo
    server's instead."""
    spare = iter(ports)
    service_of: dict[int, str] = {}
    services = []
    for swarm_service in case["services"]:
        labels = dict(swarm_service["labels"])
        defined = {label.split(".")[3] for label in labels
                   if label.lower().startswith("traefik.http.services.") and
                   label.count(".") >= 4} or {swarm_service["name"]}  # fmt: skip
        for name in sorted(defined):
            port = next(spare)
            service_of[port] = name
            prefix = f"traefik.http.services.{name}.loadbalancer.server."
            spelled = {label.lower(): label for label in labels}
            url = spelled.get(f"{prefix}url".lower())
            if url is not None:  # the echo server stands at the URL's address, its path kept
                parts = urlsplit(labels[url].strip())
                labels[url] = parts._replace(netloc=f"{LOOPBACK}:{port}").geturl()
                continue
            if swarm_service.get("ports") == []:
                continue
            labels.pop(spelled.get(f"{prefix}port".lower(), ""), None)
            labels[f"{prefix}port"] = str(port)
        services.append(ServiceInfo(swarm_service["name"], labels))
    return services, service_of


def _h2c_fronted(
    services: Sequence[ServiceInfo], fronts: ExitStack, scratch: Path, binary: NginxBinary
) -> list[ServiceInfo]:
    """The services, each Traefik service with scheme h2c pointed at an h2c front before its
    echo server (which speaks HTTP/1.1 only; the front answers over HTTP/2 only)."""
    fronted = []
    for service in services:
        labels = dict(service.labels)
        for label, value in service.labels.items():
            name = label.split(".")[3] if label.count(".") >= 4 else ""
            scheme = f"traefik.http.services.{name}.loadbalancer.server.scheme"
            port_label = f"traefik.http.services.{name}.loadbalancer.server.port"
            if label.lower() != scheme.lower() or value.strip().lower() != "h2c":
                continue
            if port_label in labels:
                place = scratch.with_name(f"{scratch.name}-h2c-{name}")
                front = fronts.enter_context(h2c_front(int(labels[port_label]), place, binary))
                labels[port_label] = str(front)
        fronted.append(replace(service, labels=labels))
    return fronted


def provider_case_outcome(
    case: Mapping[str, Any],
    area: str,
    stem: str,
    ports: Sequence[int],
    scratch: Path,
    binary: NginxBinary = LOCAL_NGINX,
) -> Outcome:
    """Labels of a Docker/Swarm provider case → whether each router Traefik made answers."""
    case_id = f"{stem}:{case['id']}"
    if case.get("not_applicable"):
        return Outcome(case_id, area, Verdict.NOT_APPLICABLE, case["not_applicable"])
    services, service_of = provider_services(case, ports)
    provider = case["provider"]
    default_rule = provider.get("defaultRule")
    with ExitStack() as fronts:
        try:
            routes, problems = discover_case(
                _h2c_fronted(services, fronts, scratch, binary),
                provider["exposedByDefault"],
                None if default_rule is None else public_rule(default_rule, case["syntax"]),
            )
        except SettingsError as refused:  # a default rule certbotless cannot evaluate: no start
            return Outcome(case_id, area, Verdict.REFUSED, str(refused))
        differing = answers_differing(case, routes, service_of, scratch, binary)
    if not differing:
        return Outcome(case_id, area, Verdict.BEHAVES, _problems_text(problems))
    served = {service_of.get(route.port) for route in routes}
    unserved = [r for r in case["expected"]["routers"] if r["service"] not in served]
    # Refused: a problem names each unserved router, or its service (a feature of either).
    prefixes = tuple(
        prefix.lower()
        for r in unserved
        for prefix in (f"{R}{r['name']}.", f"traefik.http.services.{r['service']}.")
    )
    named = [p for p in problems if p.label.lower().startswith(prefixes)]
    if named and unserved and len(differing) <= len(unserved):
        return Outcome(case_id, area, Verdict.REFUSED, _problems_text(named))
    said = f" (said: {_problems_text(problems)})" if problems else " (no problem said)"
    return Outcome(case_id, area, Verdict.SILENT, "; ".join(differing) + said)


def case_outcome(
    file: CaseFile,
    case: Mapping[str, Any],
    ports: Sequence[int],
    scratch: Path,
    binary: NginxBinary = LOCAL_NGINX,
) -> Outcome:
    run = provider_case_outcome if file.kind == "provider" else rule_case_outcome
    return run(case, file.area, file.stem, ports, scratch, binary)


def tally(outcomes: Sequence[Outcome]) -> list[tuple[str, int, int, int, int, int]]:
    """Per area with cases: (area, cases, behave, refused, silent, not applicable)."""
    rows = []
    for area, title in AREAS.items():
        mine = [o for o in outcomes if o.area == area]
        if not mine:
            continue
        counts = [sum(o.verdict is v for o in mine) for v in Verdict]
        rows.append((title, len(mine), *counts))
    return rows  # type: ignore[return-value]


def counts_lines(outcomes: Sequence[Outcome]) -> str:
    """The counts docs/traefik-labels.md carries, word for word: one list item per area (a list,
    not a table: the docs' tables are the label tables that other tests read)."""
    return "\n".join(
        f"- {area}: {total} cases; {ok} behave as in Traefik, {refused} refused with a message, "
        f"{silent} silently different, {na} not applicable to Swarm"
        for area, total, ok, refused, silent, na in tally(outcomes)
    )


def cases_page(outcomes: Sequence[Outcome]) -> str:
    """docs/traefik-cases.md: the counts, then per area every case, its verdict and what
    certbotless said (its refusal's words, or what differs)."""
    lines = [
        "# Traefik's own test cases, one by one",
        "",
        "Generated by `tests/unit/labels/traefik/test_traefik_own_cases.py` from its last run "
        "(on the edge image's nginx generation); [Traefik's labels](traefik-labels.md) says how "
        "the cases are read. Do not edit: regenerate with `CERTBOTLESS_UPDATE_CASES=1`.",
        "",
        counts_lines(outcomes),
    ]
    for area, title in AREAS.items():
        mine = [o for o in outcomes if o.area == area]
        if not mine:
            continue
        lines += ["", f"## {title[0].upper()}{title[1:]}", "", "| case | verdict | words |",
                  "|---|---|---|"]  # fmt: skip
        lines += [f"| {_cell(o.case_id)} | {o.verdict.value} | {_cell(o.detail)} |"
                  for o in mine]  # fmt: skip
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Text in a Markdown table cell: one line, its pipes escaped, no HTML read."""
    flat = " ".join(text.split()).replace("|", "\\|")
    return flat.replace("<", "&lt;").replace(">", "&gt;") or "—"
