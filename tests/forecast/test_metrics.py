"""Metrics and the backtest's scoring against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from gridflock.forecast import metrics as m
from gridflock.forecast._backtest import score

Y = np.array([1.0, 2.0, 4.0, np.nan, 3.0])
P = np.array([2.0, 2.0, 1.0, 9.0, 3.0])


def test_point_metrics_by_hand():
    # known points: errors 1, 0, 3, 0 -> MAE 1, squared 1, 0, 9, 0 -> RMSE sqrt(2.5)
    assert m.mae(Y, P) == pytest.approx(1.0)
    assert m.rmse(Y, P) == pytest.approx(np.sqrt(10 / 4))
    assert m.nmae(Y, P) == pytest.approx(1.0 / 2.5)
    assert m.one_minus_wape(Y, P) == pytest.approx(1 - 4 / 10)
    assert m.skill(1.0, 4.0) == pytest.approx(0.75)
    assert np.isnan(m.skill(1.0, 0.0))
    assert np.isnan(m.mae(np.array([np.nan]), np.array([1.0])))


def test_relative_mae_uses_the_p1_p99_range():
    y = np.arange(101.0)  # P1 = 1, P99 = 99
    p = y + 2.0
    assert m.relative_mae_range(y, p) == pytest.approx(2.0 / 98.0)


def test_pinball_and_crps_by_hand():
    y = np.array([10.0, 0.0])
    q = np.array([[8.0, 10.0, 12.0], [1.0, 2.0, 3.0]])
    qs = (0.1, 0.5, 0.9)
    # point 1: y-q = 2, 0, -2 -> 0.1*2, 0, 0.1*2 ; point 2: y-q = -1, -2, -3 -> 0.9, 1, 0.3
    losses = [0.2, 0.0, 0.2, 0.9, 1.0, 0.3]
    assert m.pinball(y, q, qs) == pytest.approx(np.mean(losses))
    assert m.crps_quantiles(y, q, qs) == pytest.approx(2 * np.mean(losses))
    with pytest.raises(ValueError, match="shape"):
        m.pinball(y, q[:, :2], qs)


def test_coverage_and_peak_timing_by_hand():
    y = np.array([1.0, 5.0, 3.0, np.nan])
    assert m.coverage(y, np.zeros(4), np.full(4, 4.0)) == pytest.approx(2 / 3)
    day = 96
    actual = np.zeros(2 * day)
    actual[40] = 5.0  # day 1 peak at step 40
    actual[day + 70] = 5.0
    fc = np.zeros(2 * day)
    fc[42] = 4.0  # 2 steps late -> 30 min
    fc[day + 60] = 4.0  # 10 steps early -> 150 min
    err = m.peak_timing_error_min(actual, fc, day)
    np.testing.assert_allclose(err, [30.0, 150.0])


def test_score_gathers_every_metric_with_references():
    y = np.array([[1.0, 2.0, 3.0, 4.0]])
    p = np.stack([y - 1, y + 0.5, y + 1], axis=-1)  # median off by 0.5
    naive = y + 2.0
    pers = y - 1.0
    s = score(y, p, (0.1, 0.5, 0.9), naive, pers)
    assert s["mae"] == pytest.approx(0.5)
    assert s["mae_seasonal_naive"] == pytest.approx(2.0)
    assert s["skill_seasonal_naive"] == pytest.approx(0.75)
    assert s["skill_persistence"] == pytest.approx(0.5)
    assert s["coverage"] == pytest.approx(1.0)
    assert s["n_points"] == 4


def test_group_totals_scale_up_for_missing_sites_and_skip_sparse_steps():
    from gridflock.forecast._backtest import _group_total

    block = np.ones((40, 3))
    block[0, 1] = np.nan  # 39 of 40 known (97.5 %): 39 kW scaled to 40
    block[:3, 2] = np.nan  # 37 of 40 known (92.5 %): not scored
    np.testing.assert_allclose(_group_total(block), [40.0, 40.0, np.nan])


def _day(peaks: dict[int, float], base: float) -> np.ndarray:
    """One day of 96 quarter hours at ``base`` kW with the given steps set (net: - import)."""
    d = np.full(96, base)
    for step, kw in peaks.items():
        d[step] = kw
    return d


def test_net_peak_is_the_largest_import_even_on_an_exporting_day():
    """A sunny day's net is an export on average; its peak is still the evening import.

    Day 1 imports on average, day 2 exports on average (a midday export of 900 kW). The
    forecast's median has the import peaks at the right quarter hours (19:00, 19:15) but
    the export maximum two hours late: scored as net import, both days are hits.
    """
    from gridflock.forecast._backtest import _peak_days

    y1 = _day({76: -500.0, 50: 100.0}, -200.0)  # import peak 19:00
    y2 = _day({77: -400.0, **dict.fromkeys(range(40, 56), 900.0)}, 50.0)  # export 10:00-13:45
    p1 = _day({76: -480.0, 58: 100.0}, -200.0)
    p2 = _day({77: -390.0, **dict.fromkeys(range(48, 64), 900.0)}, 50.0)  # export 2 h late
    assert y1.mean() < 0 < y2.mean()
    ys = [y[None] for y in (y1, y2)]
    ps = [np.stack([p - 10.0, p, p + 10.0], axis=-1)[None] for p in (p1, p2)]
    out = _peak_days(ys, ps, (0.1, 0.5, 0.9), [(0.0, 0.01)] * 2, "net")
    assert out["peak_days"] == 2
    assert out["peak_within_30min"] == 1.0
    assert out["peak_within_30min_p50"] == 1.0
    assert out["peak_time_error_min"] == pytest.approx(0.0)


def test_other_quantities_keep_one_direction_over_all_days():
    """PV peaks at its maximum on every day, even a dull one whose mean is tiny."""
    from gridflock.forecast._backtest import _peak_days

    y1 = _day({48: 300.0}, 10.0)
    y2 = _day({52: 2.0, 10: -3.0}, 0.0)  # mean just below zero; the maximum at 13:00
    p2 = _day({52: 1.5, 30: -3.0}, 0.0)  # forecast minimum far away from the actual's
    ys = [y[None] for y in (y1, y2)]
    ps = [np.stack([p - 0.1, p, p + 0.1], axis=-1)[None] for p in (y1, p2)]
    out = _peak_days(ys, ps, (0.1, 0.5, 0.9), [(0.0, 0.01)] * 2, "pv")
    assert out["peak_within_30min_p50"] == 1.0
