"""The status page on the real swarm (issue 16): served by the sidecar, routed by the edge at the
host of the `certbotless.status_page` label (stacks/status-page.yml), behind basic auth from a
Swarm secret; its JSON lists what nginx serves, and "renew now" on the page rolls a new serial."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from urllib.parse import urlencode

import bcrypt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from rig.stacks import (
    BLOCKED_HOST,
    DEMO_HOST,
    DEMO_STACK,
    EDGE_NETWORK,
    EDGE_STACK,
    SEED_STACKS,
    deploy_demo_app,
    deploy_stack,
    docker,
    ensure_edge_network,
    https_get,
    remove_stacks,
    sidecar_logs,
    wait_for_https,
    wait_for_roll,
)
from rig.state import run
from tests.web.test_status_page_browser import (
    CHROMIUM_FLAGS,
    LAPTOP,
    _load,
    _log_in,
    _screenshot,
)

pytestmark = pytest.mark.rig

STATUS_HOST = "status.example.test"
SECRET = "certbotless-status-htpasswd"
BLOCKED_APP = "cbl-status-blocked-app"
USER, PASSWORD = "ops", "a long status password"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}


def remove_secret() -> None:
    run(["docker", "secret", "rm", SECRET], check=False)


@pytest.fixture(scope="module")
def page(
    rig_env: Mapping[str, str], pebble_root: str, figure: Callable[[str], None],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:  # fmt: skip
    remove_stacks([*SEED_STACKS, "traefik-seeds", "native-access", DEMO_STACK, EDGE_STACK])
    remove_secret()
    line = f"{USER}:{bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=10)).decode()}\n"
    htpasswd = tmp_path_factory.mktemp("status") / "htpasswd"
    htpasswd.write_text(line)
    docker("secret", "create", SECRET, str(htpasswd))
    ensure_edge_network()
    env = {**rig_env, "CERTBOTLESS_STATUS_HOST": STATUS_HOST, "CERTBOTLESS_STATUS_ACTIONS": "true"}
    started = time.monotonic()
    deploy_stack(EDGE_STACK, ["edge.yml", "test-pebble.yml", "status-page.yml"], env)
    deploy_demo_app()
    # A certificate the CA refuses (the rig's Pebble blocks this name): the page shows its words.
    docker("service", "create", "--detach", "--name", BLOCKED_APP, "--network", EDGE_NETWORK,
           "--label", f"certbotless.domains={BLOCKED_HOST}", "--label", "certbotless.port=8000",
           "certbotless-demo-app:local")  # fmt: skip
    try:
        answer = wait_for_https(STATUS_HOST, pebble_root, timeout=300, headers=AUTH)
        wait_for_https(DEMO_HOST, pebble_root, timeout=300)
        figure(f"status page through the edge, basic auth from a secret: edge deployed → page "
               f"answering {answer.answering_since - started:.1f} s")  # fmt: skip
        yield pebble_root
    except TimeoutError:
        print(sidecar_logs(200))
        raise
    finally:
        run(["docker", "service", "rm", BLOCKED_APP], check=False)
        remove_stacks([DEMO_STACK, EDGE_STACK])
        remove_secret()


def listed(pebble_root: str) -> dict[str, dict[str, object]]:
    answer = https_get(STATUS_HOST, pebble_root, "/api/v1/certificates", headers=AUTH)
    assert answer.status == 200, answer.body
    return {row["name"]: row for row in json.loads(answer.body)}


def same_serial(listed_serial: object, served: str) -> bool:
    return str(listed_serial).lower().replace(":", "").lstrip("0") == served


def test_the_page_is_not_served_without_the_password(page: str) -> None:
    assert https_get(STATUS_HOST, page).status == 401
    wrong = {"Authorization": "Basic " + base64.b64encode(b"ops:guess").decode()}
    assert https_get(STATUS_HOST, page, headers=wrong).status == 401
    assert https_get(STATUS_HOST, page, "/api/v1/certificates").status == 401


def test_a_tenant_on_the_edge_network_cannot_reach_the_page_itself(page: str) -> None:
    """Issue 25, item 9: the page listens on the certbotless-edge network every tenant joins.
    A container there that asks the page itself, not through the edge's nginx, is refused,
    whatever X-Forwarded-* it sends and even with the password; the edge's requests pass."""
    forged = ["-H", "X-Forwarded-For: 10.0.0.1", "-H", f"X-Forwarded-Host: {STATUS_HOST}",
              "-H", "X-Forwarded-Proto: https"]  # fmt: skip
    for credentials in ([], ["-H", f"Authorization: {AUTH['Authorization']}"]):
        url = f"http://{EDGE_STACK}_certbotless:8403/"
        probe = run(["docker", "run", "--rm", "--network", EDGE_NETWORK, "--entrypoint", "curl",
                     "certbotless-front:local", "-s", "-w", "\n%{http_code}", *forged,
                     *credentials, url], check=False)  # fmt: skip
        body, _, status = probe.stdout.rpartition("\n")
        print(f"a tenant's direct request ({len(credentials) // 2} credentials): {status}")
        assert status == "403" and "not an nginx task of the edge" in body, probe
    assert https_get(STATUS_HOST, page, headers=AUTH).status == 200


def test_the_page_and_its_json_show_what_nginx_serves(page: str) -> None:
    served = https_get(DEMO_HOST, page).serial
    html = https_get(STATUS_HOST, page, headers=AUTH).body
    assert DEMO_HOST in html and STATUS_HOST in html
    rows = listed(page)
    assert same_serial(rows[DEMO_HOST]["serial"], served), rows[DEMO_HOST]
    assert rows[DEMO_HOST]["status"] == "ok", rows[DEMO_HOST]


def test_renew_now_on_the_page_rolls_a_new_serial_and_logs_who_asked(page: str) -> None:
    before = https_get(DEMO_HOST, page).serial
    html = https_get(STATUS_HOST, page, headers=AUTH).body
    token = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert token, html[:2000]
    form = urlencode({"action": "renew", "name": DEMO_HOST, "csrf": token[1]}).encode()
    headers = {**AUTH, "Origin": f"https://{STATUS_HOST}",
               "Content-Type": "application/x-www-form-urlencoded"}  # fmt: skip
    forged = https_get(STATUS_HOST, page, "/actions", method="POST", body=form,
                       headers={**headers, "Origin": "https://evil.example"})  # fmt: skip
    assert forged.status == 403
    done = https_get(STATUS_HOST, page, "/actions", method="POST", body=form, headers=headers)
    assert done.status == 303, done.body
    deadline = time.monotonic() + 120
    while (after := https_get(DEMO_HOST, page).serial) == before:
        assert time.monotonic() < deadline, sidecar_logs(80)
        time.sleep(1)
    assert same_serial(listed(page)[DEMO_HOST]["serial"], after)
    assert f"status page: {USER} asked to renew {DEMO_HOST}" in sidecar_logs(400)
    assert docker("secret", "ls", "-q", "--filter", f"name={SECRET}").strip()


@pytest.fixture
def browser(page: str) -> Iterator[webdriver.Chrome]:
    """Debian's chromium, sending status.example.test to the rig's front and trusting only the
    key the page is served with (Pebble's root is not in the browser's store)."""
    served = https_get(STATUS_HOST, page, headers=AUTH)
    key = x509.load_der_x509_certificate(served.der).public_key()
    spki = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in (*CHROMIUM_FLAGS, f"--host-resolver-rules=MAP {STATUS_HOST} 127.0.0.1",
                 "--ignore-certificate-errors-spki-list="
                 + base64.b64encode(hashlib.sha256(spki).digest()).decode()):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    chrome = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        yield chrome
    finally:
        chrome.quit()


def test_in_a_browser_the_page_lists_the_swarms_certificates_and_renew_now_rolls_one(
    page: str, browser: webdriver.Chrome, figure: Callable[[str], None]
) -> None:
    url = f"https://{STATUS_HOST}/"
    wait_for_roll(f"{EDGE_STACK}_nginx")  # the previous test's renewal rolls the edge
    assert _load(browser, url) == [401]  # no credentials: nothing of the page
    assert DEMO_HOST not in browser.page_source
    _log_in(browser, USER, PASSWORD)
    assert _load(browser, url) == [200]
    before = https_get(DEMO_HOST, page).serial
    row = browser.find_element(By.ID, f"cert-{DEMO_HOST}")
    assert DEMO_HOST in row.text
    # The certificate the CA refused: failing, in the CA's own words.
    refused = WebDriverWait(browser, 60, poll_frequency=2).until(
        lambda chrome: listed(page).get(BLOCKED_HOST, {}).get("failure")
    )
    words = str(refused["error"]) if isinstance(refused, dict) else str(refused)
    blocked = WebDriverWait(browser, 30, 1, ignored_exceptions=[NoSuchElementException]).until(
        lambda chrome: row_after_refresh(chrome, BLOCKED_HOST)
    )
    assert "failed" in blocked and words[:60] in blocked, (words, blocked)
    shot = _screenshot(browser, LAPTOP, "status-page-swarm.png")
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert _load(browser, url) == [200]
    row = browser.find_element(By.ID, f"cert-{DEMO_HOST}")
    row.find_element(By.XPATH, ".//button[text()='Renew now']").click()
    WebDriverWait(browser, 10).until(lambda chrome: "done=" in chrome.current_url)
    deadline = time.monotonic() + 120
    while (after := https_get(DEMO_HOST, page).serial) == before:
        assert time.monotonic() < deadline, sidecar_logs(80)
        time.sleep(1)
    # The page shows the new serial once the pass is done.
    WebDriverWait(browser, 60, poll_frequency=1).until(
        lambda chrome: same_serial_shown(row_after_refresh(chrome), after)
    )
    figure(f"status page on the swarm in chromium: renew now → new serial {after} shown; {shot}")


def row_after_refresh(chrome: webdriver.Chrome, name: str = DEMO_HOST) -> str:
    chrome.refresh()
    return str(chrome.find_element(By.ID, f"cert-{name}").text)


def same_serial_shown(text: str, serial: str) -> bool:
    """Whether the row shows the serial (the page may abbreviate it to its start)."""
    shown = re.findall(r"\b[0-9a-f]{6,}\b", text.lower())
    return any(serial.startswith(s.lstrip("0")) or s.lstrip("0") == serial for s in shown)
