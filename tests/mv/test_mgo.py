"""MGO baselines (gross load, metered generation added back) against hand-computed values."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from gridflock.mv import (
    EventWindow,
    MeterData,
    Method,
    available_methods,
    compute_baseline,
)

TZ = "Europe/London"
FIRST = dt.date(2026, 3, 2)  # a Monday


def _times(days: int) -> pd.DatetimeIndex:
    start = pd.Timestamp(str(FIRST), tz=TZ)
    return pd.date_range(
        start, start + pd.Timedelta(days=days), freq="30min", inclusive="left"
    ).tz_convert("UTC")


def _event(day: dt.date, a: float = 17.0, b: float = 19.0) -> EventWindow:
    d = pd.Timestamp(str(day), tz=TZ)
    return EventWindow(d + pd.Timedelta(hours=a), d + pd.Timedelta(hours=b), "ev")


def _meter(battery: bool = True) -> tuple[MeterData, dict[dt.date, float], dt.date]:
    """One site: gross load L(day) kW all day, PV that varies wildly by day, a battery.

    Without ``battery`` the site has no battery at all.

    PV shines 12:00-18:00 at ``sun[day]`` kW (0 otherwise); the battery discharges
    0.5 kW every evening 17:00-19:00 and, on the event day, 2.0 kW.
    """
    times = _times(28)
    local = times.tz_convert(TZ)
    days = np.asarray(local.date)
    hour = np.asarray(local.hour + local.minute / 60.0)
    rng = np.random.default_rng(3)
    load = {FIRST + dt.timedelta(days=k): 1.0 + 0.05 * k for k in range(30)}
    sun = {FIRST + dt.timedelta(days=k): float(rng.uniform(0.0, 4.0)) for k in range(30)}
    event_day = dt.date(2026, 3, 27)
    gross = -np.array([load[d] for d in days])
    pv = np.where((hour >= 12) & (hour < 18), [sun[d] for d in days], 0.0)
    bat = np.where((hour >= 17) & (hour < 19), 0.5, 0.0)
    bat = np.where((days == event_day) & (hour >= 17) & (hour < 19), 2.0, bat)
    net = gross + pv + (bat if battery else 0.0)
    m = MeterData(
        np.array(["s"], object),
        times,
        net[None, :],
        TZ,
        battery_kw=bat[None, :] if battery else None,
        gen_kw=pv[None, :],
    )
    return m, load, event_day


def _working_before(day: dt.date, n: int) -> list[dt.date]:
    out, d = [], day
    while len(out) < n:
        d -= dt.timedelta(days=1)
        if d.weekday() < 5:
            out.append(d)
    return out


def test_caiso_mgo_adjusts_on_gross_load_and_adds_pv_and_battery_back() -> None:
    m, load, day = _meter()
    b = compute_baseline(Method.CAISO_10IN10_MGO, m, _event(day))
    used = _working_before(day, 10)
    base = np.mean([load[d] for d in used])
    ratio = float(np.clip(load[day] / base, 0.8, 1.2))  # same load all day: the true ratio
    steps = m.times.get_indexer(b.times)
    pv = m.gen_kw[0, steps]
    # gross baseline, capped adjustment, PV as metered, the battery's recent 0.5 kW
    np.testing.assert_allclose(b.kw[0], -base * ratio + pv + 0.5)
    np.testing.assert_allclose(b.adjustment[0], ratio)
    # delivered: the battery's extra 1.5 kW and nothing from the sunshine
    np.testing.assert_allclose(b.delivered_kw[0], 1.5)


def test_uk_dfs_mgo_is_additive_on_gross_load() -> None:
    from gridflock.mv import Calendar
    from gridflock.mv.baselines import metered_generation

    m, load, day = _meter(battery=False)
    # the DFS rule itself, without the standard-profile correction ``uk_dfs_mgo`` adds
    # by default (tested on its own in test_baselines.py)
    b = metered_generation(m, _event(day), Calendar(), method=Method.UK_DFS_MGO)
    base = np.mean([load[d] for d in _working_before(day, 10)])
    steps = m.times.get_indexer(b.times)
    # the in-day window (14:00-16:00) sees the load, not the sunshine: the additive
    # adjustment recovers the event day's load exactly, and PV is added back as metered
    assert b.adjustment[0] == pytest.approx(-(load[day] - base))
    np.testing.assert_allclose(b.kw[0], -load[day] + m.gen_kw[0, steps])
    np.testing.assert_allclose(b.actual_kw[0], m.net_kw[0, steps])


def test_whole_site_caiso_is_thrown_by_the_sunshine_mgo_is_not() -> None:
    m, load, day = _meter(battery=False)
    net_only = MeterData(m.site_ids, m.times, m.net_kw, TZ)
    ev = _event(day, 18.0, 19.0)  # after the PV: only the adjustment window sees it
    whole = compute_baseline(Method.CAISO_10IN10, net_only, ev)
    mgo = compute_baseline(Method.CAISO_10IN10_MGO, m, ev)
    base = np.mean([load[d] for d in _working_before(day, 10)])
    ratio = float(np.clip(load[day] / base, 0.8, 1.2))
    np.testing.assert_allclose(mgo.kw[0], -base * ratio)  # = the event day's own load
    assert not np.allclose(whole.kw[0], mgo.kw[0])


def test_mgo_needs_metered_generation_and_says_so() -> None:
    m, _, day = _meter()
    bare = MeterData(m.site_ids, m.times, m.net_kw, TZ, battery_kw=m.battery_kw)
    with pytest.raises(ValueError, match="gen_kw"):
        compute_baseline(Method.PJM_HIGH4OF5_MGO, bare, _event(day))
    assert Method.CAISO_10IN10_MGO not in available_methods(bare, None)
    assert Method.CAISO_10IN10_MGO in available_methods(m, None)


def test_gen_kw_follows_take_and_aggregate_and_gaps_stay_gaps() -> None:
    m, _, day = _meter()
    two = MeterData(
        np.array(["a", "b"], object),
        m.times,
        np.vstack([m.net_kw, m.net_kw]),
        TZ,
        battery_kw=np.vstack([m.battery_kw, m.battery_kw]),
        gen_kw=np.vstack([m.gen_kw, m.gen_kw]),
    )
    agg = two.aggregate(["n", "n"])
    assert agg.gen_kw is not None
    np.testing.assert_allclose(agg.gen_kw[0], 2 * m.gen_kw[0])
    assert two.take([1]).gen_kw is not None
    gen = two.gen_kw.copy()
    ev = _event(day)
    cols = m.times.get_indexer(pd.date_range(ev.start, ev.end, freq="30min", inclusive="left"))
    gen[0, cols[0]] = np.nan  # a PV reading missing in the window
    gappy = MeterData(two.site_ids, m.times, two.net_kw, TZ, battery_kw=two.battery_kw, gen_kw=gen)
    b = compute_baseline(Method.CAISO_10IN10_MGO, gappy, ev)
    assert list(b.valid) == [False, True]
    with pytest.raises(ValueError, match="gen_kw must have the shape"):
        MeterData(m.site_ids, m.times, m.net_kw, TZ, gen_kw=np.zeros((2, len(m.times))))
