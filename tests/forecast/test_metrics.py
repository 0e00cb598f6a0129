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
