"""Event performance figures from a sampled series."""

from __future__ import annotations

import numpy as np
import pytest

from gridflock.mv import event_performance


def test_perfect_delivery():
    ts = np.arange(0, 3600, 60.0)
    perf = event_performance(ts, np.full(len(ts), 100.0), 100.0, 0, 3600)
    assert perf.delivered_pct == pytest.approx(100)
    assert perf.tracking_rmse_pct == pytest.approx(0)
    assert perf.time_to_90pct_s == 0
    assert perf.energy_delivered_kwh == pytest.approx(100.0)


def test_ramp_rmse_and_window():
    ts = np.arange(-600, 4200, 60.0)  # samples before and after the window are ignored
    d = np.clip((ts - 0) / 600 * 100, 0, 100)
    d[ts < 0] = 500.0
    perf = event_performance(ts, d, 100.0, 0, 3600, non_responders=3)
    assert perf.samples == 60
    assert perf.time_to_90pct_s == 540
    assert 90 < perf.delivered_pct < 100
    assert perf.tracking_rmse_pct > 0
    assert perf.non_responders == 3


def test_down_event_and_nothing_delivered():
    ts = np.arange(0, 1800, 60.0)
    perf = event_performance(ts, np.full(len(ts), -50.0), -100.0, 0, 1800)
    assert perf.delivered_pct == pytest.approx(50)
    assert perf.time_to_90pct_s is None
    assert perf.energy_delivered_kwh == pytest.approx(-25.0)
    empty = event_performance(ts, np.full(len(ts), np.nan), 10.0, 0, 1800)
    assert empty.samples == 0
    assert empty.delivered_pct == 0
