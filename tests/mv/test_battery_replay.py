"""The battery replay baseline: its control law replayed from the state of charge at the start.

Hand-computed cases of the law (energy runs out, power limits, efficiencies, the ceiling),
the plumbing of ``metered_generation(battery="replay")`` and ``battery_device_replay``
(the SOC at the event's start, the fallback to the trend baseline), the registry
parameters, and the oracle: on a twin day without an event the replay against the
measured rest of each site gives the twin's own battery power.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from gridflock.domain.kinds import DeviceKind
from gridflock.mv import Calendar, EventWindow, MeterData, Method, SiteInfo, compute_baseline
from gridflock.mv import baselines as bl
from gridflock.mv.meter import BatteryParams
from gridflock.mv.settlement import battery_params

TZ = "Europe/Berlin"


def _params(
    n: int = 1,
    e: float = 10.0,
    p_chg: float = 5.0,
    p_dis: float = 5.0,
    floor: float = 2.0,
    ceiling: float = 10.0,
    eta_c: float = 1.0,
    eta_d: float = 1.0,
) -> BatteryParams:
    def f(v: float) -> np.ndarray:
        return np.full(n, v)

    return BatteryParams(f(e), f(p_chg), f(p_dis), f(floor), f(ceiling), f(eta_c), f(eta_d))


def test_two_kwh_above_the_reserve_at_three_kw_run_out_after_40_minutes() -> None:
    # 10-min steps over 1 h: 3 kW x 40 min = 2 kWh, then nothing is left above the floor
    other = np.full((1, 6), -3.0)  # the rest of the site imports 3 kW
    p = bl.replay_self_consumption(np.array([4.0]), other, _params(floor=2.0), 10 / 60)
    np.testing.assert_allclose(p[0], [3, 3, 3, 3, 0, 0], atol=1e-12)


def test_the_last_step_gets_what_is_left() -> None:
    # 15-min steps: 0.75 kWh per step at 3 kW; 2 kWh give 3, 3, then 0.5 kWh / 0.25 h = 2 kW
    other = np.full((1, 4), -3.0)
    p = bl.replay_self_consumption(np.array([4.0]), other, _params(floor=2.0), 0.25)
    np.testing.assert_allclose(p[0], [3, 3, 2, 0], atol=1e-12)


def test_the_power_limit_binds() -> None:
    other = np.full((1, 4), -3.0)
    p = bl.replay_self_consumption(np.array([9.0]), other, _params(p_dis=2.0), 0.25)
    np.testing.assert_allclose(p[0], [2, 2, 2, 2], atol=1e-12)


def test_discharge_efficiency_drains_more_than_delivered() -> None:
    # eta_d 0.9, 1 kWh above the floor, 2 kW asked over 15 min: 2/0.9 x 0.25 = 0.5556 kWh out,
    # 0.4444 kWh left: 0.4444 x 0.9 / 0.25 = 1.6 kW in the second step, then empty
    other = np.full((1, 3), -2.0)
    p = bl.replay_self_consumption(np.array([3.0]), other, _params(floor=2.0, eta_d=0.9), 0.25)
    np.testing.assert_allclose(p[0], [2.0, 1.6, 0.0], atol=1e-12)


def test_charging_from_a_surplus_stops_at_the_ceiling() -> None:
    # 4 kW surplus, 3 kW charge limit, eta_c 0.9, 1 kWh of room: -3 kW stores 0.675 kWh,
    # the 0.325 kWh left take 0.325 / (0.9 x 0.25) = 1.4444 kW, then it is full
    other = np.full((1, 3), 4.0)
    p = bl.replay_self_consumption(
        np.array([9.0]), other, _params(p_chg=3.0, ceiling=10.0, eta_c=0.9), 0.25
    )
    np.testing.assert_allclose(p[0], [-3.0, -0.325 / 0.225, 0.0], atol=1e-12)


def test_a_row_without_a_battery_gives_nothing() -> None:
    other = np.full((2, 2), -3.0)
    params = _params(n=2)
    params = BatteryParams(
        np.array([10.0, 0.0]),
        params.p_charge_max_kw,
        params.p_discharge_max_kw,
        params.floor_kwh,
        params.ceiling_kwh,
        params.eta_charge,
        params.eta_discharge,
    )
    p = bl.replay_self_consumption(np.array([5.0, 5.0]), other, params, 0.25)
    np.testing.assert_allclose(p, [[3, 3], [0, 0]], atol=1e-12)


# ------------------------------------------------------------------ through the MGO baseline
STEP = "10min"
TIMES = pd.date_range("2026-06-01", "2026-06-22", freq=STEP, tz=TZ, inclusive="left").tz_convert(
    "UTC"
)
EVENT = EventWindow(
    pd.Timestamp("2026-06-19 19:00", tz=TZ), pd.Timestamp("2026-06-19 20:00", tz=TZ), "ev"
)


def _flat_meter(soc: np.ndarray | None) -> MeterData:
    """Two sites, each importing 3 kW all the time (no PV); site 0's battery idles at 0 kW
    in the history except a little at noon (so it counts as having a battery)."""
    k = len(TIMES)
    hours = np.asarray(TIMES.tz_convert(TZ).hour)
    bat = np.zeros((2, k))
    bat[:, hours == 12] = 0.1
    gross = np.full((2, k), -3.0)
    net = gross + bat
    ids = np.array(["a", "b"], dtype=object)
    return MeterData(ids, TIMES, net, TZ, None, None, bat, np.zeros((2, k)), battery_soc_kwh=soc)


def _soc_at_start(value: float) -> np.ndarray:
    """Energy stored [kWh]: ``value`` at the event's start, 9 kWh everywhere else."""
    soc = np.full((2, len(TIMES)), 9.0)
    col = TIMES.get_indexer([EVENT.start])[0]
    soc[:, col] = value
    return soc


def _info() -> SiteInfo:
    return SiteInfo(
        np.array(["battery", "battery"], dtype=object), np.ones(2), battery=_params(n=2)
    )


def test_mgo_replay_starts_from_the_soc_at_the_event_start() -> None:
    meter = _flat_meter(_soc_at_start(4.0))  # 2 kWh above the 2 kWh floor
    b = bl.metered_generation(
        meter, EVENT, Calendar(), _info(), method=Method.UK_DFS_MGO, battery="replay"
    )
    assert b.valid.all()
    # baseline net = gross (-3) + replay: the battery covers the 3 kW for 40 min, then empty
    np.testing.assert_allclose(b.kw, np.tile([0, 0, 0, 0, -3, -3], (2, 1)), atol=1e-9)
    assert "replayed" in b.notes


def test_without_soc_replay_falls_back_to_the_trend_baseline() -> None:
    trend = bl.metered_generation(
        _flat_meter(None), EVENT, Calendar(), _info(), method=Method.UK_DFS_MGO, battery="trend"
    )
    no_soc = bl.metered_generation(
        _flat_meter(None), EVENT, Calendar(), _info(), method=Method.UK_DFS_MGO, battery="replay"
    )
    np.testing.assert_array_equal(no_soc.kw, trend.kw)
    # nor without the parameters, nor where one site's SOC is unknown (that row only)
    no_params = bl.metered_generation(
        _flat_meter(_soc_at_start(4.0)),
        EVENT,
        Calendar(),
        None,
        method=Method.UK_DFS_MGO,
        battery="replay",
    )
    np.testing.assert_array_equal(no_params.kw, trend.kw)
    soc = _soc_at_start(4.0)
    soc[1] = np.nan
    part = bl.metered_generation(
        _flat_meter(soc), EVENT, Calendar(), _info(), method=Method.UK_DFS_MGO, battery="replay"
    )
    np.testing.assert_allclose(part.kw[0], [0, 0, 0, 0, -3, -3], atol=1e-9)
    np.testing.assert_array_equal(part.kw[1], trend.kw[1])
    # the trend baseline of an idle battery: about 0 kW, so the site's baseline is its -3 kW
    np.testing.assert_allclose(trend.kw[1], -3.0, atol=1e-6)


def test_battery_device_replay_replaces_the_battery_power_only() -> None:
    meter = _flat_meter(_soc_at_start(4.0))
    b = compute_baseline(Method.BATTERY_DEVICE_REPLAY, meter, EVENT, Calendar(), _info())
    assert b.valid.all()
    # the site's measured net with its battery (idle: 0 kW) replaced by the replay; the
    # load baseline (H25-corrected DFS) is about the 3 kW it always drew, which is more than
    # the 2 kWh above the floor hold for the hour: the battery empties exactly
    held = b.kw - meter.net_kw[:, TIMES.get_indexer(b.times)]
    np.testing.assert_allclose(held.sum(axis=1) / 6, 2.0, atol=1e-9)  # kWh over 10-min steps
    np.testing.assert_allclose(held[:, :4], 3.0, atol=0.05)
    np.testing.assert_allclose(held[:, 5], 0.0, atol=1e-12)
    # without SOC: the trend baseline, as battery_device_trend
    no_soc = compute_baseline(Method.BATTERY_DEVICE_REPLAY, _flat_meter(None), EVENT, Calendar())
    trend = compute_baseline(Method.BATTERY_DEVICE_TREND, _flat_meter(None), EVENT, Calendar())
    np.testing.assert_allclose(no_soc.kw, trend.kw, atol=1e-12)


def test_soc_is_summed_and_taken_with_the_rows() -> None:
    meter = _flat_meter(_soc_at_start(4.0))
    total = meter.aggregate(["x", "x"])
    assert total.battery_soc_kwh is not None
    np.testing.assert_allclose(total.battery_soc_kwh[0], 2 * meter.battery_soc_kwh[0])  # type: ignore[index]
    one = meter.take([1])
    assert one.battery_soc_kwh is not None
    assert one.battery_soc_kwh.shape == (1, len(TIMES))
    with pytest.raises(ValueError, match="battery_soc_kwh"):
        MeterData(meter.site_ids, TIMES, meter.net_kw, TZ, battery_soc_kwh=np.zeros((1, 3)))


def test_battery_params_from_the_registry() -> None:
    from gridflock.fleet.generate import generate_fleet

    spec = generate_fleet(40, 5)
    bat = spec.devices[DeviceKind.BATTERY]
    p = battery_params(spec)
    sites = list(spec.sites["id"])
    r = bat.iloc[0]
    i = sites.index(r["site_id"])
    assert p.e_kwh[i] == pytest.approx(r["e_kwh"])
    assert p.p_discharge_max_kw[i] == pytest.approx(r["p_discharge_max_kw"])
    assert p.floor_kwh[i] == pytest.approx(max(r["soc_min"], r["soc_reserve"]) * r["e_kwh"])
    assert p.ceiling_kwh[i] == pytest.approx(r["soc_max"] * r["e_kwh"])
    without = [j for j, s in enumerate(sites) if s not in set(bat["site_id"])]
    assert without
    assert (p.e_kwh[without] == 0).all()
    assert not p.has[without].any()


def test_on_a_twin_day_without_an_event_the_replay_is_the_battery() -> None:
    """The oracle: the twin's batteries run this law, so replayed from the SOC the twin
    reports at 19:00 against the measured rest of each site (net - battery), the replay
    gives the metered battery power. Tolerance 1e-4 kW: the twin's meters are float32
    (about 1e-6 relative on a few kW and kWh), nothing else differs."""
    from gridflock.fleet.generate import generate_fleet
    from gridflock.sim.meters import run_meters

    spec = generate_fleet(30, 3)
    run = run_meters(spec, dt.date(2026, 6, 1), 3, [], seed=3)
    m = run.actual
    assert m.battery_kw is not None
    assert run.info.battery is not None
    ev = EventWindow(
        pd.Timestamp("2026-06-03 17:00", tz=TZ), pd.Timestamp("2026-06-03 23:00", tz=TZ), "p"
    )
    cols = m.times.get_indexer(bl._steps(m, ev.start, ev.end))
    measured = m.battery_kw[:, cols]
    rep, ok = bl.battery_replay(m, ev, run.info, m.net_kw[:, cols] - measured)
    assert ok.sum() == run.info.battery.has.sum() > 5
    np.testing.assert_allclose(rep[ok], measured[ok], atol=1e-4)
    # the day is not trivial: batteries discharge, some run down to their reserve
    assert measured[ok].max() > 1.0
    assert (np.abs(measured[ok][:, -1]) < 1e-6).any()


def test_replay_averages_over_the_rules_recent_misses_not_the_mean_load() -> None:
    """On alternate working days the site drew 1 kW in the evening, else 5 kW; the DFS rule
    (10 days, no profile) says 3 kW every day, missing by -2 or +2 kW. The battery (3 kW
    limit, plenty of energy) would have covered 1 kW or 3 kW: 2 kW on average, where
    replaying the 3 kW baseline alone gives 3 kW."""
    times = pd.date_range(
        "2026-04-27", "2026-06-22", freq=STEP, tz=TZ, inclusive="left"
    ).tz_convert("UTC")
    k = len(times)
    local = times.tz_convert(TZ)
    hours = np.asarray(local.hour)
    dates = [t.date() for t in local]
    working = sorted({d for d in dates if d.weekday() < 5})
    parity = {d: i % 2 for i, d in enumerate(working)}  # alternate working days
    high = np.array([parity.get(d, 0) == 1 for d in dates])
    evening = (hours >= 19) & (hours < 20)
    gross = np.where(evening & high, -5.0, np.where(evening, -1.0, -2.0))
    gross = np.tile(gross, (2, 1))
    bat = np.zeros((2, k))
    bat[:, hours == 12] = 0.1
    soc = np.full((2, k), 9.0)
    meter = MeterData(
        np.array(["a", "b"], dtype=object),
        times,
        gross + bat,
        TZ,
        None,
        None,
        bat,
        np.zeros((2, k)),
        battery_soc_kwh=soc,
    )
    info = SiteInfo(
        np.array(["battery"] * 2, dtype=object), np.ones(2), battery=_params(n=2, p_dis=3.0)
    )
    b = bl.metered_generation(
        meter, EVENT, Calendar(), info, method=Method.UK_DFS_MGO, battery="replay"
    )
    # baseline net = the gross baseline (-3 kW, the 10 days' mean) + the battery's 2 kW
    np.testing.assert_allclose(b.kw, -3.0 + 2.0, atol=1e-9)
    # the rule's misses on the 10 recent days: +2 and -2 kW, five each
    res = bl.rule_residuals(
        meter.gross(), EVENT, Calendar(), lambda m, e: bl.uk_dfs(m, e, Calendar()), 10
    )
    np.testing.assert_allclose(np.sort(res[0, :, 0]), [-2] * 5 + [2] * 5, atol=1e-9)
    # against the baseline load alone the law gives its 3 kW limit
    rep, ok = bl.battery_replay(meter, EVENT, info, np.full((2, 6), -3.0))
    assert ok.all()
    np.testing.assert_allclose(rep, 3.0, atol=1e-12)
