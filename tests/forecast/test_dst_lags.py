"""Lags and references read the same local wall-clock time across daylight-saving changes.

The evening peak follows the clock: a week after the spring change, "the same time last week"
is 92 steps per day back in UTC for that day, not 96. The oracle is pandas' own local time:
the history holds each step's local quarter hour of the day, so a correct lag returns the
target's local quarter hour.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridflock.forecast import SiteAttributes, WeatherSeries
from gridflock.forecast._backtest import _references
from gridflock.forecast._features import FEATURES, Rows, build_features

TZ = "Europe/Berlin"


def local_tod(times: pd.DatetimeIndex) -> np.ndarray:
    local = times.tz_convert(TZ)
    return (local.hour * 4 + local.minute // 15).to_numpy(np.float64)


@pytest.mark.parametrize("start", ["2026-03-30 10:00", "2026-10-26 10:00"])
def test_lags_read_the_same_local_time_across_a_dst_change(start):
    t0 = pd.Timestamp(start, tz=TZ).tz_convert("UTC") - pd.Timedelta(days=21)
    times = pd.date_range(t0, periods=24 * 96, freq="15min")
    y = (local_tod(times) + 1.0)[None, :]  # 1..96: the local quarter hour, never 0
    sites = SiteAttributes.unknown(["a"], tz=TZ)
    issue = int((pd.Timestamp(start, tz=TZ).tz_convert("UTC") - t0) / pd.Timedelta("15min"))
    target = np.arange(issue + 14 * 4, issue + 38 * 4)  # the next local day's hours
    rows = Rows(np.zeros(len(target), np.int64), target, np.full(len(target), issue))
    no_weather = WeatherSeries(times, {})
    x, scale = build_features(y, t0.timestamp(), sites, rows, no_weather, 1.0)
    want = local_tod(times[target]) + 1.0
    # 02:00-02:45 does not exist on 29 March: a lag there reads the next hour; skip it
    exists = times[target].tz_convert(TZ).hour != 2
    assert exists.sum() >= 92
    for name in ("lag_day", "lag_1w", "lag_2w", "prof_7d"):
        got = x[:, FEATURES.index(name)] * scale
        np.testing.assert_allclose(got[exists], want[exists], err_msg=name)


def test_seasonal_naive_and_persistence_use_local_time():
    start = pd.Timestamp("2026-03-30 10:00", tz=TZ).tz_convert("UTC")
    t0 = start - pd.Timedelta(days=21)
    times = pd.date_range(t0, periods=24 * 96, freq="15min")
    y = (local_tod(times) + 1.0)[None, :]
    issue = int((start - t0) / pd.Timedelta("15min"))
    target = np.arange(issue + 14 * 4, issue + 38 * 4)
    naive, pers = _references(y, issue, target, "day_ahead", t0.timestamp(), TZ)
    want = local_tod(times[target]) + 1.0
    np.testing.assert_allclose(naive[0], want)
    np.testing.assert_allclose(pers[0], want)
