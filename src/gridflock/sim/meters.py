"""Interval meters over many days of the twin: the data M&V is judged on.

The twin runs a fleet for weeks under the dispatcher, with events on some days, and
records every site's net power twice: as its meter saw it (with the VPP) and as its
shadow ran (the same homes, weather and draws, never dispatched). The shadow is the true
counterfactual, so a baseline's error is known exactly, on event days and on placebo
days alike. Day-to-day weather varies (each day draws its own temperature range and
cloudiness), which is what makes a baseline's job hard.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gridflock.dispatch.dispatcher import Dispatcher
from gridflock.domain.events import Event, EventSource, Scope
from gridflock.domain.kinds import DeviceKind
from gridflock.domain.messages import BoolArray
from gridflock.domain.spec import FleetSpec
from gridflock.fleet.state import FleetState
from gridflock.mv.meter import MeterData, SiteInfo
from gridflock.mv.settlement import battery_params
from gridflock.sim.imperfections import Imperfections
from gridflock.sim.scenario import scenario_tracker_config
from gridflock.sim.twin import Twin
from gridflock.sim.weather import Weather, make_weather

__all__ = ["MeterRun", "PlannedEvent", "run_meters", "site_info", "subset_fleet", "varied_weather"]

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class PlannedEvent:
    """An event on local ``day`` from ``start_hour`` for ``hours``: ``kw_per_site`` per site."""

    day: dt.date
    start_hour: float
    hours: float
    kw_per_site: float


@dataclass
class MeterRun:
    """The twin's meters over the run: ``actual`` with the VPP, ``shadow`` without.

    Both share sites, times and weather; ``actual.battery_kw`` holds each site's battery
    power, ``actual.battery_soc_kwh`` the energy in its batteries at each interval's start
    (as their telemetry reports it), ``actual.gen_kw`` its PV and wind output,
    ``actual.load_kw`` its EV chargers', heat pumps' and water heaters' consumption (as
    the devices meter them); the shadow's hold the same per kind without the VPP.
    ``events`` are the dispatched events (UTC windows), ``event_days`` their local
    dates, ``control`` the held-out sites.
    """

    actual: MeterData
    shadow: MeterData
    info: SiteInfo
    events: list[Event]
    event_days: list[dt.date]
    control: BoolArray
    runtime_s: float


def varied_weather(
    start: pd.Timestamp, steps: int, step_s: float, lat: float, lon: float, seed: int
) -> Weather:
    """Weather whose days differ: each local day its own max/min temperature and cloudiness.

    Temperatures follow a slow random walk around a warm season (daily max 20-36 °C),
    cloudiness is drawn per day (0.05 clear to 0.75 overcast).
    """
    times = pd.date_range(start, periods=steps, freq=pd.Timedelta(seconds=step_s))
    rng = np.random.default_rng(seed)
    n_days = int(np.ceil(steps * step_s / 86400)) + 1
    t_max = np.clip(28 + np.cumsum(rng.normal(0, 1.8, n_days)) * 0.6, 20, 36)
    cloud = rng.choice([0.05, 0.15, 0.3, 0.5, 0.75], n_days, p=[0.3, 0.25, 0.2, 0.15, 0.1])
    parts: list[Weather] = []
    per_day = round(86400 / step_s)
    for d in range(n_days):
        seg = times[d * per_day : (d + 1) * per_day]
        if not len(seg):
            break
        parts.append(
            make_weather(
                seg,
                lat,
                lon,
                seed + 1000 * d,
                t_max_c=float(t_max[d]),
                t_min_c=float(t_max[d] - 11),
                cloudiness=float(cloud[d]),
            )
        )
    cat = {
        name: np.concatenate([getattr(p, name) for p in parts])
        for name in (
            "ghi",
            "dni",
            "dhi",
            "temp_air_c",
            "wind_speed_m_s",
            "solar_zenith",
            "solar_azimuth",
            "cloud_factor",
        )
    }
    return Weather(times=times, **cat)


def subset_fleet(spec: FleetSpec, site_ids: Sequence[str]) -> FleetSpec:
    """The fleet restricted to ``site_ids`` (with all grid nodes, for their limits)."""
    keep = set(site_ids)
    sites = spec.sites[spec.sites["id"].isin(keep)].reset_index(drop=True)
    devices = {
        k: d[d["site_id"].isin(keep)].reset_index(drop=True) for k, d in spec.devices.items()
    }
    return FleetSpec(spec.grid_nodes, sites, devices)


def site_info(spec: FleetSpec) -> SiteInfo:
    """Each site's device mix (``"battery+pv"``; ``"load"`` for load only), annual kWh, node.

    With each site's battery parameters from the registry (:func:`battery_params`).
    """
    sites = spec.sites["id"].to_numpy(object)
    index = {s: i for i, s in enumerate(sites.tolist())}
    has: dict[str, BoolArray] = {}
    for kind, frame in spec.devices.items():
        if kind == DeviceKind.LOAD or not len(frame):
            continue
        m = np.zeros(len(sites), bool)
        m[[index[s] for s in frame["site_id"].tolist()]] = True
        has[kind.value] = m
    names = sorted(has)
    kinds = np.array(
        ["+".join(n for n in names if has[n][i]) or "load" for i in range(len(sites))], object
    )
    load = spec.devices[DeviceKind.LOAD]
    size = np.ones(len(sites))
    size[[index[s] for s in load["site_id"].tolist()]] = load["annual_kwh"].to_numpy(float)
    return SiteInfo(
        kinds, size, spec.sites["grid_node"].to_numpy(object), battery=battery_params(spec)
    )


def run_meters(
    spec: FleetSpec,
    first_day: dt.date,
    days: int,
    events: Sequence[PlannedEvent],
    control: BoolArray | None = None,
    step_s: float = 900.0,
    seed: int = 7,
    imperfections: Imperfections | None = None,
    progress: Progress | None = None,
) -> MeterRun:
    """Run the twin for ``days`` local days under the dispatcher and record the meters.

    Events go to the sites outside ``control`` (their programme tag is set to ``vpp``,
    the control group's to ``control``); each asks ``kw_per_site`` kW per participant.
    Meter values are each site's mean net power per step [kW, generator sign].
    Without events the dispatcher is not run (a placebo-only season: every day's true
    effect is zero, ``actual`` equals ``shadow``), which saves about a third of the time.
    """
    began = time.perf_counter()
    n_sites = len(spec.sites)
    control = np.zeros(n_sites, bool) if control is None else np.asarray(control, bool)
    sites = spec.sites.copy()
    sites["program"] = np.where(control, "control", "vpp")
    spec = FleetSpec(spec.grid_nodes, sites, spec.devices)
    tz = str(sites["tz"].iloc[0])
    start = pd.Timestamp(dt.datetime.combine(first_day, dt.time())).tz_localize(tz)
    end = pd.Timestamp(
        dt.datetime.combine(first_day + dt.timedelta(days=days), dt.time())
    ).tz_localize(tz)
    steps = round((end - start).total_seconds() / step_s)
    start = start.tz_convert("UTC")
    weather = varied_weather(
        start, steps, step_s, float(sites["lat"].mean()), float(sites["lon"].mean()), seed
    )
    imp = imperfections or Imperfections(offline_rate=0.0)
    twin = Twin(spec, start, steps, step_s, seed, imp, weather=weather)
    state = FleetState.from_spec(spec)
    dispatcher = Dispatcher(state, scenario_tracker_config(step_s))
    n_vpp = int((~control).sum())
    evs: list[Event] = []
    for i, pe in enumerate(events):
        s = pd.Timestamp(dt.datetime.combine(pe.day, dt.time())).tz_localize(tz) + pd.Timedelta(
            hours=pe.start_hour
        )
        e = s + pd.Timedelta(hours=pe.hours)
        ev = Event(
            f"mv-{i + 1:03d}",
            pe.kw_per_site * n_vpp,
            s.timestamp(),
            e.timestamp(),
            Scope("program", "vpp"),
            EventSource.SIMULATION,
            created_by="gridflock mv study",
        )
        dispatcher.add(ev)
        evs.append(ev)
    site_idx = state.site_idx
    bat = state.kind_slices[DeviceKind.BATTERY]
    bat_sites = site_idx[bat]
    actual = np.zeros((n_sites, steps), np.float32)
    shadow = np.zeros((n_sites, steps), np.float32)
    battery = np.zeros((n_sites, steps), np.float32)
    gen = np.zeros((n_sites, steps), np.float32)
    gen_dev = np.zeros(len(site_idx), bool)
    for kind in (DeviceKind.PV, DeviceKind.WIND):
        if kind in state.kind_slices:
            gen_dev[state.kind_slices[kind]] = True
    gen_sites = site_idx[gen_dev]
    load_dev = np.zeros(len(site_idx), bool)
    for kind in (DeviceKind.EV_CHARGER, DeviceKind.HEAT_PUMP, DeviceKind.WATER_HEATER):
        if kind in state.kind_slices:
            load_dev[state.kind_slices[kind]] = True
    load_sites = site_idx[load_dev]
    load = np.zeros((n_sites, steps), np.float32)
    shadow_load = np.zeros((n_sites, steps), np.float32)
    soc = np.zeros((n_sites, steps), np.float32)  # energy stored at each step's start [kWh]
    bat_e = np.asarray(twin.col[DeviceKind.BATTERY]["e_kwh"], dtype=np.float64)
    shadow_soc = np.zeros((n_sites, steps), np.float32)
    shadow_battery = np.zeros((n_sites, steps), np.float32)
    shadow_gen = np.zeros((n_sites, steps), np.float32)
    dispatching = bool(evs)  # without events nothing is dispatched: the meters are the shadow
    for t in range(steps):
        soc[:, t] = np.bincount(bat_sites, weights=twin.real.soc * bat_e, minlength=n_sites)
        shadow_soc[:, t] = np.bincount(
            bat_sites, weights=twin.shadow.soc * bat_e, minlength=n_sites
        )
        twin.step()
        batches = twin.receive()
        if dispatching:
            for batch in batches:
                state.apply(batch)
            now = twin.now
            state.mark_stale(now, 3 * step_s + 60)
            for cmd in dispatcher.step(now):
                twin.send(cmd)
        actual[:, t] = np.bincount(site_idx, weights=twin.p_kw, minlength=n_sites)
        shadow[:, t] = np.bincount(site_idx, weights=twin.natural_kw, minlength=n_sites)
        battery[:, t] = np.bincount(bat_sites, weights=twin.p_kw[bat], minlength=n_sites)
        gen[:, t] = np.bincount(gen_sites, weights=twin.p_kw[gen_dev], minlength=n_sites)
        load[:, t] = np.bincount(load_sites, weights=twin.p_kw[load_dev], minlength=n_sites)
        nat = twin.natural_kw
        shadow_battery[:, t] = np.bincount(bat_sites, weights=nat[bat], minlength=n_sites)
        shadow_gen[:, t] = np.bincount(gen_sites, weights=nat[gen_dev], minlength=n_sites)
        shadow_load[:, t] = np.bincount(load_sites, weights=nat[load_dev], minlength=n_sites)
        if progress:
            progress(t + 1, steps)
    ids = sites["id"].to_numpy(object)
    temp = np.asarray(weather.temp_air_c, float)
    ghi = np.asarray(weather.ghi, float)
    info = site_info(spec)
    info = SiteInfo(info.kinds, info.size, info.grid_node, control, info.battery)
    return MeterRun(
        MeterData(
            ids,
            twin.times,
            actual.astype(float),
            tz,
            temp,
            ghi,
            battery.astype(float),
            gen.astype(float),
            load.astype(float),
            soc.astype(float),
        ),
        MeterData(
            ids,
            twin.times,
            shadow.astype(float),
            tz,
            temp,
            ghi,
            shadow_battery.astype(float),
            shadow_gen.astype(float),
            shadow_load.astype(float),
            shadow_soc.astype(float),
        ),
        info,
        evs,
        sorted({pe.day for pe in events}),
        control,
        time.perf_counter() - began,
    )
