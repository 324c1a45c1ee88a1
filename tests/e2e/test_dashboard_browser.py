"""The dashboard in a real headless browser (the system chromium), against a real service.

Skipped with its reason when no browser is installed; under ``CI=true`` a missing
browser fails instead. Nothing here downloads a browser.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.http_service import REPO_DOCS, Served, serve_http
from support.service import event, short_root

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

CONFIG = """
[live_data.scopes.my-ext]
owns = ["extensions.items.my-ext"]

[enrichment.providers.sim-estimated]
kind = "simulated"
cost_usd = 0.02
usage = "estimated"

[enrichment.providers.sim-exact]
kind = "simulated"
cost_usd = 0.01
usage = "exact"
"""


def _browser() -> Any:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        reason = f"no browser: {CHROMIUM} and {CHROMEDRIVER} are needed (apt-get install chromium chromium-driver)"  # noqa: E501
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="ab-chrome-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1100",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.profile_dir = profile  # type: ignore[attr-defined]
    return driver


@pytest.fixture
def browser() -> Iterator[Any]:
    driver = _browser()
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(driver.profile_dir, ignore_errors=True)


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # a node not there yet
            last = exc
        else:
            if last:
                return last
        time.sleep(0.05)
    raise AssertionError(f"{what}: last seen {last!r}")


NO_FIGURE = "\N{EN DASH}"  # what the page shows before its second poll


def _rate(shown: str, before: str) -> str | None:
    """The figure shown if it is a rate above zero and differs from ``before``."""
    if shown in (NO_FIGURE, before):
        return None
    return shown if float(shown.replace(",", "")) > 0 else None


def _enrich(run_id: str, source: str) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "enrichment_type": "summary",
        "adapter_version": "v1",
        "items": [
            {"source_id": source, "item_id": f"{source}-{n}", "metadata": {"n": n}}
            for n in range(4)
        ],
        "budget_usd": None,
        "cadence_per_day": 24 if source == "sim-estimated" else None,
        "prune": False,
    }


def _fill(served: Served) -> None:
    with served.uds() as client:
        for session in ("s1", "s2"):
            assert client.post(f"/v1/sessions/ui/{session}").status_code in (200, 201)
        for n in range(5):
            client.post(
                "/schema-recorder/append",
                content=event("ui", "s1", f"seed-{n}"),
                headers={"content-type": "application/json"},
            )
        document = {
            "schema_version": 1,
            "hosts": {"web-1": {"load": 3}},
            "extensions": {"items": {}},
        }
        assert client.put("/v1/live-data/full", json=document).status_code == 200
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        trend = {"extensions": {"items": {"trend-finder": {"status": "ok", "updated_at": now}}}}
        assert client.put("/v1/live-data/trend-finder", json=trend).status_code == 200
        mine = {"extensions": {"items": {"my-ext": {"status": "degraded", "updated_at": now}}}}
        assert client.put("/v1/live-data/my-ext", json=mine).status_code == 200
        assert client.post("/v1/enrich", json=_enrich("run-exact", "sim-exact")).status_code == 200
        estimated = client.post("/v1/enrich", json=_enrich("run-estimated", "sim-estimated"))
        assert estimated.json()["spend"]["run"]["state"] == "estimated"


def test_the_dashboard_shows_the_service_as_a_person_sees_it(browser: Any) -> None:
    from selenium.webdriver.common.by import By

    root = short_root()
    stop_appending = threading.Event()
    try:
        with serve_http(root, CONFIG, tcp=True) as served:
            _fill(served)
            browser.get(f"http://{served.tcp}/")

            def text(css: str) -> str:
                return str(browser.find_element(By.CSS_SELECTOR, css).text)

            wait_for(lambda: text("#service-state") == "serving", 10, "the service shown serving")
            trend = '[data-branch="extensions.items.trend-finder"] .status'
            mine = '[data-branch="extensions.items.my-ext"] .status'
            assert wait_for(lambda: text(trend), 10, "trend-finder's status") == "ok"
            assert text(mine) == "degraded"
            assert browser.find_element(By.CSS_SELECTOR, '[data-branch="hosts"]')
            assert "s ago" in text('[data-branch="extensions.items.trend-finder"] td:last-child')
            assert "scope my-ext" in text("#last-write")

            estimated_run = wait_for(
                lambda: text('[data-run="run-estimated"]'), 10, "the estimated run"
            )
            assert "estimated" in estimated_run and "≈" in estimated_run
            assert "monthly" in estimated_run
            exact_run = text('[data-run="run-exact"]')
            assert "exact" in exact_run and "≈" not in exact_run.split("\n")[0]
            assert "cadence unavailable" in exact_run

            # Events per second: the figure follows appends made now.
            before = text("#eps")

            def append_steadily() -> None:
                with served.uds() as client:
                    n = 0
                    while not stop_appending.is_set():
                        client.post(
                            "/schema-recorder/append",
                            content=event("ui", "s2", f"load-{n}"),
                            headers={"content-type": "application/json"},
                        )
                        n += 1
                        time.sleep(0.01)

            loader = threading.Thread(target=append_steadily)
            loader.start()
            try:
                rising = wait_for(
                    lambda: _rate(text("#eps"), before), 10, "events per second above zero"
                )
            finally:
                stop_appending.set()
                loader.join()
            wait_for(lambda: text("#eps") != rising, 10, "events per second changing again")

            # The session view: a new event shows within two seconds.
            browser.find_element(By.ID, "session-user").send_keys("ui")
            browser.find_element(By.ID, "session-id").send_keys("s1")
            browser.find_element(By.CSS_SELECTOR, "#session-form button").click()
            wait_for(lambda: "seed-4" in text("#session-events"), 5, "the session's past events")
            wait_for(lambda: text("#session-state").endswith("live"), 5, "the stream open")
            with served.uds() as client:
                client.post(
                    "/schema-recorder/append",
                    content=event("ui", "s1", "fresh-event"),
                    headers={"content-type": "application/json"},
                )
            wait_for(lambda: "fresh-event" in text("#session-events"), 2, "the new event")

            # The README's picture is retaken on request only, so a test run leaves the
            # tree as it was: ACTORBUS_SCREENSHOT=1 make unit.
            if os.environ.get("ACTORBUS_SCREENSHOT") == "1":
                browser.save_screenshot(str(REPO_DOCS / "dashboard.png"))

            assert served.stop() == 0
            wait_for(lambda: text("#service-state") == "offline", 10, "the offline state")
            assert browser.find_element(By.ID, "offline").is_displayed()
    finally:
        stop_appending.set()
        shutil.rmtree(root, ignore_errors=True)
