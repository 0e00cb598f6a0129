"""The event report (settlement) and the value of the year, in a real browser.

The service runs in process (uvicorn in a thread) over a SQLite store holding three weeks
of the twin's readings and one completed event (``twin_meter`` in tests/conftest.py).
"""

from __future__ import annotations

import io
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import uvicorn
from playwright.sync_api import Page, expect

from gridflock.api import create_app
from gridflock.config import Settings
from gridflock.domain.auth import Role
from gridflock.service import Runtime
from gridflock.service.links import NoDevices
from gridflock.store import Store
from gridflock.web import install_dashboard


@dataclass(frozen=True)
class Served:
    url: str
    viewer_key: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(twin_meter: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("GRIDFLOCK_")}
    os.environ["GRIDFLOCK_CONFIG"] = os.devnull + ".absent.toml"
    url = f"sqlite:///{Path(tmp_path_factory.mktemp('settle')) / 'settle.db'}"
    store = Store(url)
    store.upgrade()
    store.save_fleet(twin_meter.spec)
    store.write_telemetry(twin_meter.readings)
    store.save_event(twin_meter.event)
    key = store.create_api_key(Role.VIEWER, "analyst")[0]
    now = twin_meter.event.end + 86400
    settings = Settings(database_url=url, mqtt_url=None, port=0, settlement_placebo_days=5)
    runtime = Runtime(settings, store, twin_meter.spec, NoDevices(), lambda: now)
    app = create_app(runtime)
    install_dashboard(app)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the service did not start in 20 s"
        time.sleep(0.05)
    try:
        yield Served(f"http://127.0.0.1:{port}", key)
    finally:
        server.should_exit = True
        thread.join(10)
        store.close()
        os.environ.pop("GRIDFLOCK_CONFIG", None)
        os.environ.update(saved)


def _sign_in(page: Page, served: Served) -> None:
    page.goto(served.url + "/")
    page.get_by_label("API key").fill(served.viewer_key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(served.url + "/")


def test_event_report_and_year_value(page: Page, served: Served) -> None:
    _sign_in(page, served)
    page.goto(served.url + "/events/ev-twin")
    plain = page.locator("#st-plain")
    expect(plain).to_contain_text("Baseline:", timeout=30_000)
    expect(plain).to_contain_text("Accuracy")
    expect(plain).to_contain_text("Peaker avoided")
    # KPIs, the chart, every method, the league table and the non-responders
    expect(page.locator("#st-kwh")).to_contain_text("kWh")
    expect(page.locator("#st-kw-u")).to_contain_text("±")
    expect(page.locator("#st-mwh")).to_contain_text("MWh")
    expect(page.locator("#st-co2")).to_contain_text("t")
    page.wait_for_function("document.getElementById('chart-baseline').data?.length === 3")
    assert page.locator("#st-methods tbody tr").count() >= 1
    expect(page.locator("#st-methods tbody tr th").first).not_to_have_text("")
    league = page.locator("#st-league tbody tr")
    assert league.count() >= 1
    expect(league.first.locator("td").first).to_have_text("1")
    expect(page.locator("#st-nr-note")).to_contain_text("sites delivered less than")

    # the statement downloads as CSV saying which baseline it used
    href = page.locator("#st-csv").get_attribute("href")
    assert href is not None
    assert "format=csv" in href
    got = page.context.request.get(served.url + href)
    assert got.ok
    text = got.text()
    assert text.startswith("# gridflock-settlement/1")
    assert "# baseline: " in text
    table = pd.read_csv(io.StringIO(text), comment="#")
    assert table["site_id"].iloc[-1] == "TOTAL"

    # another method: the page says it was requested, the download follows
    options = page.locator("#st-method option")
    if options.count() > 2:
        value = options.nth(2).get_attribute("value")
        page.select_option("#st-method", value)
        expect(plain).to_contain_text("requested", timeout=30_000)
        assert f"method={value}" in (page.locator("#st-csv").get_attribute("href") or "")

    # the value of the year
    page.goto(served.url + "/value")
    page.select_option("#year", "2026")
    expect(page.locator("#y-events")).to_have_text("1", timeout=30_000)
    expect(page.locator("#y-avoided")).to_contain_text("MWh")
    expect(page.locator("#y-co2")).to_contain_text("t")
    page.wait_for_function("document.getElementById('chart-year').data?.length === 2")
    expect(page.get_by_role("link", name="Value")).to_have_attribute("aria-current", "page")
