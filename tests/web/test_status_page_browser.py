"""The status page in a real headless browser: Debian's chromium, driven by Selenium through
Debian's chromedriver (no browser download). Screenshots land in .build/artifacts/."""

from __future__ import annotations

import base64
import json
import re
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from certbotless.settings import StatusPage
from tests.support.paths import REPO
from tests.web.status_data import CA_WORDS, PASSWORD, USER, RecordedActions, serving, write_htpasswd

ARTIFACTS = REPO / ".build" / "artifacts"
LAPTOP = (1366, 860)
PHONE = (390, 844)
# As root in a container: no sandbox; and nothing that phones home.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run")  # fmt: skip


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "chromium and chromium-driver (rig/install.py) are needed"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield chrome
    finally:
        chrome.quit()


def _log_in(chrome: webdriver.Chrome, user: str, password: str) -> None:
    """What a browser sends once its basic-auth prompt is answered: every request carries it."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    chrome.execute_cdp_cmd("Network.enable", {})
    chrome.execute_cdp_cmd("Network.setExtraHTTPHeaders",
                           {"headers": {"Authorization": f"Basic {token}"}})  # fmt: skip


# Chromium aborts its loads when it sees the host's network change, which a host running Docker's
# containers does now and then (CI saw it on this page's first load): no answer of the server's.
NETWORK_CHANGED = "net::ERR_NETWORK_CHANGED"


def _load(chrome: webdriver.Chrome, url: str, attempts: int = 3) -> list[int]:
    """Navigate to `url`; the HTTP statuses of the documents this loaded from it. A load that
    Chromium aborted because the host's network changed is loaded again, as a user would."""
    for attempt in range(1, attempts + 1):
        chrome.get_log("performance")  # type: ignore[no-untyped-call]  # earlier loads' entries
        chrome.get(url)
        statuses, failures = _document_answers(chrome, url)
        if statuses or failures != [NETWORK_CHANGED] or attempt == attempts:
            break
        print(f"{url}: {NETWORK_CHANGED} (the host's network changed), loading it again")
    assert statuses or not failures, f"{url}: the browser's load failed: {failures}"
    return statuses


def _document_answers(
    chrome: webdriver.Chrome, url: str, timeout: float = 10
) -> tuple[list[int], list[str]]:
    """The statuses of the documents loaded from `url` since the driver's log was last read, and
    the errors of those whose load failed. The log may trail the navigation the driver returned
    from, so it is read until one or the other is there."""
    statuses: list[int] = []
    failures: list[str] = []
    deadline = time.monotonic() + timeout
    while not statuses and not failures and time.monotonic() < deadline:
        for entry in chrome.get_log("performance"):  # type: ignore[no-untyped-call]
            message = json.loads(entry["message"])["message"]
            params = message.get("params", {})
            response = params.get("response", {})
            if message["method"] == "Network.responseReceived" and response.get("url") == url:
                statuses.append(int(response["status"]))
            elif message["method"] == "Network.loadingFailed" and params.get("type") == "Document":
                failures.append(str(params.get("errorText")))
        if not (statuses or failures):
            time.sleep(0.2)
    return statuses, failures


def _row_ids(chrome: webdriver.Chrome) -> list[str]:
    return re.findall(r'<tr id="cert-([a-z]+)"', chrome.page_source)


def _router_services(chrome: webdriver.Chrome) -> list[str]:
    return re.findall(r'<td data-label="Service"><b>([a-z_]+)</b>', chrome.page_source)


def _screenshot(chrome: webdriver.Chrome, size: tuple[int, int], name: str) -> Path:
    """The whole page at `size`'s width (mobile layout for a phone's)."""
    width, height = size
    metrics = {"width": width, "height": height, "deviceScaleFactor": 1,
               "mobile": width < 500}  # fmt: skip
    chrome.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    chrome.refresh()
    full = chrome.execute_script("return document.documentElement.scrollHeight")
    chrome.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**metrics, "height": full})
    shot = chrome.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


class _Evil(BaseHTTPRequestHandler):
    """Another site's page with a form that posts to the status page (a CSRF attempt)."""

    target = ""

    def do_GET(self) -> None:
        body = (f'<form method="post" action="{self.target}/actions">'
                '<input type="hidden" name="action" value="revoke">'
                '<input type="hidden" name="name" value="shop">'
                '<input type="hidden" name="confirm" value="shop">'
                '<button id="win">Win a prize</button></form>').encode()  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_the_page_in_a_browser(browser: webdriver.Chrome, tmp_path: Path, figure) -> None:  # type: ignore[no-untyped-def]
    actions = RecordedActions()
    page = StatusPage(("127.0.0.1", 0), htpasswd=write_htpasswd(tmp_path), actions=True)
    with serving(page, actions=actions) as server:
        url = f"http://127.0.0.1:{server.port}/"
        # No credentials: the browser's login prompt, nothing of the page.
        assert _load(browser, url) == [401]
        assert "shop" not in browser.page_source

        _log_in(browser, USER, PASSWORD)
        assert _load(browser, url) == [200]
        assert browser.title.startswith("(3) certbotless status")  # three need someone
        rows = browser.find_elements(By.CSS_SELECTOR, "table.certs tbody tr")
        assert [r.get_attribute("id") for r in rows][:3] == ["cert-old", "cert-new", "cert-api"]
        assert CA_WORDS in browser.find_element(By.ID, "cert-api").text

        laptop = _screenshot(browser, LAPTOP, "status-page-laptop.png")
        phone = _screenshot(browser, PHONE, "status-page-phone.png")
        figure(f"status page screenshots: {laptop} and {phone}")
        # On a phone the table is cards: no sideways scrolling.
        assert browser.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth"
        )
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

        # The routers view: every router, then those its own filter keeps (no script: a query).
        assert len(browser.find_elements(By.CSS_SELECTOR, "#routers tr.router")) == 5
        assert (
            "digest auth is not something nginx can do"
            in browser.find_element(By.ID, "problems").text
        )
        browser.find_element(By.CSS_SELECTOR, "#routers input[name=router]").send_keys("10.0.0.0/8")
        browser.find_element(By.CSS_SELECTOR, "#routers form.filter button").click()
        WebDriverWait(browser, 10).until(
            lambda chrome: (
                "router=10.0.0.0" in chrome.current_url
                and _router_services(chrome) == ["api_admin"]
            )
        )
        assert browser.current_url.endswith("#routers")
        assert "No label problem matches this filter" in browser.page_source

        search = browser.find_element(By.NAME, "q")
        search.send_keys("shop")
        browser.find_element(By.CSS_SELECTOR, "form.filter button").click()
        # From the source, not elements: those of the page being left may go stale meanwhile.
        WebDriverWait(browser, 10).until(
            lambda chrome: "q=shop" in chrome.current_url and _row_ids(chrome) == ["shop"]
        )

        browser.find_element(By.CSS_SELECTOR, "#cert-shop button.light").click()  # Renew now
        WebDriverWait(browser, 10).until(
            lambda chrome: (
                'class="flash" role="status">shop: renewal asked for' in chrome.page_source
            )
        )
        assert actions.asked == [("renew", "shop", USER)]

        _Evil.target = url.rstrip("/")
        evil = ThreadingHTTPServer(("127.0.0.1", 0), _Evil)
        threading.Thread(target=evil.serve_forever, daemon=True).start()
        try:
            browser.get(f"http://127.0.0.1:{evil.server_address[1]}/")
            browser.find_element(By.ID, "win").click()
            # page_source: the body element of the page being left may go stale meanwhile.
            WebDriverWait(browser, 10).until(
                lambda chrome: "cross-site request refused" in chrome.page_source
            )
        finally:
            evil.shutdown()
            evil.server_close()
        assert actions.asked == [("renew", "shop", USER)]  # nothing revoked
