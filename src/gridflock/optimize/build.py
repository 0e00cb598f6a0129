"""Build a :class:`PlanProblem` from a fleet spec, forecasts, initial state and a tariff.

Everything is resolved to arrays here, once: defaults for devices with no reported state,
each site's forecasts shared among its devices, thermal coefficients from the same exact
first-order step the twin uses (:func:`gridflock.domain.bands.rc_step`), EV sessions as
plugged masks per step. Bad input raises :class:`~gridflock.domain.errors.ValidationError`
naming the array, site or device and what to do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from gridflock.domain import bands
from gridflock.domain.envelopes import Envelope
from gridflock.domain.errors import Problem, ValidationError
from gridflock.domain.kinds import DeviceKind
from gridflock.domain.messages import FloatArray, IntArray
from gridflock.domain.spec import FleetSpec
from gridflock.fleet.envelopes import PARA14A_KINDS, grid_limits
from gridflock.fleet.state import GridTopology
from gridflock.gridcode import Profile, plan_rules, site_codes
from gridflock.optimize._reach import thermal_reach
from gridflock.optimize.inputs import InitialState, SiteForecasts
from gridflock.optimize.problem import (
    STEP_H,
    Batteries,
    EVChargers,
    Grid,
    PlanProblem,
    Renewables,
    Sites,
    SupportWindow,
    Tariff,
    Thermal,
)

__all__ = ["build_problem"]

_SRC = "plan"


def _site_array(
    name: str, value: FloatArray | None, n_sites: int, n_steps: int, problems: list[Problem]
) -> FloatArray:
    """A forecast as (n_sites, n_steps), broadcast from (n_steps,) and checked finite."""
    if value is None:
        return np.zeros((n_sites, n_steps))
    arr = np.asarray(value, dtype=np.float64)
    try:
        arr = np.broadcast_to(arr, (n_sites, n_steps)).copy()
    except ValueError:
        problems.append(
            Problem(
                _SRC,
                "forecasts",
                name,
                f"has shape {arr.shape}; give (n_sites, n_steps) = ({n_sites}, {n_steps}) "
                "or (n_steps,)",
            )
        )
        return np.zeros((n_sites, n_steps))
    bad = ~np.isfinite(arr)
    if bad.any():
        s, t = np.argwhere(bad)[0]
        problems.append(
            Problem(
                _SRC,
                "forecasts",
                name,
                f"{int(bad.sum())} value(s) are NaN or infinite (first: site row {s}, step {t}); "
                "fill the gaps before planning",
            )
        )
        arr = np.where(bad, 0.0, arr)
    return arr


def _state_column(
    state: InitialState, ids: np.ndarray, column: FloatArray, default: FloatArray
) -> FloatArray:
    """``column`` of ``state`` for devices ``ids``, ``default`` where unknown or NaN."""
    if len(state.device_ids) == 0 or len(ids) == 0:
        return default.astype(np.float64).copy()
    pos = pd.Index(state.device_ids).get_indexer(pd.Index(ids))
    vals = np.where(pos >= 0, np.asarray(column, dtype=np.float64)[np.maximum(pos, 0)], np.nan)
    out: FloatArray = np.where(np.isfinite(vals), vals, default)
    return out


def _share(site: IntArray, weight: FloatArray, n_sites: int) -> FloatArray:
    """Each device's share of its site's total ``weight`` (equal shares where all are 0)."""
    w = np.maximum(np.asarray(weight, dtype=np.float64), 0.0)
    total = np.bincount(site, weights=w, minlength=n_sites)
    count = np.bincount(site, minlength=n_sites).astype(np.float64)
    out: FloatArray = np.where(
        total[site] > 0, w / np.where(total[site] > 0, total[site], 1.0), 1.0 / count[site]
    )
    return out


def _typical_sessions(
    df: pd.DataFrame, site_tz: np.ndarray, start_ts: float
) -> tuple[FloatArray, FloatArray]:
    """Next arrival and following departure [UTC epoch s] from the spec's typical hours.

    Hours are local wall-clock hours in the site's time zone (DST days included: a
    departure at 07:30 is 07:30 on the clock, whatever the offset).
    """
    arrival = np.zeros(len(df))
    departure = np.zeros(len(df))
    start = pd.Timestamp(start_ts, unit="s", tz="UTC")

    def wall(day: pd.Timestamp, hours: FloatArray, tz: str) -> FloatArray:
        naive = pd.DatetimeIndex(day + pd.to_timedelta(hours, unit="h"))
        local = naive.tz_localize(tz, nonexistent="shift_forward", ambiguous=False)
        out: FloatArray = local.as_unit("ns").asi8 / 1e9
        return out

    for tz in np.unique(site_tz):
        m = site_tz == tz
        zone = str(tz) or "UTC"
        day = start.tz_convert(zone).tz_localize(None).normalize()
        arr_h = df["arrival_hour"].to_numpy(float)[m]
        dep_h = df["departure_hour"].to_numpy(float)[m]
        a = wall(day, arr_h, zone)
        a = np.where(a < start_ts, wall(day + pd.Timedelta(days=1), arr_h, zone), a)
        d = wall(day, dep_h, zone)
        for k in (1, 2):
            d = np.where(d <= a, wall(day + pd.Timedelta(days=k), dep_h, zone), d)
        arrival[m], departure[m] = a, d
    return arrival, departure


def build_problem(
    spec: FleetSpec,
    start_ts: float,
    forecasts: SiteForecasts,
    tariff: Tariff,
    *,
    n_steps: int = 96,
    state: InitialState | None = None,
    windows: Sequence[SupportWindow] = (),
    wear_per_kwh: float = 0.0,
    soc_end: str | float | None = None,
    typical_ev_sessions: bool = True,
    fleet_import_cap_kw: float | FloatArray = np.inf,
    fleet_export_cap_kw: float | FloatArray = np.inf,
    step_h: float = STEP_H,
    thermal_best_effort: bool = False,
    envelopes: Sequence[Envelope] = (),
    grid_codes: bool | Mapping[str, Profile] = True,
) -> PlanProblem:
    """Resolve a fleet, its forecasts and its state into a :class:`PlanProblem`.

    ``soc_end``: None leaves the batteries' final state of charge free, ``"initial"``
    asks for at least the initial one, a number for at least that fraction. EV chargers
    with no session in ``state`` get their typical session (``arrival_hour``,
    ``departure_hour``, ``session_kwh`` in the site's time zone) when
    ``typical_ev_sessions``, else no car. Sites that opted out keep their devices idle
    (batteries, EVs and thermal loads at their own defaults are still planned, since the
    customer's rules hold regardless; opt-out is the dispatcher's matter).
    ``thermal_best_effort``: a house or tank that leaves its band whatever its device does
    (a hot day for a pump that cannot cool) is planned at the device's utmost where the
    band cannot be kept, and listed in ``PlanProblem.notes``; otherwise ``solve`` refuses
    the plan naming it.
    ``envelopes``: the grid operator's operating envelopes over the horizon; each step's
    site and node limits become ``min(static, the strictest envelope in the step)``
    (``fleet.envelopes.grid_limits``, §14a floors included), hard limits of the LP.
    ``grid_codes``: each site's grid code (``gridcode.site_codes``) limits its plan: its
    export cap tightens the site's export limit, its generation cap (EREC G98) bounds
    what its generators give together (beyond what its renewables give on their own),
    its power rate limit (AS/NZS 4777.2) bounds each battery's change per step. False
    leaves codes out; a mapping of code to profile replaces the shipped profiles.
    """
    problems: list[Problem] = []
    n_sites0 = len(spec.sites)
    rules = (
        plan_rules(site_codes(spec.sites), None if grid_codes is True else grid_codes)
        if grid_codes is not False
        else plan_rules(np.full(n_sites0, "", dtype=object), {})
    )
    if n_steps <= 0:
        raise ValidationError([Problem(_SRC, "", "n_steps", f"must be positive, got {n_steps}")])
    if not np.isfinite(start_ts):
        raise ValidationError([Problem(_SRC, "", "start_ts", "must be a finite UTC epoch")])
    state = state or InitialState.empty()
    sites_df = spec.sites
    n_sites = len(sites_df)
    site_pos = pd.Index(sites_df["id"].to_numpy(dtype=object))
    load = _site_array("load_kw", forecasts.load_kw, n_sites, n_steps, problems)
    pv = _site_array("pv_kw", forecasts.pv_kw, n_sites, n_steps, problems)
    wind = _site_array("wind_kw", forecasts.wind_kw, n_sites, n_steps, problems)
    t_out = _site_array("t_out_c", forecasts.t_out_c, n_sites, n_steps, problems)
    gain = _site_array("gain_kw", forecasts.gain_kw, n_sites, n_steps, problems)
    hot_water = _site_array("hot_water_kw", forecasts.hot_water_kw, n_sites, n_steps, problems)
    cop_site = (
        None
        if forecasts.cop is None
        else _site_array("cop", forecasts.cop, n_sites, n_steps, problems)
    )
    for name, arr in (("load_kw", load), ("pv_kw", pv), ("wind_kw", wind)):
        if (arr < 0).any():
            problems.append(
                Problem(_SRC, "forecasts", name, "must be >= 0 (a magnitude in kW), got < 0")
            )
    for name, arr in (("import_price", tariff.import_price), ("export_price", tariff.export_price)):
        if np.shape(arr) != (n_sites, n_steps) or not np.isfinite(arr).all():
            problems.append(
                Problem(
                    _SRC,
                    "tariff",
                    name,
                    f"must be finite, shape ({n_sites}, {n_steps}), got {np.shape(arr)}",
                )
            )
    if not problems and (tariff.export_price > tariff.import_price + 1e-12).any():
        s, t = np.argwhere(tariff.export_price > tariff.import_price + 1e-12)[0]
        problems.append(
            Problem(
                _SRC,
                f"site {sites_df['id'].iloc[s]}",
                "export_price",
                f"is above the import price at step {t}; an LP plan needs import >= export "
                "price at every step (clip the export price to the import price)",
            )
        )

    kinds = [k for k in DeviceKind if len(spec.devices.get(k, ()))]
    frames = [spec.devices[k] for k in kinds]
    device_ids = (
        np.concatenate([f["id"].to_numpy(dtype=object) for f in frames])
        if frames
        else np.zeros(0, dtype=object)
    )
    device_kinds = (
        np.concatenate(
            [np.full(len(f), k.value, dtype=object) for k, f in zip(kinds, frames, strict=True)]
        )
        if frames
        else np.zeros(0, dtype=object)
    )
    device_site = (
        site_pos.get_indexer(
            np.concatenate([f["site_id"].to_numpy(dtype=object) for f in frames])
        ).astype(np.int64)
        if frames
        else np.zeros(0, np.int64)
    )
    offsets = dict(zip(kinds, np.cumsum([0] + [len(f) for f in frames])[:-1], strict=True))

    def part(kind: DeviceKind) -> tuple[pd.DataFrame, IntArray, IntArray]:
        df = spec.devices.get(kind)
        if df is None or not len(df):
            return pd.DataFrame(), np.zeros(0, np.int64), np.zeros(0, np.int64)
        rows = offsets[kind] + np.arange(len(df), dtype=np.int64)
        return df, rows, device_site[rows]

    step_start = start_ts + np.arange(n_steps) * step_h * 3600.0
    step_end = step_start + step_h * 3600.0

    # batteries
    df, rows, site = part(DeviceKind.BATTERY)
    if len(rows):
        soc0 = _state_column(
            state, df["id"].to_numpy(object), state.soc, df["soc_initial"].to_numpy(float)
        )
        floor = np.maximum(df["soc_min"].to_numpy(float), df["soc_reserve"].to_numpy(float))
        soc_max = df["soc_max"].to_numpy(float)
        if soc_end is None:
            end = np.full(len(rows), np.nan)
        elif soc_end == "initial":
            end = np.clip(soc0, floor, soc_max)
        else:
            end = np.clip(np.full(len(rows), float(soc_end)), floor, soc_max)
        bats = Batteries(
            rows,
            site,
            df["e_kwh"].to_numpy(float),
            df["p_charge_max_kw"].to_numpy(float),
            df["p_discharge_max_kw"].to_numpy(float),
            df["eta_charge"].to_numpy(float),
            df["eta_discharge"].to_numpy(float),
            floor,
            soc_max,
            soc0,
            end,
            np.full(len(rows), float(wear_per_kwh)),
            rules.ramp_pu_per_s[site]
            * np.maximum(
                df["p_charge_max_kw"].to_numpy(float), df["p_discharge_max_kw"].to_numpy(float)
            ),
        )
    else:
        z = np.zeros(0)
        bats = Batteries(rows, site, z, z, z, z, z, z, z, z, z, z)

    # EV chargers
    df, rows, site = part(DeviceKind.EV_CHARGER)
    if len(rows):
        ids = df["id"].to_numpy(object)
        if typical_ev_sessions:
            arr_d, dep_d = _typical_sessions(df, sites_df["tz"].to_numpy(object)[site], start_ts)
            need_d = df["session_kwh"].to_numpy(float)
        else:
            arr_d = dep_d = np.full(len(rows), start_ts)
            need_d = np.zeros(len(rows))
        known = _state_column(state, ids, state.departure_ts, np.full(len(rows), np.nan))
        has_session = np.isfinite(known)
        need = np.where(
            has_session, _state_column(state, ids, state.e_need_kwh, np.zeros(len(rows))), need_d
        )
        arrival = np.where(
            has_session,
            _state_column(state, ids, state.arrival_ts, np.full(len(rows), start_ts)),
            arr_d,
        )
        departure = np.where(has_session, known, dep_d)
        plugged = (step_start[None, :] >= arrival[:, None] - 1e-6) & (
            step_end[None, :] <= departure[:, None] + 1e-6
        )
        need = np.maximum(np.nan_to_num(need), 0.0)
        p_max, eta = df["p_max_kw"].to_numpy(float), df["eta"].to_numpy(float)
        horizon_end = float(step_end[-1])
        after_h = np.maximum(departure - np.maximum(arrival, horizon_end), 0.0) / 3600.0
        e_min = np.clip(need - eta * p_max * after_h, 0.0, need)
        evs = EVChargers(rows, site, p_max, eta, need, plugged, e_min)
    else:
        z = np.zeros(0)
        evs = EVChargers(rows, site, z, z, z, np.zeros((0, n_steps), bool), z)

    # thermal: heat pumps then water heaters
    hp, hp_rows, hp_site = part(DeviceKind.HEAT_PUMP)
    wh, wh_rows, wh_site = part(DeviceKind.WATER_HEATER)
    parts_th: list[dict[str, np.ndarray]] = []
    if len(hp_rows):
        to = t_out[hp_site]
        # the twin's direction under command: heating in the heating season
        # (t_out < t_heat_c - 3); otherwise a reversible pump cools (its house is above
        # the setpoints' midpoint when gains warm it, which is when it needs to act) and
        # a non-reversible one heats
        heat = to < hp["t_heat_c"].to_numpy(float)[:, None] - 3.0
        cool = ~heat & (hp["can_cool"].to_numpy(bool)[:, None])
        heat = ~cool
        mode = heat.astype(float) - cool.astype(float)
        cop = (
            np.broadcast_to(hp["cop_nominal"].to_numpy(float)[:, None], to.shape)
            if cop_site is None
            else cop_site[hp_site]
        )
        a, b = bands.rc_step(
            hp["ua_kw_per_k"].to_numpy(float), hp["c_kwh_per_k"].to_numpy(float), step_h
        )
        default_t = np.where(
            mode.mean(axis=1) < 0, hp["t_cool_c"].to_numpy(float), hp["t_heat_c"].to_numpy(float)
        )
        t0 = _state_column(state, hp["id"].to_numpy(object), state.temp_c, default_t)
        n_per_site = np.bincount(hp_site, minlength=n_sites)[hp_site][:, None]
        parts_th.append(
            {
                "row": hp_rows,
                "site": hp_site,
                "hp": np.ones(len(hp_rows), bool),
                "p_max": hp["p_elec_max_kw"].to_numpy(float),
                "a": a,
                "b": b,
                "t0": t0,
                "t_min": hp["t_min_c"].to_numpy(float),
                "t_max": hp["t_max_c"].to_numpy(float),
                "k": mode * np.maximum(cop, 1.0),
                "env": to,
                "q": gain[hp_site] / n_per_site,
            }
        )
    if len(wh_rows):
        a, b = bands.rc_step(
            wh["loss_kw_per_k"].to_numpy(float),
            wh["volume_l"].to_numpy(float) * bands.WATER_KWH_PER_L_K,
            step_h,
        )
        t0 = _state_column(
            state, wh["id"].to_numpy(object), state.temp_c, wh["t_set_c"].to_numpy(float)
        )
        n_per_site = np.bincount(wh_site, minlength=n_sites)[wh_site][:, None]
        parts_th.append(
            {
                "row": wh_rows,
                "site": wh_site,
                "hp": np.zeros(len(wh_rows), bool),
                "p_max": wh["p_element_kw"].to_numpy(float),
                "a": a,
                "b": b,
                "t0": t0,
                "t_min": wh["t_min_c"].to_numpy(float),
                "t_max": wh["t_max_c"].to_numpy(float),
                "k": np.ones((len(wh_rows), n_steps)),
                "env": np.full((len(wh_rows), n_steps), bands.T_TANK_AMBIENT_C),
                "q": -hot_water[wh_site] / n_per_site,
            }
        )
    if parts_th:
        cat = {k: np.concatenate([p[k] for p in parts_th]) for k in parts_th[0]}
        thermal = Thermal(
            cat["row"].astype(np.int64),
            cat["site"].astype(np.int64),
            cat["hp"].astype(bool),
            cat["p_max"],
            cat["a"],
            cat["b"],
            cat["t0"],
            cat["t_min"],
            cat["t_max"],
            cat["k"],
            cat["env"],
            cat["q"],
        )
    else:
        z, zz = np.zeros(0), np.zeros((0, n_steps))
        thermal = Thermal(
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros(0, bool),
            z,
            z,
            z,
            z,
            z,
            z,
            zz,
            zz,
            zz,
        )

    # renewables: each site's PV (wind) forecast shared by rated output
    ren_parts = []
    for kind, fc in ((DeviceKind.PV, pv), (DeviceKind.WIND, wind)):
        df, rows, site = part(kind)
        if len(rows):
            cap = (
                df["kwp"].to_numpy(float)
                if kind == DeviceKind.PV
                else df["rated_kw"].to_numpy(float)
            )
            share = _share(site, cap, n_sites)
            ren_parts.append(
                (rows, site, df["curtailable"].to_numpy(bool), fc[site] * share[:, None])
            )
    if ren_parts:
        renewables = Renewables(
            np.concatenate([p[0] for p in ren_parts]),
            np.concatenate([p[1] for p in ren_parts]),
            np.concatenate([p[2] for p in ren_parts]),
            np.concatenate([p[3] for p in ren_parts]),
        )
    else:
        renewables = Renewables(
            np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool), np.zeros((0, n_steps))
        )
    # sites with PV or wind forecast but no device: the forecast still counts as generation
    load_share = np.zeros(len(device_ids))
    df, rows, site = part(DeviceKind.LOAD)
    if len(rows):
        load_share[rows] = _share(site, df["annual_kwh"].to_numpy(float), n_sites)
    no_pv = np.ones(n_sites, bool)
    no_pv[renewables.site[np.isin(renewables.row, part(DeviceKind.PV)[1])]] = False
    no_wind = np.ones(n_sites, bool)
    no_wind[renewables.site[np.isin(renewables.row, part(DeviceKind.WIND)[1])]] = False
    load = load - np.where(no_pv[:, None], pv, 0.0) - np.where(no_wind[:, None], wind, 0.0)

    nodes = spec.grid_nodes
    node_pos = pd.Index(nodes["id"].to_numpy(dtype=object))
    parent = node_pos.get_indexer(nodes["parent"].to_numpy(dtype=object))
    chain = [np.arange(len(nodes), dtype=np.int64)]
    for _ in range(64):
        prev = chain[-1]
        nxt = np.where(prev >= 0, parent[np.maximum(prev, 0)], -1)
        if (nxt < 0).all():
            break
        chain.append(nxt)
    node_imp = np.repeat(nodes["limit_import_kw"].to_numpy(float)[:, None], n_steps, axis=1)
    node_exp = np.repeat(nodes["limit_export_kw"].to_numpy(float)[:, None], n_steps, axis=1)
    site_imp: FloatArray = sites_df["import_limit_kw"].to_numpy(float)
    site_exp: FloatArray = sites_df["export_limit_kw"].to_numpy(float)
    if envelopes:
        topo = GridTopology.from_spec(spec)
        ctrl = np.zeros(n_sites, np.int64)
        for name in PARA14A_KINDS:
            df_k = spec.devices.get(DeviceKind(name))
            if df_k is not None and len(df_k):
                idx = site_pos.get_indexer(df_k["site_id"].to_numpy(dtype=object))
                np.add.at(ctrl, idx[idx >= 0], 1)
        edges: FloatArray = float(start_ts) + step_h * 3600.0 * np.arange(n_steps + 1.0)
        lim = grid_limits(topo, envelopes, edges, ctrl)
        node_imp, node_exp = lim.node_import_kw, lim.node_export_kw
        site_imp, site_exp = lim.site_import_kw, lim.site_export_kw
    if np.isfinite(rules.export_cap_kw).any():  # the code's own export cap
        cap = rules.export_cap_kw
        site_exp = np.minimum(site_exp, cap if site_exp.ndim == 1 else cap[:, None])
    grid = Grid(
        nodes["id"].to_numpy(dtype=object),
        np.stack(chain, axis=1).astype(np.int64) if len(nodes) else np.zeros((0, 1), np.int64),
        node_imp,
        node_exp,
        np.broadcast_to(np.asarray(fleet_import_cap_kw, float), (n_steps,)).copy(),
        np.broadcast_to(np.asarray(fleet_export_cap_kw, float), (n_steps,)).copy(),
    )
    sites = Sites(
        sites_df["id"].to_numpy(dtype=object),
        node_pos.get_indexer(sites_df["grid_node"].to_numpy(dtype=object)).astype(np.int64),
        site_imp,
        site_exp,
        load,
        rules.gen_cap_kw,
    )
    for w in windows:
        if not 0 <= w.start < w.end <= n_steps:
            problems.append(
                Problem(
                    _SRC,
                    "support window",
                    "start/end",
                    f"must satisfy 0 <= start < end <= {n_steps}, got [{w.start}, {w.end})",
                )
            )
        if w.node is not None and w.node not in node_pos:
            problems.append(
                Problem(_SRC, "support window", "node", f"unknown grid node {w.node!r}")
            )
    if problems:
        raise ValidationError(problems)
    pb = PlanProblem(
        start_ts=float(start_ts),
        n_steps=n_steps,
        device_ids=device_ids,
        device_kinds=device_kinds,
        device_site=device_site,
        sites=sites,
        grid=grid,
        tariff=tariff,
        batteries=bats,
        evs=evs,
        thermal=thermal,
        renewables=renewables,
        windows=tuple(windows),
        load_share=load_share,
        step_h=step_h,
    )
    if thermal_best_effort and len(thermal):
        dead, first, floor, ceil = thermal_reach(pb)
        if dead.any():
            notes = tuple(
                Problem(
                    _SRC,
                    f"{'heat_pump' if thermal.is_heat_pump[i] else 'water_heater'} "
                    f"{device_ids[thermal.row[i]]}",
                    "t_min_c/t_max_c",
                    f"leaves its band [{thermal.t_min_c[i]:g}, {thermal.t_max_c[i]:g}] degC "
                    f"from step {first[i]} whatever the device does; planned at its utmost "
                    "there",
                )
                for i in np.flatnonzero(dead)
            )
            thermal = dataclasses.replace(thermal, t_floor_c=floor, t_ceil_c=ceil)
            pb = dataclasses.replace(pb, thermal=thermal, notes=notes)
    return pb
