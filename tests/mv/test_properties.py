"""Property tests: any sites, any gaps, any magnitudes give a baseline or a clear 'none'."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridflock.mv import Calendar, EventWindow, MeterData, Method, compute_baseline

TZ = "America/New_York"
# 2026-11-01 is the autumn DST change in New York: history spans it
TIMES = pd.date_range("2026-10-05", "2026-11-06", freq="30min", tz=TZ, inclusive="left").tz_convert(
    "UTC"
)
EVENT = EventWindow(
    pd.Timestamp("2026-11-05 17:00", tz=TZ), pd.Timestamp("2026-11-05 19:00", tz=TZ), "p"
)
DAY_METHODS = [
    Method.CAISO_10IN10,
    Method.CAISO_10IN10_ADDITIVE,
    Method.PJM_HIGH4OF5,
    Method.UK_DFS,
]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 4),
    gap_share=st.sampled_from([0.0, 0.05, 0.5, 1.0]),
    scale=st.sampled_from([1e-3, 1.0, 1e6]),
    seed=st.integers(0, 2**16),
)
def test_day_matching_baselines_never_break(
    n: int, gap_share: float, scale: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    net = scale * rng.normal(0, 1, (n, len(TIMES)))
    net[rng.random(net.shape) < gap_share] = np.nan
    m = MeterData(np.array([f"s{i}" for i in range(n)], object), TIMES, net, TZ)
    for method in DAY_METHODS:
        b = compute_baseline(method, m, EVENT, Calendar())
        assert b.kw.shape == (n, 4)
        assert np.isfinite(b.kw[b.valid]).all()
        assert np.isnan(b.kw[~b.valid]).all()
        assert (b.days_used <= 10).all()
        if method == Method.CAISO_10IN10:
            ratios = b.adjustment[b.valid]
            assert ((ratios >= 0.8 - 1e-12) & (ratios <= 1.2 + 1e-12)).all()
        if gap_share == 1.0:
            assert not b.valid.any()
