"""The Forecast page in a real browser, against `gridflock serve` issuing real forecasts.

The database is prepared here: a 6-home fleet, 15 days of its twin history up to now and a
tiny model trained on it (net only, no weather). The service takes the model up at start
and issues both horizons at once; the browser then shows the bands, the support windows
(the fleet threshold is set tiny, so support is needed all day) and the model.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from gridflock.config import Settings
from gridflock.domain.auth import Role
from gridflock.fleet.generate import generate_fleet
from gridflock.service.forecast_schedule import Due
from gridflock.service.forecast_seed import seed_twin_history
from gridflock.service.forecasting import ForecastService
from gridflock.store import Store

from .conftest import Service, _free_port, sign_in

# pandas deprecations raised inside the forecasting core (its pvlib and calendar calls)
pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")

FORECAST_ENV = {
    "GRIDFLOCK_FORECAST_QUANTITIES": '["net"]',
    "GRIDFLOCK_FORECAST_WEATHER": "none",
    "GRIDFLOCK_FORECAST_BOOST_ROUNDS": "5",
    "GRIDFLOCK_FORECAST_MAX_ROWS": "3000",
    "GRIDFLOCK_FORECAST_SUPPORT_FLEET_KW": "0.001",
}


@pytest.fixture(scope="module")
def forecasting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("forecast")
    url = f"sqlite:///{tmp / 'gf.db'}"
    spec = generate_fleet(6, 3)
    now = time.time()
    with Store(url) as store:
        store.upgrade()
        store.save_fleet(spec)
        seed_twin_history(store, spec, now, 15, seed=3)
        settings = Settings(
            database_url=url,
            forecast_quantities=["net"],
            forecast_weather="none",
            forecast_boost_rounds=5,
            forecast_max_rows=3000,
        )
        trainer = ForecastService(settings, store, lambda: spec, lambda: now, None)
        trainer.step(now, Due(True, False, False))
        assert trainer.model is not None, trainer.status()["last_error"]
        operator = store.create_api_key(Role.OPERATOR, "ops")[0]
        viewer = store.create_api_key(Role.VIEWER, "view")[0]
    port = _free_port()
    log = tmp / "serve.log"
    env = {
        **os.environ,
        **FORECAST_ENV,
        "GRIDFLOCK_CONFIG": str(tmp / "none.toml"),
        "GRIDFLOCK_DATABASE_URL": url,
        "GRIDFLOCK_PORT": str(port),
    }
    gridflock = Path(sys.executable).with_name("gridflock")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(gridflock), "serve"], cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    service = Service(f"http://127.0.0.1:{port}", operator, viewer, log)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"gridflock serve exited with {proc.returncode}:\n{log.read_text()}")
            try:
                r = httpx.get(
                    f"{service.url}/api/v1/forecasts/day_ahead/net",
                    headers={"Authorization": f"Bearer {viewer}"},
                    timeout=2,
                )
                if r.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        else:
            pytest.fail(f"no day-ahead forecast issued within 60 s:\n{log.read_text()}")
        yield service
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_bands_windows_and_models_on_the_forecast_page(page: Page, forecasting: Service) -> None:
    sign_in(page, forecasting, forecasting.operator_key)
    page.get_by_role("link", name="Forecast", exact=True).click()
    chart = page.locator("#chart-forecast")
    expect(chart).to_have_attribute("data-state", "drawn")
    # band (P10 and P90 filled between), P50 line, measured dots; 96 day-ahead steps
    page.wait_for_function(
        "() => { const d = document.getElementById('chart-forecast').data;"
        " return d && d.length >= 4 && d[2].y.length >= 92 && d[1].fill === 'tonexty'; }"
    )
    assert int(chart.get_attribute("data-windows") or "0") > 0  # shaded support windows
    expect(page.locator("#fc-title")).to_contain_text("net")
    expect(page.locator("#fc-state")).to_contain_text("ready")
    rows = page.locator("#win-table tbody tr")
    expect(rows.first).to_contain_text("fleet")
    expect(rows.first).to_contain_text("kW")
    expect(page.locator("#model-table tbody tr").first).to_contain_text("in use")
    # intraday: 8 hours ahead, with what was measured so far as dots once it happens
    page.select_option("#fc-horizon", "intraday")
    page.wait_for_function(
        "() => document.getElementById('chart-forecast').data?.[2]?.y?.length === 32"
    )
    # a grid node's forecast
    node = page.locator("#fc-group option", has_text="grid node").first
    page.select_option("#fc-group", node.get_attribute("value") or "")
    expect(page.locator("#fc-title")).to_contain_text("grid node")
    # operators may retrain
    page.get_by_role("button", name="Retrain now").click()
    expect(page.locator("#fc-state")).to_contain_text("retraining asked")


def test_a_viewer_gets_no_retrain_button(page: Page, forecasting: Service) -> None:
    sign_in(page, forecasting, forecasting.viewer_key)
    page.goto(forecasting.url + "/forecast")
    expect(page.locator("#chart-forecast")).to_have_attribute("data-state", "drawn")
    expect(page.get_by_role("button", name="Retrain now")).to_have_count(0)
