"""The console in a real browser: headless chromium (Debian's, through its
chromedriver) against a real `ingest serve` on the test Postgres. Sign in,
filter, open a message, download an attachment (the same bytes), release a
quarantined message, replay a FAILED one — and a hostile message whose script
in the subject, the filename and the HTML body must neither run nor call out:
no alert, and no request to the local listener its payloads point at.

Screenshots of each main page go to tests/results/console/ (git-ignored);
docs/console/ keeps one of each, copied from there by hand."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ingest_core.bootstrap import open_app
from ingest_core.model import MessageStatus
from ingest_core.settings import Settings
from tests.console.browser import Beacon, chromium, require_browser
from tests.console.mail import DOMAIN, PDF, deliver, failed, hostile, order, quarantined
from tests.procs import IngestServer, free_port, ingest_env, wait_for

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "tests" / "results" / "console"
PASSWORD = "correct horse battery staple"
pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


@pytest.fixture
def served(data_dir: Path, pg_url: str):
    require_browser()
    port = free_port()
    env = ingest_env(
        data_dir,
        pg_url,
        INGEST_API_LISTEN=f"127.0.0.1:{port}",
        INGEST_CONSOLE_SECRET="browser-test-" + "k" * 32,
    )
    added = subprocess.run(
        [sys.executable, "-m", "lmtpd.cli", "operators", "add", "olga", "--password-stdin"],
        input=PASSWORD + "\n",
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert added.returncode == 0, added.stderr
    with Beacon() as beacon:
        settings = Settings(data_dir=data_dir, database_url=pg_url, domains=(DOMAIN,))
        with open_app(settings) as app:
            for slug in ("acme", "globex"):
                app.admin.add(slug, slug.title() + " Inc.")
            ids = {
                "orders": [deliver(app, "acme", order(f"Order {n} for dock 4")) for n in range(6)],
                "globex": deliver(app, "globex", order("Globex restock", "cfo@globex.example")),
                "held": quarantined(app, "acme", order("Held by DMARC", "held@big.example")),
                "failed": failed(app, "globex", order("Broken order", "x@broken.example")),
                "hostile": deliver(app, "acme", hostile(beacon.url)),
            }
            server = IngestServer(env, data_dir / "serve.log")
            server.start()
            base = f"http://127.0.0.1:{port}"
            wait_for(lambda: _answers(base + "/console/sign-in"), "the console to answer")
            try:
                yield app, base, ids, beacon
            finally:
                server.stop()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def _shot(driver: WebDriver, name: str) -> None:
    """The whole page, as tall as it is."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    width = driver.get_window_size()["width"]
    driver.set_window_size(
        width, 600 if width < 600 else 900
    )  # measured afresh, not the last page's
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(max(int(height) + 120, 600), 4000))
    driver.save_screenshot(str(RESULTS / f"{name}.png"))


def _wait_url(driver: WebDriver, part: str) -> None:
    wait_for(lambda: part in driver.current_url, f"the browser at …{part}", 30)


def _no_alert(driver: WebDriver) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert  # noqa: B018 - the property raises when there is none


def _downloaded(folder: Path, name: str) -> bytes:
    target = folder / name

    def done() -> bool:
        busy = any(p.suffix == ".crdownload" or p.name.startswith(".") for p in folder.iterdir())
        return target.exists() and not busy

    wait_for(done, f"{name} to download", 30)
    return target.read_bytes()


def _sign_in(driver: WebDriver, base: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(base + "/console/messages")
    _wait_url(driver, "/console/sign-in")
    _shot(driver, "sign-in")
    driver.find_element(By.NAME, "name").send_keys("olga")
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "operator-sign-in").click()
    wait_for(lambda: driver.current_url.endswith("/console/messages"), "sign-in", 30)


def test_operator_signs_in_filters_downloads_releases_and_replays(served, tmp_path) -> None:
    from selenium.webdriver.common.by import By

    app, base, ids, _ = served
    with chromium(tmp_path) as driver:
        started = time.perf_counter()
        _sign_in(driver, base)
        rows = driver.find_elements(By.CSS_SELECTOR, "table.list tbody tr")
        assert len(rows) == 10
        _shot(driver, "messages")
        # filter: a tenant and part of a subject
        driver.find_element(By.NAME, "subject").send_keys("order 3")
        driver.find_element(By.CSS_SELECTOR, "select[name=tenant] option[value=acme]").click()
        driver.find_element(By.ID, "filter").click()
        _wait_url(driver, "subject=order+3")
        [row] = driver.find_elements(By.CSS_SELECTOR, "table.list tbody tr")
        assert "Order 3 for dock 4" in row.text
        row.find_element(By.PARTIAL_LINK_TEXT, "Order 3").click()
        _wait_url(driver, f"/console/messages/{ids['orders'][3]}")
        assert (
            "Please ship 10 widgets to dock 4."
            in driver.find_element(By.CSS_SELECTOR, "pre.body").text
        )
        _shot(driver, "message")
        driver.find_element(By.CSS_SELECTOR, "a.download").click()
        assert _downloaded(tmp_path, "order-4711.pdf") == PDF

        # release the quarantined message, after the confirmation page
        driver.get(base + "/console/quarantine")
        _shot(driver, "quarantine")
        driver.find_element(By.LINK_TEXT, "Release…").click()
        _wait_url(driver, f"/console/messages/{ids['held']}/release")
        _shot(driver, "confirm-release")
        driver.find_element(By.ID, "confirm").click()
        _wait_url(driver, "done=released")
        assert "Released" in driver.find_element(By.CSS_SELECTOR, ".flash").text
        assert "message.release by console olga" in driver.find_element(By.ID, "audit").text
        acme = app.tenants.resolve("acme").id
        assert app.repository.get(acme, ids["held"]).status is MessageStatus.RECEIVED

        # replay the FAILED one
        driver.get(base + "/console/failed")
        _shot(driver, "failed")
        driver.find_element(By.LINK_TEXT, "Replay…").click()
        driver.find_element(By.ID, "confirm").click()
        _wait_url(driver, "done=replayed")
        globex = app.tenants.resolve("globex").id
        assert app.repository.get(globex, ids["failed"]).status is MessageStatus.RECEIVED
        actions = [(e.action, e.actor) for e in app.audit.events()]
        assert ("message.replay", "console olga") in actions
        assert ("message.release", "console olga") in actions

        driver.get(base + "/console/tenants")
        assert len(driver.find_elements(By.CSS_SELECTOR, "svg.chart")) == 2
        _shot(driver, "tenants")
        elapsed = time.perf_counter() - started

        driver.set_window_size(390, 844)  # a phone
        driver.get(base + "/console/messages")
        _shot(driver, "messages-phone")
        driver.get(f"{base}/console/messages/{ids['orders'][3]}")
        _shot(driver, "message-phone")
        overflow = driver.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth"
        )
        assert overflow <= 0, "the message page scrolls sideways on a phone"
    print(f"browser scenario: {elapsed:.1f} s")


def test_a_hostile_message_runs_nothing_and_calls_nowhere(served, tmp_path) -> None:
    from selenium.webdriver.common.by import By

    _, base, ids, beacon = served
    with chromium(tmp_path) as driver:
        _sign_in(driver, base)
        assert "<script>alert(1);fetch(" in driver.find_element(By.CSS_SELECTOR, "table.list").text
        _no_alert(driver)
        driver.get(f"{base}/console/messages/{ids['hostile']}")
        subject = driver.find_element(By.CSS_SELECTOR, "h1.subject").text
        assert subject == f"<script>alert(1);fetch('{beacon.url}/subject')</script>"
        assert "Totally an order" in driver.find_element(By.CSS_SELECTOR, "pre.body").text
        assert not driver.find_elements(By.CSS_SELECTOR, "main script, main iframe, main img")
        assert len(driver.find_elements(By.CSS_SELECTOR, "main svg")) == 0
        _no_alert(driver)
        _shot(driver, "hostile")
        # the hostile .html attachment is saved, never shown
        link = driver.find_element(By.CSS_SELECTOR, "a.download")
        assert link.text == "<img src=x onerror=alert(2)><svg onload=alert(5)>.html"
        before = driver.current_url
        link.click()

        def saved() -> list[Path]:
            files = list(tmp_path.iterdir())
            busy = any(p.suffix == ".crdownload" or p.name.startswith(".") for p in files)
            return [] if busy else files

        wait_for(lambda: bool(saved()), "the hostile attachment to download", 30)
        [file] = saved()
        assert file.read_bytes().startswith(b"<script>alert(4);")  # saved as it came, not run
        assert driver.current_url == before
        _no_alert(driver)
        time.sleep(1.0)  # room for anything that would call out late
        console = driver.get_log("browser")
        assert beacon.paths == [], beacon.paths
        assert not [entry for entry in console if "Content Security Policy" in entry["message"]]
        # the control: the same detectors see a page that does run script and call out
        driver.get(f"{beacon.url}/control")
        alert = driver.switch_to.alert
        assert alert.text == "9"
        alert.accept()
        wait_for(lambda: "/control-image" in beacon.paths, "the control's request", 30)
