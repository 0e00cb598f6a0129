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


def test_each_site_lags_by_its_own_zone():
    """Sites in three zones, rows mixed in one call: each row's lags follow its own site's
    clock. New York changes on 8 March, Berlin on 29 March 2026; each site's rows are
    issued a few days after its own change, so its lags cross it (UTC never changes)."""
    zones = ["Europe/Berlin", "America/New_York", "UTC"]
    issued = ["2026-03-30 12:00", "2026-03-10 12:00", "2026-03-30 12:00"]
    sites = SiteAttributes.from_frame(pd.DataFrame({"id": ["b", "n", "u"], "tz": zones}))
    t0 = pd.Timestamp("2026-02-15", tz="UTC")
    times = pd.date_range(t0, periods=50 * 96, freq="15min")

    def tod(tz: str, when: pd.DatetimeIndex) -> np.ndarray:
        local = when.tz_convert(tz)
        return (local.hour * 4 + local.minute // 15).to_numpy(np.float64)

    y = np.stack([tod(z, times) + 1.0 for z in zones])
    parts = []
    for k, when in enumerate(issued):
        issue = int((pd.Timestamp(when, tz="UTC") - t0) / pd.Timedelta("15min"))
        target = np.arange(issue + 8, issue + 8 + 96)
        parts.append((np.full(len(target), k), target, np.full(len(target), issue)))
    site, target, issue_ = (np.concatenate(c).astype(np.int64) for c in zip(*parts, strict=True))
    rows = Rows(site, target, issue_)
    x, scale = build_features(y, t0.timestamp(), sites, rows, WeatherSeries(times, {}), 1.0)
    for k, z in enumerate(zones):
        mine = site == k
        want = tod(z, times[target[mine]]) + 1.0
        for name in ("lag_day", "lag_1w", "lag_2w"):
            got = (x[:, FEATURES.index(name)] * scale)[mine]
            np.testing.assert_allclose(got, want, err_msg=f"{z} {name}")
