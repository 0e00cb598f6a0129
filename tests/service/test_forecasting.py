"""The forecast service over a real store: telemetry in, a real (tiny) LightGBM model trained,
forecasts issued per site and per group, support windows, restart, failures kept visible.

The store is seeded once with 15 days of twin history for 6 homes (written as 15-minute
readings per device) and one tiny model (net only, 5 rounds) trained on it
(``_forecast_data``); each test works on its own copy.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from gridflock.domain import TelemetryBatch
from gridflock.service.forecast_schedule import Due
from gridflock.service.forecasting import ForecastService, read_site_history
from gridflock.sim.history import site_attributes
from gridflock.store import Store
from gridflock.store.records import IssuedForecast

from ._forecast_data import DAYS, NOW, Seeded, forecast_settings
from ._forecast_data import seeded as seeded_data

# pandas deprecations raised inside the forecasting core (its pvlib and calendar calls)
pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")


@pytest.fixture(scope="module")
def seeded() -> Seeded:
    return seeded_data()


@pytest.fixture
def store(seeded: Seeded, tmp_path: Path) -> Iterator[Store]:
    path = tmp_path / "gf.db"
    shutil.copy(seeded.trained, path)
    with Store(f"sqlite:///{path}") as s:
        yield s


def _service(store: Store, seeded: Seeded, **extra: Any) -> ForecastService:
    return ForecastService(
        forecast_settings(store.url, **extra),
        store,
        lambda: seeded.spec,
        lambda: NOW,
        seeded.weather,
    )


def test_the_reader_gives_back_the_twin_history_per_site_and_quantity(seeded: Seeded) -> None:
    from gridflock.sim.history import twin_history

    expected, _ = twin_history(
        seeded.spec,
        pd.Timestamp(NOW - DAYS * 86_400 - (NOW % 900), unit="s", tz="UTC"),
        DAYS,
        3,
        weather=seeded.weather.weather,
    )
    with Store(f"sqlite:///{seeded.db}") as store:
        sites = site_attributes(seeded.spec)
        got = read_site_history(store, seeded.spec, sites, NOW - 2 * 86_400, NOW)
    assert len(got.times) == 2 * 96
    assert got.times[-1] == pd.Timestamp(NOW - NOW % 900 - 900, unit="s", tz="UTC")
    rows = pd.Index(expected.sites.ids).get_indexer(pd.Index(sites.ids))
    cols = expected.times.get_indexer(got.times)
    for q in ("net", "pv", "load", "battery"):
        np.testing.assert_allclose(got.series[q], expected.series[q][rows][:, cols], atol=1e-9)


def _backend_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Store:
    if backend == "sqlite":
        return Store(f"sqlite:///{tmp_path / 'gap.db'}")
    schema = request.getfixturevalue("fresh_schema")("gf_fc")
    return Store(request.getfixturevalue("postgres_url"), schema=schema)


def test_a_missing_reading_makes_its_site_unknown_not_zero(
    seeded: Seeded, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    with _backend_store(backend, tmp_path, request) as store:
        store.upgrade()
        store.save_fleet(seeded.spec)
        devices = seeded.spec.all_devices()
        ids = devices["id"].astype(str).to_numpy(object)
        t0 = NOW - NOW % 900 - 3600
        # every device reports twice in the first step (1 kW at its start, 3 kW just before
        # its end: a mean of 2 kW), all but the first device in the second step
        n = len(ids)
        store.write_telemetry(
            TelemetryBatch(
                device_ids=np.concatenate([ids, ids, ids[1:]]),
                ts=np.concatenate(
                    [np.full(n, t0), np.full(n, t0 + 899.5), np.full(n - 1, t0 + 900)]
                ),
                p_kw=np.concatenate([np.ones(n), np.full(n, 3.0), np.ones(n - 1)]),
                soc=np.full(3 * n - 1, np.nan),
                p_baseline_kw=np.full(3 * n - 1, np.nan),
            )
        )
        sites = site_attributes(seeded.spec)
        got = read_site_history(store, seeded.spec, sites, t0, t0 + 1800)
    first_site = list(sites.ids).index(str(devices["site_id"].iloc[0]))
    net = got.series["net"]
    counts = devices["site_id"].astype(str).value_counts()
    np.testing.assert_allclose(net[:, 0], 2 * counts.reindex(sites.ids).to_numpy(float))
    assert np.isnan(net[first_site, 1])
    assert np.isfinite(np.delete(net[:, 1], first_site)).all()


def test_training_stores_a_version_and_issues_every_group(store: Store, seeded: Seeded) -> None:
    [model] = store.forecast_models()
    assert model.params["quantities"] == ["net"]
    assert model.params["sites"] == 6
    assert model.data_end <= datetime.fromtimestamp(NOW, UTC)
    assert (model.data_end - model.data_start).days >= 14
    # out-of-sample figures: a rolling-origin backtest of the fleet's net on 2 held-out days
    scores = model.backtest["backtest"]
    assert scores["test_days"] == 2
    for horizon in ("day_ahead", "intraday"):
        fleet = scores[horizon]["net@fleet"]
        assert fleet["n_points"] > 0
        assert fleet["mae"] > 0
        assert 0 <= fleet["coverage"] <= 1
        assert "skill_seasonal_naive" in fleet
    assert model.backtest["calibration"]["net"]
    assert store.forecast_model_bundle(model.id)
    issued = store.latest_forecasts()
    groups = {(f.horizon, f.group_by, f.group) for f in issued}
    sites = site_attributes(seeded.spec)
    for horizon in ("intraday", "day_ahead"):
        assert (horizon, "fleet", "fleet") in groups
        for by in ("program", "region"):
            for g in set(sites.groups(by)):
                assert (horizon, by, str(g)) in groups
        for node in seeded.spec.grid_nodes["id"]:  # feeders and the transformer above them
            assert (horizon, "grid_node", str(node)) in groups
    day_ahead = next(f for f in issued if f.horizon == "day_ahead" and f.group_by == "fleet")
    # issued at 09:05 Berlin on 1 June for 2 June local: 96 steps from 22:00 UTC
    assert day_ahead.start == datetime(2026, 6, 1, 22, tzinfo=UTC)
    assert day_ahead.values_kw.shape == (96, 3)
    assert np.all(np.diff(day_ahead.values_kw, axis=1) >= -1e-9)  # P10 <= P50 <= P90
    intraday = next(f for f in issued if f.horizon == "intraday" and f.group_by == "fleet")
    assert intraday.start == datetime(2026, 6, 1, 7, 15, tzinfo=UTC)
    assert intraday.values_kw.shape == (32, 3)  # 8 h


def test_group_medians_add_up_to_the_fleet(store: Store, seeded: Seeded) -> None:
    svc = _service(store, seeded)
    assert svc.load_stored_model()
    svc.issue("day_ahead", NOW)
    per_site = svc.site_forecasts["day_ahead"]["net"]
    fleet = svc.latest("day_ahead", "net", "fleet", "fleet")[0]
    # the fleet centres on the sum of the site means (aggregate's rule: quantiles do not add)
    np.testing.assert_allclose(fleet.values_kw[:, 1], per_site.expected.sum(axis=0), rtol=1e-9)
    programs = svc.latest("day_ahead", "net", "program")
    np.testing.assert_allclose(
        sum(f.values_kw[:, 1] for f in programs), fleet.values_kw[:, 1], rtol=1e-9, atol=1e-9
    )


def test_actuals_are_the_measured_group_totals(store: Store, seeded: Seeded) -> None:
    svc = _service(store, seeded)
    svc.load_stored_model()
    svc.issue("intraday", NOW)
    start = datetime.fromtimestamp(NOW - NOW % 900 - 4 * 3600, UTC)
    past = IssuedForecast(
        issued_at=start,
        horizon="intraday",
        quantity="net",
        group_by="fleet",
        group="fleet",
        model_id=None,
        start=start,
        step_s=900,
        quantiles=(0.1, 0.5, 0.9),
        values_kw=np.zeros((24, 3)),
    )
    actual = svc.actuals(past)
    sites = site_attributes(seeded.spec)
    history = read_site_history(store, seeded.spec, sites, start.timestamp(), NOW)
    expected = history.series["net"].sum(axis=0)
    np.testing.assert_allclose(actual[:16], expected, rtol=1e-9)
    assert np.isnan(actual[16:]).all()  # not yet happened
    node = seeded.spec.grid_nodes["id"].iloc[-1]
    one = svc.actuals(replace(past, group_by="grid_node", group=str(node)))
    assert np.isfinite(one[:16]).all()


def test_support_windows_over_a_low_fleet_threshold(store: Store, seeded: Seeded) -> None:
    # a threshold far below the fleet's import: the whole day needs support
    svc = _service(store, seeded, forecast_support_fleet_kw=0.001)
    svc.load_stored_model()
    svc.issue("day_ahead", NOW)
    windows = [w for w in svc.support("day_ahead") if w.scope == "fleet"]
    assert windows
    assert all(0 <= w.probability <= 1 for w in windows)
    assert all(0 <= w.kw_needed <= w.kw_needed_p90 for w in windows)
    assert all(w.start < w.end for w in windows)
    stored = store.latest_support_windows("day_ahead")
    assert {(w.scope, w.start) for w in stored} >= {(w.scope, w.start) for w in windows}


def test_a_restart_takes_up_the_stored_model_without_retraining(
    store: Store, seeded: Seeded
) -> None:
    svc = _service(store, seeded)
    assert svc.load_stored_model()
    due = svc.schedule.due(NOW + 60)
    assert not due.retrain  # trained at NOW, retraining every 24 h
    assert due.intraday
    assert due.day_ahead


def test_no_history_is_shown_and_retried_later_never_raised(tmp_path: Path, seeded: Seeded) -> None:
    with Store(f"sqlite:///{tmp_path / 'empty.db'}") as store:
        store.upgrade()
        store.save_fleet(seeded.spec)
        svc = _service(store, seeded)
        svc.step(NOW, Due(True, True, True))
        status = svc.status()
        assert status["state"] == "waiting for history"
        assert "0.0 days of telemetry" in status["last_error"]
        assert "at least 14" in status["last_error"]
        assert not svc.schedule.due(NOW + 60).retrain  # not at every wake-up
        assert svc.schedule.due(NOW + 601).retrain
        assert store.latest_forecasts() == []


class BrokenWeather:
    """A weather source whose forecasts fail (a corrupt file, say)."""

    names = ("ghi",)

    def forecast(self, issued_at: Any, valid_at: Any) -> dict[str, Any]:
        raise OSError("weather file unreadable")


def test_a_failing_issue_is_visible_and_the_next_one_runs(store: Store, seeded: Seeded) -> None:
    svc = _service(store, seeded)
    svc.load_stored_model()
    good = svc.weather
    svc.weather = BrokenWeather()
    svc.step(NOW, Due(False, True, False))
    status = svc.status()
    assert status["state"] == "failing"
    assert "weather file unreadable" in status["last_error"]
    svc.weather = good
    later = NOW + 900
    svc.step(later, svc.schedule.due(later))
    assert svc.status()["state"] == "ready"
    assert svc.latest("intraday", "net", "fleet")[0].issued_at.timestamp() == later


def test_the_loop_serves_a_retrain_request_without_blocking_the_event_loop(
    store: Store, seeded: Seeded
) -> None:
    svc = _service(store, seeded)

    async def scenario() -> tuple[int, str]:
        task = asyncio.create_task(svc.run())
        ticks = 0
        for _ in range(600):  # the event loop keeps turning while the worker thread trains
            await asyncio.sleep(0.05)
            ticks += 1
            if svc.status()["last_intraday"] is not None and not svc.status()["busy"]:
                break
        assert svc.request_retrain()
        assert not svc.request_retrain()  # already asked
        for _ in range(600):
            await asyncio.sleep(0.05)
            if not svc.schedule.retrain_requested and not svc.status()["busy"]:
                break
        svc.stop()
        await asyncio.wait_for(task, 60)
        return ticks, svc.status()["state"]

    ticks, state = asyncio.run(scenario())
    assert ticks > 1
    assert state == "ready"
    # the stored model was taken up at start, the request trained one more
    assert len(store.forecast_models()) == 2
