"""Bring your own nginx.conf: certbotless mounts only snippets and certificates.

The operator's nginx.conf (seed 004 style) includes the challenge snippet and one snippet per
certificate; a certificate not issued yet is a self-signed placeholder, so nginx starts anyway.
A Reconciler runs here in the test process against the real swarm and a real Pebble.
"""

import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from certbotless.acme.challenges import TokenStore
from certbotless.acme.http01 import EdgeHttp01Solver
from certbotless.acme.issuer import AcmeIssuer
from certbotless.acme.keys import load_account_key
from certbotless.app import App
from certbotless.edge.rollout import ServedCertificates
from certbotless.model import PassRequest
from certbotless.settings import NginxConfMode, Settings
from certbotless.swarm.api import Swarm
from certbotless.swarm.store import CertStore, latest_per_name
from rig.pebble import PebbleServer
from rig.stacks import (
    DEMO_STACK,
    EDGE_NETWORK,
    EDGE_STACK,
    docker,
    ensure_edge_network,
    remove_stacks,
)

pytestmark = pytest.mark.rig

SERVICE = "cbl-byo"
PORT = 8444
HOST = "byo.example.test"
LATER = "later.example.test"
OWN_CONF = f"""\
events {{}}
http {{
    server {{
        listen 80;
        server_name {HOST};
        include /etc/nginx/certbotless/acme-challenge.conf;
        location / {{ return 200 "byo over http\\n"; }}
    }}
    server {{
        listen 443 ssl;
        server_name {HOST};
        include /etc/nginx/certbotless/certs/{HOST}.conf;
        location / {{ return 200 "byo over https\\n"; }}
    }}
    server {{
        listen 443 ssl;
        server_name {LATER};
        include /etc/nginx/certbotless/certs/later.conf;
        location / {{ return 200 "later\\n"; }}
    }}
}}
"""


@pytest.fixture(scope="module")
def own_edge() -> Iterator[str]:
    # No other certbotless may watch this service's labels while the test drives its passes.
    remove_stacks([DEMO_STACK, EDGE_STACK])
    docker("service", "rm", SERVICE, check=False)
    ensure_edge_network()
    conf_name = f"byo-nginx-conf-{secrets.token_hex(3)}"
    conf_file = Path(f"/tmp/{conf_name}.conf")
    conf_file.write_text(OWN_CONF)
    docker("config", "create", conf_name, str(conf_file))
    docker(
        "service", "create", "--detach", "--name", SERVICE, "--network", EDGE_NETWORK,
        "--publish", f"mode=host,target=443,published={PORT}",
        "--config", f"source={conf_name},target=/etc/nginx/nginx.conf,mode=0444",
        "--label", f"certbotless.domains={HOST}",
        "--label", f"certbotless.certificate.later={LATER}",
        "--update-order", "stop-first", "--update-monitor", "1s",
        "--update-failure-action", "rollback", "--stop-signal", "SIGQUIT",
        "certbotless-nginx:local",
    )  # fmt: skip
    yield conf_name
    docker("service", "rm", SERVICE, check=False)
    deadline = time.monotonic() + 60
    while docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={SERVICE}").strip():
        assert time.monotonic() < deadline
        time.sleep(0.5)
    docker("config", "rm", conf_name, check=False)


def test_own_nginx_conf_gets_snippets_certificates_and_placeholders(
    own_edge: str, pebble_for_acme: PebbleServer, acme_tokens: TokenStore, tmp_path: Path
) -> None:
    settings = Settings(
        nginx_conf=NginxConfMode.OWN,
        nginx_service=SERVICE,
        self_check=False,
        lock_file=tmp_path / "pass.lock",
        challenge_dir=acme_tokens.directory,  # where the tests' responder serves tokens from
        acme_directory=pebble_for_acme.directory_url,
    )
    issuer = AcmeIssuer(
        pebble_for_acme.directory_url,
        load_account_key(None),
        EdgeHttp01Solver(acme_tokens),
        ca_bundle=Path(pebble_for_acme.ca_bundle),
    )
    # "later" cannot be issued yet (as if rate limited), so nginx gets the placeholder for it.
    issuer.backoff.rate_limited([LATER], datetime.now(UTC) + timedelta(hours=1))
    swarm = Swarm()
    app = App(settings, swarm, issuer)
    reconciler = app.reconciler

    rendered = app.render()
    assert "# --- /etc/nginx/certbotless/acme-challenge.conf" in rendered
    assert f"ssl_certificate /etc/nginx/certs/{HOST}/fullchain.pem;" in rendered

    # The swarm may hold one from an earlier run.
    report = reconciler.run_pass(PassRequest(force=True, progress=print))
    assert HOST in report.issued and "later" in report.failed, report
    assert report.rolled and report.rollout_error is None, report

    issued = latest_per_name(CertStore(swarm).inventory(), datetime.now(UTC))[HOST]
    served = ServedCertificates("127.0.0.1", PORT)
    served.wait_until_serving({HOST: issued.serial}, time.monotonic() + 30)
    placeholder_serial = next(iter(served.serials(LATER).values()))
    assert placeholder_serial not in ("", issued.serial)
    assert "no TLS answer" not in placeholder_serial

    spec = swarm.inspect_service(SERVICE)["Spec"]["TaskTemplate"]["ContainerSpec"]
    targets = {ref["File"]["Name"]: ref["ConfigName"] for ref in spec["Configs"]}
    assert targets["/etc/nginx/nginx.conf"] == own_edge, "the operator's nginx.conf stays"
    assert "/etc/nginx/certbotless/acme-challenge.conf" in targets
    assert targets["/etc/nginx/certs/later/fullchain.pem"] == "cbl-placeholder"
    # A second pass with nothing new changes nothing.
    assert not reconciler.run_pass().rolled
