"""The linear baselines on the sites' summed meter equal the sum of their per-site results.

The long placebo study (benchmarks/bench_mv_placebo.py) runs these methods on one
aggregate row per season instead of on every site; this is the identity that makes it
exact, checked against the per-site computation on random complete data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridflock.mv import Calendar, EventWindow, MeterData, Method, compute_baseline
from gridflock.mv.baselines import Baseline, household_profile, metered_generation

TZ = "Europe/Berlin"
TIMES = pd.date_range("2026-06-01", "2026-07-20", freq="30min", tz=TZ, inclusive="left").tz_convert(
    "UTC"
)
EVENT = EventWindow(
    pd.Timestamp("2026-07-16 19:00", tz=TZ), pd.Timestamp("2026-07-16 21:00", tz=TZ), "p"
)
LINEAR = [
    Method.UK_DFS,
    Method.UK_DFS_MGO,  # with battery="trend": "charge" (the default) fits per site
    Method.CAISO_10IN10_UNADJUSTED,
    Method.WEATHER_MATCHED,
    Method.BATTERY_DEVICE_TREND,
]


def _baseline(method: Method, meter: MeterData) -> Baseline:
    if method == Method.UK_DFS_MGO:
        return metered_generation(
            meter, EVENT, Calendar(), method=method, battery="trend", profile=household_profile
        )
    return compute_baseline(method, meter, EVENT, Calendar())


def _meter(n: int, seed: int) -> MeterData:
    rng = np.random.default_rng(seed)
    k = len(TIMES)
    hours = np.asarray(TIMES.tz_convert(TZ).hour, float)
    day = np.arange(k) / 48.0
    cloud = rng.uniform(0.2, 1, k // 48 + 1)[np.arange(k) // 48]  # one level per day
    ghi = np.clip(800 * np.sin((hours - 6) / 14 * np.pi), 0, None) * cloud
    temp = 20 + 8 * np.sin((hours - 9) / 24 * 2 * np.pi) + rng.normal(0, 2, k)
    gross = -(0.5 + 0.05 * np.maximum(temp - 22, 0) + rng.gamma(2, 0.3, (n, k)))
    has_pv, has_bat = rng.random(n) < 0.7, rng.random(n) < 0.6
    has_pv[0] = has_bat[0] = True  # at least one of each
    has_bat[1] = False  # and one site without a battery
    gen = (rng.uniform(0, 5, n)[:, None] * ghi[None, :] / 1000) * has_pv[:, None]
    bat = (
        np.where((hours >= 17) & (hours < 23), 1.0, -0.3)[None, :]
        * (1 + 0.01 * day)[None, :]
        * rng.uniform(0, 3, n)[:, None]
        * has_bat[:, None]
    )
    net = gross + gen + bat
    ids = np.array([f"s{i}" for i in range(n)], object)
    return MeterData(ids, TIMES, net, TZ, temp, ghi, bat, gen)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(2, 12), seed=st.integers(0, 2**16))
def test_linear_methods_on_the_total_equal_the_sum_over_sites(n: int, seed: int) -> None:
    meter = _meter(n, seed)
    total = meter.aggregate(np.full(n, "all"))
    for method in LINEAR:
        per_site = _baseline(method, meter)
        on_total = _baseline(method, total)
        assert on_total.valid.all()
        v = per_site.valid
        if method == Method.BATTERY_DEVICE_TREND:  # sites without a battery have none
            assert v[0]
            assert not v[1]
        else:
            assert v.all()
        np.testing.assert_allclose(
            per_site.delivered_kw[v].sum(axis=0), on_total.delivered_kw[0], rtol=1e-9, atol=1e-9
        )


def test_a_season_without_events_is_its_own_shadow() -> None:
    """No events: nothing dispatched, so the meters equal the shadow (every day a placebo)."""
    import datetime as dt

    from gridflock.fleet.generate import generate_fleet
    from gridflock.sim.meters import PlannedEvent, run_meters

    spec = generate_fleet(30, 3)
    first = dt.date(2026, 6, 1)
    run = run_meters(spec, first, 3, [], seed=3)
    assert run.events == []
    assert run.event_days == []
    np.testing.assert_array_equal(run.actual.net_kw, run.shadow.net_kw)
    assert run.actual.battery_kw is not None
    assert run.shadow.battery_kw is not None
    np.testing.assert_array_equal(run.actual.battery_kw, run.shadow.battery_kw)
    assert np.abs(run.actual.net_kw).sum() > 0  # the homes did run
    # with an event the dispatcher runs and the meters leave the shadow in its window
    ev = run_meters(
        spec, first, 3, [PlannedEvent(first + dt.timedelta(days=2), 19.0, 2.0, 1.0)], seed=3
    )
    assert np.abs(ev.actual.net_kw - ev.shadow.net_kw).max() > 0.1
