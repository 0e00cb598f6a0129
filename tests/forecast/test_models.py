"""The trained models on the twin: PV physics vs learned correction, coverage, the bundle."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridflock.forecast import ModelBundle, aggregate, metrics, predict
from gridflock.forecast._features import FEATURES, Rows, build_features

from .conftest import DAYS, START


def day_ahead(history, source, bundle, day):
    """Day-ahead forecasts issued 10:00 Berlin the day before ``day`` days after START."""
    local = (START + pd.Timedelta(days=day)).tz_convert("Europe/Berlin").normalize()
    issued = (local - pd.Timedelta(days=1) + pd.Timedelta(hours=10)).tz_convert("UTC")
    return predict(bundle, history, source, issued, "day_ahead")


def test_pv_physics_is_right_in_shape_and_the_learned_correction_beats_it(twin, bundle):
    history, _, source = twin
    y = history.series["pv"]
    learned, physics, actual = [], [], []
    for day in (DAYS - 2, DAYS - 1):
        fc = day_ahead(history, source, bundle, day)["pv"]
        idx = history.times.get_indexer(fc.times)
        idx = idx[idx >= 0]
        n = history.n_sites
        issue = int((fc.issued_at - START) / pd.Timedelta("15min"))
        rows = Rows(
            np.repeat(np.arange(n), len(idx)), np.tile(idx, n), np.full(n * len(idx), issue)
        )
        x, scale = build_features(y, START.timestamp(), history.sites, rows, source, 1.0)
        phys = (x[:, FEATURES.index("pv_site")] * scale).reshape(n, len(idx))
        learned.append(fc.quantile(0.5)[:, : len(idx)])
        physics.append(phys)
        actual.append(y[:, idx])
    learned, physics, actual = (np.concatenate(a, axis=1) for a in (learned, physics, actual))
    has_pv = history.sites.kwp > 0
    a, p = actual[has_pv], physics[has_pv]
    assert np.corrcoef(a.ravel(), p.ravel())[0, 1] > 0.8  # pvlib gets the shape right
    per_kwp = p.max(axis=1) / history.sites.kwp[has_pv]
    assert np.all((per_kwp > 0.3) & (per_kwp < 1.1))  # May noon: a fraction of kWp
    assert np.all(physics[~has_pv] == 0)
    mae_phys = metrics.mae(a, p)
    mae_learned = metrics.mae(a, learned[has_pv])
    # physics alone misses each roof's orientation, losses and the forecast's cloud errors
    assert mae_learned < 0.95 * mae_phys, (mae_learned, mae_phys)


def test_quantiles_cover_on_held_out_twin_days(twin, bundle):
    history, _, source = twin
    y = history.series["net"]
    inside_site, inside_fleet, n_fleet = [], 0, 0
    for day in (DAYS - 3, DAYS - 2, DAYS - 1):
        fc = day_ahead(history, source, bundle, day)["net"]
        idx = history.times.get_indexer(fc.times)
        ok = idx >= 0
        act = y[:, idx[ok]]
        v = fc.values[:, ok]
        inside_site.append((act >= v[..., 0]) & (act <= v[..., -1]))
        g = aggregate(fc, history.sites.groups("fleet")).values[0, ok]
        tot = act.sum(axis=0)
        inside_fleet += int(np.sum((tot >= g[:, 0]) & (tot <= g[:, -1])))
        n_fleet += len(tot)
        assert np.all(np.diff(fc.values, axis=-1) >= 0)
    site_cov = float(np.mean(np.concatenate(inside_site, axis=1)))
    assert 0.65 <= site_cov <= 0.95, site_cov
    fleet_cov = inside_fleet / n_fleet
    assert 0.5 <= fleet_cov <= 1.0, fleet_cov
    cal = bundle.meta["calibration"]["net"]["day_ahead"]
    assert 0.0 <= cal["corr"] <= 1.0
    assert len(cal["stretch"]) == 3


def test_bundle_round_trips_through_bytes(twin, bundle):
    history, _, source = twin
    data = bundle.to_bytes()
    again = ModelBundle.from_bytes(data)
    assert again.version == bundle.version
    assert again.quantities == bundle.quantities
    assert again.meta["trained_from"] == START.isoformat()
    issued = START + pd.Timedelta(days=DAYS - 1, hours=6)
    a = predict(bundle, history, source, issued, "intraday")
    b = predict(again, history, source, issued, "intraday")
    for q in a:
        np.testing.assert_array_equal(a[q].values, b[q].values)
        assert a[q].values.shape == (history.n_sites, 32, 3)
    with pytest.raises(ValueError, match="not a forecast model bundle"):
        ModelBundle.from_bytes(b"not a bundle")


def test_horizons_and_refusals(twin, bundle):
    history, _, source = twin
    issued = pd.Timestamp("2026-05-20 09:07", tz="Europe/Berlin")
    da = predict(bundle, history, source, issued, "day_ahead", quantities=("net",))["net"]
    assert da.times[0] == pd.Timestamp("2026-05-21", tz="Europe/Berlin")
    assert len(da.times) == 96
    assert da.horizon == "day_ahead"
    custom = predict(bundle, history, source, issued, pd.Timedelta(hours=36))["pv"]
    assert custom.times[0] == pd.Timestamp("2026-05-20 09:15", tz="Europe/Berlin")
    assert len(custom.times) == 144
    with pytest.raises(ValueError, match="48 h"):
        predict(bundle, history, source, issued, pd.Timedelta(hours=60))
    with pytest.raises(ValueError, match="no model of 'ev'"):
        predict(bundle, history, source, issued, "intraday", quantities=("ev",))
    with pytest.raises(ValueError, match="timezone-aware"):
        predict(bundle, history, source, pd.Timestamp("2026-05-20 09:00"), "intraday")


@pytest.mark.parametrize(
    ("issued", "steps"),
    [("2026-03-28 09:00", 92), ("2026-10-24 09:00", 100), ("2026-06-01 09:00", 96)],
)
def test_day_ahead_covers_the_local_day_on_dst_days(issued, steps):
    from gridflock.forecast._model import horizon_window

    at = pd.Timestamp(issued, tz="Europe/Berlin")
    times, name = horizon_window(at, "day_ahead", "Europe/Berlin", 8.0)
    assert name == "day_ahead"
    assert len(times) == steps
    assert times[0].tz_convert("Europe/Berlin").hour == 0
    assert (times[-1] + pd.Timedelta("15min")).tz_convert("Europe/Berlin").hour == 0


def test_a_site_without_history_and_gaps_still_gets_finite_forecasts(twin, bundle):
    from gridflock.forecast import History

    history, _, source = twin
    series = {q: v.copy() for q, v in history.series.items()}
    series["net"][0] = np.nan  # a new site: nothing measured yet
    series["net"][1, ::3] = np.nan  # a site with gaps
    gappy = History(history.times, series, history.sites)
    issued = START + pd.Timedelta(days=DAYS - 2, hours=8)
    fc = predict(bundle, gappy, source, issued, "intraday", quantities=("net",))["net"]
    assert np.isfinite(fc.values).all()
    assert np.isfinite(fc.mean).all()


def test_a_quantity_learned_relative_to_its_last_week(twin):
    """``level_quantities``: trained on deviations from the last 7 days' mean, added back."""
    from dataclasses import replace

    from gridflock.forecast import train

    from .conftest import QUICK

    history, _, source = twin
    cut = START + pd.Timedelta(days=DAYS - 3)
    cfg = replace(QUICK, quantities=("net",), level_quantities=("net",), calibration_days=0)
    bundle = train(history.before(cut), source, cfg)
    assert bundle.meta["level"] == {"net": True}
    again = ModelBundle.from_bytes(bundle.to_bytes())
    fc = day_ahead(history, source, bundle, DAYS - 2)["net"]
    fc2 = day_ahead(history, source, again, DAYS - 2)["net"]
    np.testing.assert_array_equal(fc.values, fc2.values)
    assert np.isfinite(fc.values).all()
    assert np.all(np.diff(fc.values, axis=-1) >= 0)
    # the level carries the forecast: the fleet's median is near what happened
    actual = history.series["net"][:, np.searchsorted(history.times, fc.times)]
    assert abs(np.nansum(actual) - fc.quantile(0.5).sum()) < 0.5 * np.nansum(np.abs(actual))


def test_quantities_trained_side_by_side_give_the_same_models(twin, bundle):
    """``workers=2`` trains the quantities in threads; each has its own seed, so the models,
    the calibration and the forecasts are those of the one-thread training, byte for byte."""
    from dataclasses import replace

    from gridflock.forecast import train

    from .conftest import QUICK

    history, _, source = twin
    cut = START + pd.Timedelta(days=DAYS - 3)
    side = train(history.before(cut), source, replace(QUICK, workers=2))
    assert side.models == bundle.models
    for key in ("rows", "scale", "stretch", "corr", "error_ar"):
        assert side.meta[key] == bundle.meta[key], key
    fc = day_ahead(history, source, side, DAYS - 2)
    ref = day_ahead(history, source, bundle, DAYS - 2)
    for q in ("net", "pv"):
        np.testing.assert_array_equal(fc[q].values, ref[q].values)


def test_workers_must_be_positive():
    from gridflock.forecast import TrainConfig

    with pytest.raises(ValueError, match="workers"):
        TrainConfig(workers=0)


def test_a_long_history_keeps_the_calibration_fit(twin, bundle):
    """Beyond ``refit_max_days`` the models calibrated on the held-out days are the ones
    kept: the same calibration as with a refit, other models, and sound forecasts."""
    from dataclasses import replace

    from gridflock.forecast import train

    from .conftest import QUICK

    history, _, source = twin
    cut = START + pd.Timedelta(days=DAYS - 3)
    kept = train(history.before(cut), source, replace(QUICK, refit_max_days=10))
    assert bundle.meta["refit"] == {"net": True, "pv": True}
    assert kept.meta["refit"] == {"net": False, "pv": False}
    assert kept.meta["stretch"] == bundle.meta["stretch"]
    assert kept.meta["corr"] == bundle.meta["corr"]
    assert kept.models["net"] != bundle.models["net"]
    fc = day_ahead(history, source, kept, DAYS - 2)["net"]
    assert np.isfinite(fc.values).all()
    assert np.all(np.diff(fc.values, axis=-1) >= 0)


def test_chunks_forecast_side_by_side_give_the_same_forecast(twin, bundle, monkeypatch):
    """``num_threads=2`` forecasts the site chunks in two threads (each with its own
    Booster objects): the same quantiles and means as one thread, chunk for chunk."""
    import gridflock.forecast._model as model

    history, _, source = twin
    monkeypatch.setattr(model, "_MAX_ROWS_PER_CHUNK", 96 * 3)  # 3 sites a chunk: 14 chunks
    issued = START + pd.Timedelta(days=DAYS - 2, hours=8)
    one = predict(bundle, history.before(issued), source, issued, "day_ahead", num_threads=1)
    two = predict(bundle, history.before(issued), source, issued, "day_ahead", num_threads=2)
    for q in ("net", "pv"):
        np.testing.assert_array_equal(one[q].values, two[q].values)
        np.testing.assert_array_equal(one[q].mean, two[q].mean)


def test_group_correlation_is_learned_per_block_of_the_local_day_and_used(twin, bundle):
    """Training stores a correlation per three-hour block of the local day; a forecast's
    ``corr`` follows the block of each step (Berlin time), so its groups use it."""
    from gridflock.forecast._model import HOUR_BLOCKS, hour_blocks

    history, _, source = twin
    table = bundle.meta["calibration"]["net"]["day_ahead"]["corr_by_block"]
    assert len(table) == HOUR_BLOCKS
    assert all(0.0 <= r <= 1.0 for r in table)
    fc = day_ahead(history, source, bundle, DAYS - 1)["net"]
    want = np.asarray(table)[hour_blocks(fc.times, "Europe/Berlin")]
    np.testing.assert_allclose(fc.corr, want)
    g = aggregate(fc, np.full(len(fc.keys), "fleet", dtype=object))
    np.testing.assert_allclose(g.corr, want)
