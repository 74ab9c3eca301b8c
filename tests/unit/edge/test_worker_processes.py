"""nginx's worker processes follow the edge service's CPU limit: `worker_processes auto` counts
the node's CPUs, so an edge limited to one CPU would run a worker per CPU of the node, each
keeping its own certificates."""

from __future__ import annotations

import pytest

from certbotless.edge.deployer import workers_for_cpu_limit
from certbotless.edge.mounts import NGINX_CONF_TARGET
from certbotless.edge.render import render_nginx_conf
from certbotless.model import Route
from tests.support.factories import CERTS_DIR, RESPONDER, certs_for
from tests.unit.edge.test_edge_limits import deployer, mounted


@pytest.mark.parametrize(
    ("nano_cpus", "workers"),
    [(None, None), (0, None), (1_000_000_000, 1), (1_500_000_000, 2), (250_000_000, 1)],
)
def test_the_cpu_limit_rounded_up_else_auto(nano_cpus: int | None, workers: int | None) -> None:
    limits = {} if nano_cpus is None else {"NanoCPUs": nano_cpus}
    service = {"Spec": {"TaskTemplate": {"Resources": {"Limits": limits}}}}
    assert workers_for_cpu_limit(service) == workers
    assert workers_for_cpu_limit({"Spec": {"TaskTemplate": {}}}) is None


@pytest.mark.parametrize(("workers", "line"), [(None, "auto"), (2, "2")])
def test_the_main_file_says_them(workers: int | None, line: str) -> None:
    routes = [Route("app", ("app.example.test",), 8000)]
    files = render_nginx_conf(routes, certs_for("app.example.test"), RESPONDER, CERTS_DIR,
                              workers=workers)  # fmt: skip
    assert f"\nworker_processes {line};\n" in files[NGINX_CONF_TARGET]


def test_the_rolled_configuration_has_the_edge_services_limit() -> None:
    edge, swarm, store = deployer()
    task = swarm.service["Spec"]["TaskTemplate"]
    task["Resources"] = {"Limits": {"NanoCPUs": 1_500_000_000}}
    edge.deploy("edge", [Route("app", ("app.example.test",), 8000)], {}, [], lambda _: None)
    (update,) = swarm.updates
    rolled = store.texts[mounted(update)[NGINX_CONF_TARGET]]
    assert "\nworker_processes 2;\n" in rolled
