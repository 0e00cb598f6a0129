"""Power bands of the built-in device kinds: what each can hold over a duration.

A band is ``(floor_kw, ceiling_kw)`` per device in the generator sign (export > 0): any
constant power in it can be held for the whole ``duration_h`` without breaking a device
or customer limit, given the device's state and conditions as last reported. Flexibility
follows from it generically: ``up = ceiling - baseline`` and ``down = baseline - floor``,
each clipped at zero (``fleet.flexibility``). NaN marks a device whose state is unknown.

Each function takes the columns of one kind's devices (capability attributes, live
``soc``, ``p_kw``, ``baseline_kw`` and the kind's telemetry extras, see
``domain.kinds.KindDecl``) and works on whole arrays. The thermal bands use the exact
solution of the same first-order models the digital twin steps, gains and losses
included, so a promised power keeps the house in its comfort band and the tank in its
temperature band over the hold (for the conditions reported at the start).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from gridflock.domain.messages import BoolArray, FloatArray

__all__ = [
    "COMFORT_MARGIN_K_PER_H",
    "COMFORT_MARGIN_MAX_K",
    "T_TANK_AMBIENT_C",
    "WATER_KWH_PER_L_K",
    "battery_band",
    "ev_charger_band",
    "heat_pump_band",
    "rc_step",
    "renewable_band",
    "water_heater_band",
]

Columns = Mapping[str, FloatArray]

#: Margin a heat pump's promise keeps from the comfort band's edges per hour of hold [K/h],
#: and at most [K]: the band takes the outdoor temperature and gains as reported, and the
#: weather moves during a long hold (a warming morning, the sun coming out).
COMFORT_MARGIN_K_PER_H = 0.15
COMFORT_MARGIN_MAX_K = 0.6
#: Volumetric heat capacity of water [kWh/(l K)].
WATER_KWH_PER_L_K = 4.186 / 3600.0
#: Temperature around a water heater's tank [degC] (its standing losses go there).
T_TANK_AMBIENT_C = 20.0
_EPS = 1e-9


def _clip(x: FloatArray, lo: float | FloatArray, hi: float | FloatArray) -> FloatArray:
    """``np.clip`` without its overhead (several times faster on large arrays)."""
    out: FloatArray = np.minimum(np.maximum(x, lo), hi)
    return out


def rc_step(ua: FloatArray, c: FloatArray, dt_h: float) -> tuple[FloatArray, FloatArray]:
    """Exact step ``T1 = a T0 + (1 - a) T_env + b q`` of ``C dT/dt = UA (T_env - T) + q``.

    Returns ``(a [1], b [K/kW])``; ``b`` tends to ``dt/C`` as ``UA`` tends to 0. Shared by
    the bands and the twin's thermal physics, so both solve the same model.
    """
    x = ua * dt_h / c
    a = np.exp(-x)
    # (1 - a) / UA loses digits only for tiny x, where the series takes over (1e-9 relative);
    # not expm1: it costs as much again as exp, on the fleet-scale path
    small = x <= 1e-4
    if not small.any():
        b: FloatArray = (1.0 - a) / ua
        return a, b
    b = np.where(small, dt_h / c * (1.0 - 0.5 * x), (1.0 - a) / np.where(small, 1.0, ua))
    return a, b


def battery_band(c: Columns, duration_h: float, now: float) -> tuple[FloatArray, FloatArray]:
    """Energy-limited: discharge down to max(soc_min, reserve), charge up to soc_max."""
    e, soc = c["e_kwh"], c["soc"]
    floor_soc = np.maximum(c["soc_min"], c["soc_reserve"])
    out_kwh = np.maximum(soc - floor_soc, 0.0) * e * c["eta_discharge"]
    in_kwh = np.maximum(c["soc_max"] - soc, 0.0) * e / c["eta_charge"]
    ceiling = np.minimum(c["p_gen_max_kw"], out_kwh / duration_h)
    floor = -np.minimum(c["p_load_max_kw"], in_kwh / duration_h)
    return floor, ceiling


def renewable_band(c: Columns, duration_h: float, now: float) -> tuple[FloatArray, FloatArray]:
    """PV and wind: never above what is available now; down to zero if curtailable."""
    avail = np.maximum(c["baseline_kw"], 0.0)
    return np.where(c["curtailable"] > 0.5, 0.0, avail), avail


def ev_charger_band(c: Columns, duration_h: float, now: float) -> tuple[FloatArray, FloatArray]:
    """Defer or advance charging while the car still leaves with the energy it needs.

    Ceiling (least charging): what must still flow during the hold so that charging at full
    power afterwards fills the car by departure, raised to the charger's minimum current
    where it is positive (a charger asked for less pauses). Floor (most charging): what
    the car can take for the whole hold, only if it stays plugged in that long and at
    least the minimum current. Unplugged chargers hold their baseline.
    """
    need = np.fmax(c["e_need_kwh"], 0.0)  # fmax: NaN (not reported) -> 0
    t_left = np.fmax((c["departure_ts"] - now) / 3600.0, 0.0)  # [h]; an unknown departure: 0
    plugged = (need > 0) & (t_left > 0)
    p_max, p_min, eta = c["p_load_max_kw"], c["p_min_kw"], c["eta"]
    t = float(duration_h)
    t_eff = np.maximum(np.minimum(t, t_left), _EPS)
    after = np.maximum(t_left - t, 0.0)
    p_required = _clip((need / eta - p_max * after) / t_eff, 0.0, p_max)
    p_required = np.where(p_required > _EPS, np.maximum(p_required, np.minimum(p_min, p_max)), 0.0)
    p_possible = np.where(t_left >= t, np.minimum(p_max, need / eta / t), 0.0)
    p_possible = np.where(p_possible >= p_min, p_possible, 0.0)
    p_possible = np.maximum(p_possible, p_required)
    base = c["baseline_kw"]
    return np.where(plugged, -p_possible, base), np.where(plugged, -p_required, base)


def heat_pump_band(c: Columns, duration_h: float, now: float) -> tuple[FloatArray, FloatArray]:
    """Electrical power that keeps the house in its comfort band for the whole hold.

    The house is the twin's one-node model ``C dT/dt = UA (T_out - T) + s COP P + gains``
    (s = +1 heating, -1 cooling, as reported in ``cooling``). Its exact solution over the
    hold at constant power bounds P so the end temperature lies in ``[t_min_c, t_max_c]``,
    less a margin for the weather moving during the hold (``COMFORT_MARGIN_K_PER_H``); the
    temperature moves monotonically, so the whole hold does. A house already outside its
    band, or one the pump cannot keep inside at any power, offers nothing.
    """
    t_in, t_out = c["t_in_c"], c["t_out_c"]
    gain = np.fmax(c["gain_kw"], 0.0)  # NaN (not reported) -> no gains
    cop = np.where(np.isfinite(c["cop"]), c["cop"], c["cop_nominal"])
    cop = np.maximum(cop, 1.0)
    cooling = np.where(
        np.isfinite(c["cooling"]), c["cooling"] > 0.5, (c["can_cool"] > 0.5) & (t_out > t_in)
    )
    a, b = rc_step(c["ua_kw_per_k"], c["c_kwh_per_k"], float(duration_h))
    free = a * t_in + (1.0 - a) * t_out + b * gain  # end temperature with the pump off
    width = c["t_max_c"] - c["t_min_c"]
    margin = np.minimum(
        min(COMFORT_MARGIN_K_PER_H * float(duration_h), COMFORT_MARGIN_MAX_K), 0.25 * width
    )
    q_lo = (c["t_min_c"] + margin - free) / b  # pump heat [kW thermal] to the band's edges
    q_hi = (c["t_max_c"] - margin - free) / b
    p_lo = np.where(cooling, -q_hi, q_lo) / cop
    p_hi = np.where(cooling, -q_lo, q_hi) / cop
    p_max = c["p_load_max_kw"]
    inside = (t_in >= c["t_min_c"]) & (t_in <= c["t_max_c"])  # False where NaN
    return _band_or_base(c, inside & (p_hi >= 0.0) & (p_lo <= p_max), p_lo, p_hi, p_max)


def water_heater_band(c: Columns, duration_h: float, now: float) -> tuple[FloatArray, FloatArray]:
    """Element power that keeps the tank in its temperature band for the whole hold.

    The tank is the twin's fully mixed model ``C dT/dt = P - draw - loss (T - 20 degC)``
    with the draw as last reported; bounded by its exact solution as for heat pumps.
    """
    t_tank = c["t_tank_c"]
    draw = np.fmax(c["draw_kw"], 0.0)  # NaN (not reported) -> no draw
    a, b = rc_step(c["loss_kw_per_k"], c["tank_kwh_per_k"], float(duration_h))
    free = a * t_tank + (1.0 - a) * T_TANK_AMBIENT_C - b * draw
    p_lo = (c["t_min_c"] - free) / b
    p_hi = (c["t_max_c"] - free) / b
    p_max = c["p_load_max_kw"]
    inside = (t_tank >= c["t_min_c"]) & (t_tank <= c["t_max_c"])  # False where NaN
    return _band_or_base(c, inside & (p_hi >= 0.0) & (p_lo <= p_max), p_lo, p_hi, p_max)


def _band_or_base(
    c: Columns, feasible: BoolArray, p_lo: FloatArray, p_hi: FloatArray, p_max: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """A thermal load's band from its lowest and highest power, in the generator sign.

    Where no power keeps its band (or no temperature was reported) the band collapses to
    the baseline: the device offers nothing either way.
    """
    base = c["baseline_kw"]
    ceiling = np.where(feasible, -_clip(p_lo, 0.0, p_max), base)
    floor = np.where(feasible, -_clip(p_hi, 0.0, p_max), base)
    return floor, ceiling
