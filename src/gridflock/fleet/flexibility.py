"""Flexibility: how many kW each device can move up or down *and hold for a duration*.

"Up" is more export or less import, "down" the reverse; both are returned as
non-negative kW relative to the device's baseline. Each kind's formula runs on its
contiguous slice of the fleet state, from capability, live state and the customer's
constraints (backup reserve, EV departure, comfort band, tank band, curtailability).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridflock.domain.kinds import DeviceKind
from gridflock.domain.messages import FloatArray
from gridflock.fleet.state import FleetState

__all__ = ["Flexibility", "flexibility"]

_EPS = 1e-9


@dataclass(frozen=True)
class Flexibility:
    """Per-device headroom [kW, >= 0] sustainable for ``duration_h`` from ``now``."""

    up_kw: FloatArray
    down_kw: FloatArray
    baseline_kw: FloatArray
    duration_h: float
    now: float

    def headroom(self, up: bool) -> FloatArray:
        """Headroom in the requested direction."""
        return self.up_kw if up else self.down_kw


def flexibility(state: FleetState, duration_h: float, now: float) -> Flexibility:
    """Compute every device's up/down flexibility held over ``[now, now + duration_h)``.

    Offline devices, plain loads and devices at opted-out sites have none.
    """
    if not duration_h > 0:
        raise ValueError(f"duration_h must be > 0 hours, got {duration_h}")
    n = state.n
    up = np.zeros(n)
    down = np.zeros(n)
    base = state.baseline_kw()
    ks = state.kind_slices
    t = float(duration_h)

    _battery(state, ks[DeviceKind.BATTERY], base, t, up, down)
    for kind in (DeviceKind.PV, DeviceKind.WIND):
        s = ks[kind]
        avail = np.maximum(base[s], 0.0)
        down[s] = np.where(state.curtailable[s], avail, 0.0)
    _ev(state, ks[DeviceKind.EV_CHARGER], base, t, now, up, down)
    _heat_pump(state, ks[DeviceKind.HEAT_PUMP], base, t, up, down)
    _water_heater(state, ks[DeviceKind.WATER_HEATER], base, t, up, down)

    usable = state.online & ~state.grid.site_opt_out[state.site_idx]
    up *= usable
    down *= usable
    return Flexibility(up, down, base, t, now)


def _battery(
    st: FleetState, s: slice, base: FloatArray, t: float, up: FloatArray, down: FloatArray
) -> None:
    """Energy-limited: discharge down to max(soc_min, reserve), charge up to soc_max."""
    e, soc = st.e_kwh[s], st.soc[s]
    floor = np.maximum(st.soc_min[s], st.soc_reserve[s])
    out_kwh = np.maximum(soc - floor, 0.0) * e * st.eta_discharge[s]
    in_kwh = np.maximum(st.soc_max[s] - soc, 0.0) * e / st.eta_charge[s]
    p_out = np.minimum(st.p_gen_max_kw[s], out_kwh / t)
    p_in = np.minimum(st.p_load_max_kw[s], in_kwh / t)
    b = base[s]
    up[s] = np.maximum(p_out - b, 0.0)
    down[s] = np.maximum(b + p_in, 0.0)


def _ev(
    st: FleetState,
    s: slice,
    base: FloatArray,
    t: float,
    now: float,
    up: FloatArray,
    down: FloatArray,
) -> None:
    """Defer or advance charging while the car still leaves with the energy it needs."""
    need = np.nan_to_num(st.extras["e_need_kwh"][s], nan=0.0)
    dep = st.extras["departure_ts"][s]
    t_left = np.nan_to_num(np.maximum(dep - now, 0.0) / 3600.0, nan=0.0, posinf=0.0)
    plugged = (need > 0) & (t_left > 0)
    p_max, eta = st.p_load_max_kw[s], st.eta_charge[s]
    t_eff = np.maximum(np.minimum(t, t_left), _EPS)
    after = np.maximum(t_left - t, 0.0)
    p_required = np.clip((need / eta - p_max * after) / t_eff, 0.0, p_max)
    p_possible = np.minimum(p_max, need / eta / t_eff)
    charging = np.maximum(-base[s], 0.0)
    up[s] = np.where(plugged, np.maximum(charging - p_required, 0.0), 0.0)
    down[s] = np.where(plugged, np.maximum(p_possible - charging, 0.0), 0.0)


def _heat_pump(
    st: FleetState, s: slice, base: FloatArray, t: float, up: FloatArray, down: FloatArray
) -> None:
    """Thermal inertia: how far the compressor may move before the comfort band is left.

    Over the window the indoor temperature moves by ``(UA (T_out - T_in) + s COP P) t / C``
    (s = +1 heating, -1 cooling); the comfort band bounds the average power P.
    """
    t_in, t_out = st.extras["t_in_c"][s], st.extras["t_out_c"][s]
    cop = np.where(np.isfinite(st.extras["cop"][s]), st.extras["cop"][s], st.cop_nominal[s])
    ua, c = st.ua_kw_per_k[s], st.c_kwh_per_k[s]
    known = np.isfinite(t_in) & np.isfinite(t_out)
    t_in, t_out = np.nan_to_num(t_in), np.nan_to_num(t_out)
    cooling = st.can_cool[s] & (t_out > t_in)
    drift = t_in + ua * (t_out - t_in) * t / c
    scale = c / (np.maximum(cop, 1.0) * t)
    lo_heat = (st.t_min_c[s] - drift) * scale
    hi_heat = (st.t_max_c[s] - drift) * scale
    p_lo = np.where(cooling, -hi_heat, lo_heat)
    p_hi = np.where(cooling, -lo_heat, hi_heat)
    p_max = st.p_load_max_kw[s]
    p_lo = np.clip(p_lo, 0.0, p_max)
    p_hi = np.clip(p_hi, 0.0, p_max)
    running = np.maximum(-base[s], 0.0)
    up[s] = np.where(known, np.maximum(running - p_lo, 0.0), 0.0)
    down[s] = np.where(known, np.maximum(p_hi - running, 0.0), 0.0)


def _water_heater(
    st: FleetState, s: slice, base: FloatArray, t: float, up: FloatArray, down: FloatArray
) -> None:
    """Tank as a thermal store between its temperature limits, net of draw and losses."""
    t_tank = st.extras["t_tank_c"][s]
    known = np.isfinite(t_tank)
    t_tank = np.nan_to_num(t_tank)
    cap = st.tank_kwh_per_k[s]
    draw = np.nan_to_num(st.extras["draw_kw"][s], nan=0.0)
    loss = st.loss_kw_per_k[s] * np.maximum(t_tank - 20.0, 0.0)
    p_lo = (st.t_min_c[s] - t_tank) * cap / t + draw + loss
    p_hi = (st.t_max_c[s] - t_tank) * cap / t + draw + loss
    p_max = st.p_load_max_kw[s]
    p_lo = np.clip(p_lo, 0.0, p_max)
    p_hi = np.clip(p_hi, 0.0, p_max)
    running = np.maximum(-base[s], 0.0)
    up[s] = np.where(known, np.maximum(running - p_lo, 0.0), 0.0)
    down[s] = np.where(known, np.maximum(p_hi - running, 0.0), 0.0)
