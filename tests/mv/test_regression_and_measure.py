"""The eemeter regression against a known model, and an event measured by every method."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridflock.mv import (
    Calendar,
    EventWindow,
    FleetMix,
    MeterData,
    Method,
    SiteInfo,
    compute_baseline,
    measure_event,
    placebo_errors,
    recommend_method,
)
from gridflock.mv.recommend import MGO_PLACEBO

TZ = "Europe/Berlin"


def synthetic(days: int = 35, seed: int = 0, per_k: float = 0.08, homes: int = 2) -> MeterData:
    """Homes whose import is 0.6 kW + ``per_k`` kW/K above 22 °C + an evening bump."""
    times = pd.date_range("2026-06-01", periods=days * 96, freq="15min", tz=TZ).tz_convert("UTC")
    rng = np.random.default_rng(seed)
    loc = times.tz_convert(TZ)
    hour = loc.hour.to_numpy() + loc.minute.to_numpy() / 60
    day = np.arange(len(times)) // 96
    t_max = 24 + 6 * np.sin(day / 5.0)
    temp = t_max - 7 + 7 * np.sin((hour - 9) / 24 * 2 * np.pi)
    evening = np.where((hour >= 18) & (hour < 22), 0.8, 0.0)
    imp = 0.6 + per_k * np.maximum(temp - 22, 0) + evening
    scale = 1.0 + 0.5 * np.arange(homes)
    net = -scale[:, None] * imp[None, :] + rng.normal(0, 0.03, (homes, len(times)))
    return MeterData(np.array(["a", "b", "c"][:homes], object), times, net, TZ, temp_c=temp)


def test_regression_baseline_tracks_temperature_and_time_of_week() -> None:
    m = synthetic(days=30, homes=1)
    ev = EventWindow(
        pd.Timestamp("2026-06-29 18:00", tz=TZ), pd.Timestamp("2026-06-29 20:00", tz=TZ), "e"
    )
    b = compute_baseline(Method.REGRESSION, m, ev, Calendar())
    assert b.valid.all()
    # no event happened: the baseline must match the meter within 5 %
    err = np.abs(b.kw.mean(axis=1) - b.actual_kw.mean(axis=1)) / np.abs(b.actual_kw.mean(axis=1))
    assert (err < 0.05).all(), err
    with pytest.raises(ValueError, match="temperature"):
        compute_baseline(
            Method.REGRESSION, MeterData(m.site_ids, m.times, m.net_kw, TZ), ev, Calendar()
        )


def test_measure_event_reports_every_method_with_its_placebo_uncertainty() -> None:
    m = synthetic(per_k=0.0)  # no weather effect: day matching is unbiased here
    times = m.times.tz_convert(TZ)
    on = (times.date == pd.Timestamp("2026-07-03").date()) & (times.hour >= 18) & (times.hour < 20)
    net = m.net_kw.copy()
    net[:, on] += 0.5  # each home sheds 0.5 kW
    m = MeterData(m.site_ids, m.times, net, TZ, temp_c=m.temp_c)
    ev = EventWindow(
        pd.Timestamp("2026-07-03 18:00", tz=TZ), pd.Timestamp("2026-07-03 20:00", tz=TZ), "e"
    )
    info = SiteInfo(np.array(["load", "load"], object), np.ones(2), np.array(["f1", "f1"], object))
    mv = measure_event(
        m,
        ev,
        [Method.CAISO_10IN10, Method.UK_DFS, Method.CAISO_10IN10_UNADJUSTED],
        Calendar.of(),
        info,
        placebo_days=6,
    )
    for d in mv.deliveries.values():
        assert d.placebo_days == 6
        assert d.delivered_kw == pytest.approx(1.0, abs=0.25)  # two homes x 0.5 kW
        assert d.delivered_kwh == pytest.approx(d.delivered_kw * 2.0)
        lo, hi = d.interval_90_kw
        assert lo <= d.delivered_kw <= hi
        assert d.node_ids.tolist() == ["f1"]
        assert d.per_node_kw[0] == pytest.approx(d.delivered_kw)
        np.testing.assert_allclose(d.per_site_kw.sum(), d.delivered_kw)
        row = d.as_dict()
        assert row["method"] == d.method
        assert row["sites"] == 2
    errors = placebo_errors(m, ev, Method.CAISO_10IN10_UNADJUSTED, Calendar(), info, days=6)
    assert len(errors) == 6
    assert np.abs(errors).max() < 0.3
    assert mv.recommended
    assert mv.reason
    # a method whose inputs are missing is reported, and does not stop the others
    both = measure_event(
        m, ev, [Method.CONTROL_GROUP, Method.UK_DFS], Calendar(), info, placebo_days=2
    )
    assert list(both.deliveries) == ["uk_dfs"]
    assert "control mask" in both.errors["control_group"]


def test_recommend_method_says_why() -> None:
    rec = recommend_method(FleetMix(n_sites=1000, pv=0.8, battery=0.6, control_sites=100))
    method, reason = rec
    assert method == rec.method == "control_group"
    assert "100 randomised control sites" in reason
    bat = FleetMix(n_sites=500, battery=0.7, control_sites=20, battery_telemetry=True)
    assert recommend_method(bat).method == "battery_device_trend"
    assert "only 20 control sites" in recommend_method(bat).reason
    mgo = FleetMix(
        n_sites=500, pv=0.8, battery=0.7, battery_telemetry=True, generation_telemetry=True
    )
    assert recommend_method(mgo).method == "uk_dfs_mgo"
    assert f"placebo bias {MGO_PLACEBO}" in recommend_method(mgo).reason
    assert "shown on every mix and both start dates measured" in recommend_method(mgo).reason
    assert "-1.5 to -0.7 % from August" in recommend_method(mgo).reason
    assert "season's curved trend" in recommend_method(mgo).reason
    wx = FleetMix(n_sites=500, pv=0.9, weather=True, irradiance=True)
    assert recommend_method(wx).method == "weather_matched"
    assert recommend_method(FleetMix(n_sites=5)).method == "caiso_10in10_unadjusted"
    with pytest.raises(ValueError, match="no participating sites"):
        recommend_method(FleetMix(n_sites=0))


def test_regression_over_many_sites_is_fitted_per_grid_node() -> None:
    one = synthetic(days=30, homes=1)
    n = 201
    net = np.repeat(one.net_kw, n, axis=0)
    m = MeterData(
        np.array([f"s{i}" for i in range(n)], object), one.times, net, TZ, temp_c=one.temp_c
    )
    nodes = np.array(["f1"] * 100 + ["f2"] * 101, object)
    info = SiteInfo(np.full(n, "load", object), np.ones(n), nodes)
    ev = EventWindow(
        pd.Timestamp("2026-06-29 18:00", tz=TZ), pd.Timestamp("2026-06-29 20:00", tz=TZ), "e"
    )
    mv = measure_event(m, ev, [Method.REGRESSION], Calendar(), info, placebo_days=1)
    d = mv.deliveries["regression"]
    assert d.node_ids.tolist() == ["f1", "f2"]
    assert d.placebo_days == 1
    assert np.isnan(d.per_site_kw).all()  # per node only
    # no event: what it finds is its error, small against the 201 homes' ~400 kW import
    assert abs(d.delivered_kw) < 0.05 * abs(d.baseline_kw)
