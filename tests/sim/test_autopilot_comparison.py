"""The autopilot's proof, shortened: two days, 50 homes, against manual events and no VPP."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest

from gridflock.fleet.generate import generate_fleet
from gridflock.sim.autopilot import (
    ComparisonConfig,
    SeasonalNaive,
    run_comparison,
    summary,
    write_comparison,
)


@pytest.fixture(scope="module")
def comparison():
    # 15-minute steps: the case where one peak over the whole horizon let arbitrage spend
    # the evening's energy early (per-day peaks and taking in the homes' surplus fixed it)
    spec = generate_fleet(50, 7)
    return run_comparison(spec, ComparisonConfig(dt.date(2026, 7, 15), days=2, step_s=900))


def test_invariants_hold_and_the_autopilot_beats_manual_on_peak_and_cost(comparison):
    f = {name: comparison.figures(name) for name in comparison.ways}
    for name in ("manual", "autopilot"):
        assert f[name]["comfort_violations"] == 0
        assert f[name]["ev_departures"] > 0
        assert f[name]["ev_departures_met_pct"] == 100.0
    assert f["autopilot"]["peak_import_kw"] <= f["manual"]["peak_import_kw"]
    assert f["autopilot"]["peak_import_kw"] < f["no_vpp"]["peak_import_kw"]
    assert f["autopilot"]["energy_cost_eur"] < f["manual"]["energy_cost_eur"]
    assert f["autopilot"]["energy_cost_eur"] < f["no_vpp"]["energy_cost_eur"]
    assert f["autopilot"]["energy_shifted_kwh"] > 0


def test_the_autopilot_plans_only_from_the_past(comparison):
    # every quarter had a forecast, and it is not the twin's truth (a real forecast errs)
    s = summary(comparison)
    assert 1.0 < s["forecast_mape_pct"] < 60.0
    assert s["autopilot_plans"] > 0
    assert all("reason" in d for d in s["autopilot_decisions"] if "action" in d)


def test_seasonal_naive_never_uses_the_day_it_forecasts():
    fc = SeasonalNaive(days=2)
    day = 86_400.0
    fc.observe(0.0, 10.0)
    fc.observe(day, 20.0)
    fc.observe(2 * day, 1e9)  # the quarter forecast below: must not be used
    out = fc.forecast(np.array([2 * day, 5 * day]))
    assert out[0] == pytest.approx(15.0)
    assert np.isnan(out[1])


def test_report_files(comparison, tmp_path):
    paths = write_comparison(comparison, tmp_path)
    data = json.loads(paths["summary"].read_text())
    assert set(data["ways"]) == {"no_vpp", "manual", "autopilot"}
    assert paths["plot"].stat().st_size > 10_000
    assert paths["series"].exists()
