"""Thermal models: heat pump COP, 1R1C house, thermostats and electric water heaters."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from gridflock.sim.physics._types import ArrayLike, BoolArray, FloatArray

#: Sink temperature of heating (flow) and of cooling (indoor coil) [degC].
T_SINK_HEAT_C = 35.0
T_SINK_COOL_C = 12.0
#: Outdoor temperature at which ``cop_nominal`` is rated, heating and cooling [degC].
T_RATED_HEAT_C = 7.0
T_RATED_COOL_C = 35.0
#: Smallest temperature lift used in the Carnot factor [K] (keeps it finite).
MIN_LIFT_K = 5.0
COP_MIN, COP_MAX = 1.0, 8.0
_KELVIN = 273.15


def _carnot_heat(t_out_c: FloatArray) -> FloatArray:
    lift = np.maximum(T_SINK_HEAT_C - t_out_c, MIN_LIFT_K)
    return (T_SINK_HEAT_C + _KELVIN) / lift


def _carnot_cool(t_out_c: FloatArray) -> FloatArray:
    lift = np.maximum(t_out_c - T_SINK_COOL_C, MIN_LIFT_K)
    return (T_SINK_COOL_C + _KELVIN) / lift


def cop(t_out_c: ArrayLike, cop_nominal: ArrayLike, heating: ArrayLike) -> FloatArray:
    """Coefficient of performance of air-source heat pumps (heating) or EER (cooling) [1].

    A fixed fraction of the Carnot COP: heating sink 35 degC, cooling sink 12 degC,
    scaled so heating at 7 degC outdoor and cooling at 35 degC outdoor give
    ``cop_nominal``; clipped to [1, 8].

    Parameters
    ----------
    t_out_c : array (n,) [degC]
        Outdoor (source or sink) air temperature.
    cop_nominal : array (n,) [1]
        COP at the rated point (heating at 7 degC, cooling at 35 degC outdoor).
    heating : bool array (n,)
        True for heating, False for cooling.

    """
    t_out = np.asarray(t_out_c, dtype=np.float64)
    nominal = np.asarray(cop_nominal, dtype=np.float64)
    rated_heat = _carnot_heat(np.asarray(T_RATED_HEAT_C))
    rated_cool = _carnot_cool(np.asarray(T_RATED_COOL_C))
    value = np.where(
        np.asarray(heating, dtype=bool),
        nominal * _carnot_heat(t_out) / rated_heat,
        nominal * _carnot_cool(t_out) / rated_cool,
    )
    return np.asarray(np.clip(value, COP_MIN, COP_MAX), dtype=np.float64)


def _rc_coefficients(ua: FloatArray, c: FloatArray, dt_h: float) -> tuple[FloatArray, FloatArray]:
    """Exact first-order step ``T1 = a*T0 + (1-a)*T_out + b*q`` of ``C dT/dt = UA(T_out-T)+q``.

    Returns (a [1], b [K/kW]); b tends to dt/C as UA tends to 0.
    """
    x = ua * dt_h / c
    a = np.exp(-x)
    safe_ua = np.where(ua > 0, ua, 1.0)
    b = np.where(ua > 0, -np.expm1(-x) / safe_ua, dt_h / c)
    return a, b


def house_step(
    t_in_c: ArrayLike,
    t_out_c: ArrayLike,
    q_hp_kw_th: ArrayLike,
    ua_kw_per_k: ArrayLike,
    c_kwh_per_k: ArrayLike,
    dt_h: float,
    q_gain_kw: ArrayLike = 0.0,
) -> FloatArray:
    """Indoor temperature after one step of a one-node (1R1C) house [degC].

    Exact solution of ``C dT/dt = UA (T_out - T) + q_hp + q_gain`` with constant inputs
    over the step, so it is stable for any ``dt_h``.

    Parameters
    ----------
    t_in_c : array (n,) [degC]
        Indoor temperature at the start of the step.
    t_out_c : array (n,) [degC]
        Outdoor temperature over the step.
    q_hp_kw_th : array (n,) [kW thermal]
        Heat delivered by the heat pump: > 0 heats, < 0 cools.
    ua_kw_per_k : array (n,) [kW/K], >= 0
        Heat loss coefficient.
    c_kwh_per_k : array (n,) [kWh/K], > 0
        Thermal capacitance.
    dt_h : float [h]
        Step length (any).
    q_gain_kw : array (n,) [kW thermal]
        Other gains (sun, people, appliances).

    """
    t_in = np.asarray(t_in_c, dtype=np.float64)
    t_out = np.asarray(t_out_c, dtype=np.float64)
    q = np.asarray(q_hp_kw_th, dtype=np.float64) + np.asarray(q_gain_kw, dtype=np.float64)
    a, b = _rc_coefficients(
        np.asarray(ua_kw_per_k, dtype=np.float64), np.asarray(c_kwh_per_k, dtype=np.float64), dt_h
    )
    return np.asarray(a * t_in + (1.0 - a) * t_out + b * q, dtype=np.float64)


def heat_pump_mode(
    t_in_c: ArrayLike,
    t_out_c: ArrayLike,
    t_heat_c: ArrayLike,
    t_cool_c: ArrayLike,
    can_cool: ArrayLike,
) -> npt.NDArray[np.int8]:
    """What each heat pump is doing: +1 heating, -1 cooling, 0 idle [1].

    Heating in the heating season, ``t_out < t_heat_c - 3``. Otherwise a reversible pump
    (``can_cool``) cools when it is hot outside (``t_out > t_cool_c``) or the house is
    above its cooling setpoint (internal and solar gains can overheat a house on a mild
    day). Thermal power delivered to the house is ``mode * p_elec * cop``.

    Parameters
    ----------
    t_in_c : array (n,) [degC]
        Indoor temperature.
    t_out_c : array (n,) [degC]
        Outdoor temperature.
    t_heat_c : array (n,) [degC]
        Heating setpoint.
    t_cool_c : array (n,) [degC]
        Cooling setpoint.
    can_cool : bool array (n,)
        Whether the heat pump is reversible.

    """
    t_out = np.asarray(t_out_c, dtype=np.float64)
    t_cool = np.asarray(t_cool_c, dtype=np.float64)
    heat = t_out < np.asarray(t_heat_c, dtype=np.float64) - 3.0
    hot = (t_out > t_cool) | (np.asarray(t_in_c, dtype=np.float64) > t_cool)
    cool = ~heat & np.asarray(can_cool, dtype=bool) & hot
    return np.asarray(heat.astype(np.int8) - cool.astype(np.int8), dtype=np.int8)


def thermostat_heat_pump(
    t_in_c: ArrayLike,
    t_out_c: ArrayLike,
    p_elec_max_kw: ArrayLike,
    cop_nominal: ArrayLike,
    ua: ArrayLike,
    c: ArrayLike,
    t_heat_c: ArrayLike,
    t_cool_c: ArrayLike,
    can_cool: ArrayLike,
    dt_h: float,
    *,
    q_gain_kw: ArrayLike = 0.0,
) -> FloatArray:
    """Electrical power a modulating heat pump draws to hold its setpoint [kW >= 0].

    In the mode given by :func:`heat_pump_mode` the pump delivers the heat (or cold)
    that brings the house exactly to the setpoint at the end of the step (from the exact
    solution of :func:`house_step`), clipped to [0, p_elec_max_kw]; it never heats above
    ``t_heat_c`` nor cools below ``t_cool_c``.

    Parameters
    ----------
    t_in_c : array (n,) [degC]
        Indoor temperature at the start of the step.
    t_out_c : array (n,) [degC]
        Outdoor temperature over the step.
    p_elec_max_kw : array (n,) [kW]
        Largest electrical input.
    cop_nominal : array (n,) [1]
        See :func:`cop`.
    ua : array (n,) [kW/K]
        Heat loss coefficient of the house.
    c : array (n,) [kWh/K]
        Thermal capacitance of the house.
    t_heat_c : array (n,) [degC]
        Heating setpoint.
    t_cool_c : array (n,) [degC]
        Cooling setpoint.
    can_cool : bool array (n,)
        Whether the heat pump is reversible.
    dt_h : float [h]
        Step length.
    q_gain_kw : array (n,) [kW thermal]
        Other gains the thermostat compensates (as in :func:`house_step`).

    """
    t_in = np.asarray(t_in_c, dtype=np.float64)
    t_out = np.asarray(t_out_c, dtype=np.float64)
    mode = heat_pump_mode(t_in, t_out, t_heat_c, t_cool_c, can_cool)
    heating = mode > 0
    target = np.where(
        heating, np.asarray(t_heat_c, dtype=np.float64), np.asarray(t_cool_c, dtype=np.float64)
    )
    a, b = _rc_coefficients(np.asarray(ua, dtype=np.float64), np.asarray(c, dtype=np.float64), dt_h)
    q_needed = (target - a * t_in - (1.0 - a) * t_out) / b - np.asarray(q_gain_kw, dtype=float)
    p = mode * q_needed / cop(t_out, cop_nominal, heating)  # > 0 when the season's work is due
    p = np.where(mode != 0, p, 0.0)
    return np.asarray(np.clip(p, 0.0, np.asarray(p_elec_max_kw, dtype=np.float64)), np.float64)


#: Volumetric heat capacity of water [kWh/(l K)].
WATER_KWH_PER_L_K = 4.186 / 3600.0


def water_heater_step(
    t_tank_c: ArrayLike,
    p_element_kw: ArrayLike,
    draw_kw_th: ArrayLike,
    volume_l: ArrayLike,
    loss_kw_per_k: ArrayLike,
    t_ambient_c: ArrayLike,
    dt_h: float,
    *,
    t_cold_c: float = 10.0,
) -> FloatArray:
    """Tank temperature after one step of a fully mixed water heater [degC].

    Exact solution of ``C dT/dt = p_element - draw - loss (T - T_ambient)`` with
    ``C = volume_l * 4.186 / 3600`` kWh/K; the tank never cools below the cold mains
    water that replaces what is drawn.

    Parameters
    ----------
    t_tank_c : array (n,) [degC]
        Tank temperature at the start of the step.
    p_element_kw : array (n,) [kW]
        Electrical = thermal power of the element.
    draw_kw_th : array (n,) [kW thermal]
        Heat carried away by hot water use.
    volume_l : array (n,) [l]
        Tank volume.
    loss_kw_per_k : array (n,) [kW/K]
        Standing loss coefficient.
    t_ambient_c : array (n,) [degC]
        Temperature around the tank.
    dt_h : float [h]
        Step length (any).
    t_cold_c : float [degC]
        Cold mains water temperature, the floor of the tank temperature.

    """
    c = np.asarray(volume_l, dtype=np.float64) * WATER_KWH_PER_L_K
    q = np.asarray(p_element_kw, dtype=np.float64) - np.asarray(draw_kw_th, dtype=np.float64)
    a, b = _rc_coefficients(np.asarray(loss_kw_per_k, dtype=np.float64), c, dt_h)
    t_new = (
        a * np.asarray(t_tank_c, dtype=np.float64)
        + (1.0 - a) * np.asarray(t_ambient_c, dtype=np.float64)
        + b * q
    )
    return np.asarray(np.maximum(t_new, t_cold_c), dtype=np.float64)


def thermostat_water_heater(
    t_tank_c: ArrayLike,
    t_set_c: ArrayLike,
    p_element_max_kw: ArrayLike,
    hysteresis_k: ArrayLike,
    on_state: ArrayLike,
) -> tuple[FloatArray, BoolArray]:
    """Bang-bang thermostat of an electric water heater; returns (power [kW], new on state).

    The element switches on below ``t_set_c - hysteresis_k``, off at or above ``t_set_c``,
    and otherwise keeps its state.

    Parameters
    ----------
    t_tank_c : array (n,) [degC]
        Tank temperature.
    t_set_c : array (n,) [degC]
        Setpoint, where the element switches off.
    p_element_max_kw : array (n,) [kW]
        Element power when on.
    hysteresis_k : array (n,) [K]
        The element switches on below ``t_set_c - hysteresis_k``.
    on_state : bool array (n,)
        Whether the element was on during the previous step.

    """
    t = np.asarray(t_tank_c, dtype=np.float64)
    t_set = np.asarray(t_set_c, dtype=np.float64)
    on = np.asarray(on_state, dtype=bool)
    new_on = np.where(t < t_set - np.asarray(hysteresis_k, dtype=np.float64), True, on)
    new_on = new_on & (t < t_set)
    p = np.where(new_on, np.asarray(p_element_max_kw, dtype=np.float64), 0.0)
    return np.asarray(p, dtype=np.float64), np.asarray(new_on, dtype=bool)
