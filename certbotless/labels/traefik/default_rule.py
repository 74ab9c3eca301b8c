"""Traefik's default rule (providers.swarm.defaultRule): the rule of a router written without
one, and of the router Traefik makes for a service that names none
(pkg/provider/configuration.go, BuildRouterConfiguration). Pure.

CERTBOTLESS_TRAEFIK_DEFAULT_RULE holds the template (setting_values.RuleTemplate); without it,
each such router is one problem, as certbotless cannot guess the operator's Traefik setting.
"""

from __future__ import annotations

from certbotless.model import LabelProblem, ServiceInfo
from certbotless.setting_values import RuleTemplate

_SERVICES = "traefik.http.services."
_SERVER_KEYS = (".loadbalancer.server.port", ".loadbalancer.server.url")
_V1_PORT = "traefik.port"


class NoDefaultRule(Exception):
    """The router has no rule and the default rule gives none; `problem` says why."""

    def __init__(self, problem: LabelProblem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def has_one_port(service: ServiceInfo) -> bool:
    """Whether Traefik makes a router for a service whose labels name none: when it defines at
    most one Traefik service, with a port (Swarm tells Traefik no ports) or a server URL."""
    names = {
        label[len(_SERVICES) :].partition(".")[0]
        for label in service.labels
        if label.lower().startswith(_SERVICES)
    }
    ports = [
        label
        for label in service.labels
        if label.lower().startswith(_SERVICES) and label.lower().endswith(_SERVER_KEYS)
    ]
    return len(names) <= 1 and bool(ports or _V1_PORT in service.labels)  # fmt: skip


def default_rule(
    service: ServiceInfo, router: str, label: str, template: RuleTemplate | None
) -> str:
    """The default rule evaluated for `service` (.Name: its normalized name, .Labels: its
    labels), for its `router` whose rule `label` is unset."""

    def refused(message: str) -> NoDefaultRule:
        return NoDefaultRule(LabelProblem(service.name, label, "", message))

    if template is None:
        raise refused(f"router {router} has no rule, so Traefik gives it its default rule "
                      "(providers.swarm.defaultRule), which CERTBOTLESS_TRAEFIK_DEFAULT_RULE "
                      "does not set: set that variable to your Traefik's defaultRule (e.g. "
                      "Host(`{{ normalize .Name }}.example.com`)), or give the router a rule "
                      f"such as {label}=Host(`a.example.com`)")  # fmt: skip
    try:
        rule = template.render(service.name, service.labels)
    except ValueError as error:
        raise refused(f"router {router} has no rule, and the default rule {template.text} "
                      f"cannot be evaluated for this service: {error}") from None  # fmt: skip
    if not rule.strip():
        raise refused(f"router {router} has no rule, and the default rule {template.text} is "
                      "empty for this service")  # fmt: skip
    return rule
