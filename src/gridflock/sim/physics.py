"""Device physics of the digital twin as pure, vectorised step functions.

Every function takes NumPy arrays over devices (shape (n,), scalars broadcast) and returns
new arrays; none keeps state or loops over devices. Powers are magnitudes unless a
docstring says otherwise; the caller applies the generator sign convention.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pvlib
import windpowerlib
from windpowerlib import wind_speed as _wind_speed

from gridflock.sim.weather import Weather

__all__ = [
    "battery_step",
    "cop",
    "ev_sessions",
    "heat_pump_mode",
    "house_step",
    "pv_profiles",
    "thermostat_heat_pump",
    "thermostat_water_heater",
    "water_draw_profile",
    "water_heater_step",
    "wind_power_curve",
    "wind_power_kw",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]
ArrayLike = npt.ArrayLike

# --------------------------------------------------------------------------- PV

#: Orientation bins of :func:`pv_profiles` [deg].
TILT_BIN_DEG = 5.0
AZIMUTH_BIN_DEG = 15.0
_N_AZ_BINS = round(360.0 / AZIMUTH_BIN_DEG)
#: PVWatts temperature coefficient of DC power [1/K].
GAMMA_PDC = -0.004
#: Nominal inverter efficiency (PVWatts inverter model).
ETA_INVERTER = 0.96
#: SAPM cell temperature parameters: modules rack-mounted close to a roof.
_SAPM = pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"]["close_mount_glass_glass"]


def pv_profiles(
    weather: Weather,
    tilt_deg: ArrayLike,
    azimuth_deg: ArrayLike,
    lat: float,
    lon: float,
) -> tuple[FloatArray, IntArray]:
    """AC output per kWp of each orientation bin, and each array's bin [kW/kWp].

    Orientations are binned (tilt to 5 deg, azimuth to 15 deg), so memory is
    O(T * bins + n). Per bin: Hay-Davies transposition to the plane of array, physical
    IAM on the beam, SAPM cell temperature (close roof mount), PVWatts DC with
    gamma -0.4 %/K, PVWatts inverter with 1 kW AC per kWp and 96 % nominal efficiency.
    System losses are not applied: output of array i at step t is
    ``kwp[i] * (1 - loss[i]) * profiles[t, bin_index[i]]``.

    Parameters
    ----------
    weather : Weather
        Irradiance, sun position, air temperature and wind over T steps.
    tilt_deg : array (n,) [deg]
        Tilt from horizontal, 0..90.
    azimuth_deg : array (n,) [deg]
        Clockwise from north (180 = south).
    lat : float [deg]
        Site latitude; unused, the sun's position already is in ``weather``.
    lon : float [deg]
        Site longitude; unused, as ``lat``.

    Returns
    -------
    profiles : array (T, n_bins) [kW/kWp], >= 0
    bin_index : int array (n,)

    """
    del lat, lon  # the solar position in ``weather`` already encodes the site
    tilt = np.clip(np.asarray(tilt_deg, dtype=np.float64), 0.0, 90.0)
    azimuth = np.asarray(azimuth_deg, dtype=np.float64) % 360.0
    tilt_i = np.rint(tilt / TILT_BIN_DEG).astype(np.intp)
    az_i = np.rint(azimuth / AZIMUTH_BIN_DEG).astype(np.intp) % _N_AZ_BINS
    keys, bin_index = np.unique(tilt_i * _N_AZ_BINS + az_i, return_inverse=True)
    bin_tilt = (keys // _N_AZ_BINS) * TILT_BIN_DEG
    bin_az = (keys % _N_AZ_BINS) * AZIMUTH_BIN_DEG

    col = np.newaxis
    zenith = weather.solar_zenith[:, col]
    sun_az = weather.solar_azimuth[:, col]
    doy = weather.times.day_of_year.to_numpy()
    dni_extra = np.asarray(pvlib.irradiance.get_extra_radiation(doy), dtype=np.float64)[:, col]
    with np.errstate(invalid="ignore", divide="ignore"):
        poa = pvlib.irradiance.get_total_irradiance(
            bin_tilt[col, :],
            bin_az[col, :],
            zenith,
            sun_az,
            weather.dni[:, col],
            weather.ghi[:, col],
            weather.dhi[:, col],
            dni_extra=dni_extra,
            model="haydavies",
        )
        aoi = pvlib.irradiance.aoi(bin_tilt[col, :], bin_az[col, :], zenith, sun_az)
        iam = pvlib.iam.physical(aoi)
    direct = np.nan_to_num(np.asarray(poa["poa_direct"], dtype=np.float64), nan=0.0)
    diffuse = np.nan_to_num(np.asarray(poa["poa_diffuse"], dtype=np.float64), nan=0.0)
    iam = np.nan_to_num(np.asarray(iam, dtype=np.float64), nan=0.0)
    poa_global = np.maximum(direct + diffuse, 0.0)
    effective = np.maximum(direct * iam + diffuse, 0.0)
    temp_cell = pvlib.temperature.sapm_cell(
        poa_global,
        weather.temp_air_c[:, col],
        weather.wind_speed_m_s[:, col],
        _SAPM["a"],
        _SAPM["b"],
        _SAPM["deltaT"],
    )
    pdc = np.maximum(pvlib.pvsystem.pvwatts_dc(effective, temp_cell, 1.0, GAMMA_PDC), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        pac = pvlib.inverter.pvwatts(pdc, 1.0 / ETA_INVERTER, eta_inv_nom=ETA_INVERTER)
    profiles = np.maximum(np.nan_to_num(np.asarray(pac, dtype=np.float64), nan=0.0), 0.0)
    return profiles, bin_index.astype(np.intp)


# ------------------------------------------------------------------------- wind

_POWER_CURVES_CSV = Path(windpowerlib.__file__).parent / "oedb" / "power_curves.csv"


@lru_cache(maxsize=1)
def _power_curve_table() -> pd.DataFrame:
    """Windpowerlib's shipped power curves, one row per turbine type [W]."""
    return pd.read_csv(_POWER_CURVES_CSV, index_col=0)


@lru_cache(maxsize=64)
def wind_power_curve(turbine_type: str) -> tuple[FloatArray, FloatArray]:
    """Normalised power curve of a windpowerlib turbine type (offline library).

    Read from the power-curve table that windpowerlib ships (``oedb/power_curves.csv``),
    never the network.

    Returns
    -------
    wind_speed : array [m/s], increasing
    power : array [1]
        Power as a fraction of the curve's maximum (0..1), so ``power * rated_kw`` is a
        turbine of that shape rated ``rated_kw``.

    Raises
    ------
    ValueError
        If the type is not in the library (the message lists the known types).

    """
    table = _power_curve_table()
    if turbine_type not in table.index:
        known = ", ".join(sorted(map(str, table.index)))
        raise ValueError(f"unknown wind turbine type {turbine_type!r}; known types: {known}")
    row = table.loc[turbine_type].dropna()
    speed = np.asarray([float(s) for s in row.index], dtype=np.float64)
    power = np.asarray(row.to_numpy(), dtype=np.float64)
    order = np.argsort(speed, kind="stable")
    speed, power = speed[order], power[order]
    power = np.clip(power / power.max(), 0.0, 1.0)
    speed.setflags(write=False)
    power.setflags(write=False)
    return speed, power


def wind_power_kw(
    v10_m_s: float | ArrayLike,
    hub_height_m: ArrayLike,
    rated_kw: ArrayLike,
    curve: tuple[FloatArray, FloatArray],
    roughness_m: float = 0.1,
) -> FloatArray:
    """Electrical output of wind turbines [kW >= 0].

    The 10 m wind speed is carried to hub height with windpowerlib's logarithmic
    profile, then the normalised power curve is interpolated linearly (zero outside
    it, as windpowerlib does) and scaled by the rated power.

    Parameters
    ----------
    v10_m_s : float or array (n,) [m/s]
        Wind speed at 10 m.
    hub_height_m : array (n,) [m]
        Hub height above ground.
    rated_kw : array (n,) [kW]
        Rated power, reached at the top of the normalised curve.
    curve : (wind_speed [m/s], power [1])
        From :func:`wind_power_curve`.
    roughness_m : float [m]
        Surface roughness length.

    """
    v10 = np.asarray(v10_m_s, dtype=np.float64)
    hub = np.maximum(np.asarray(hub_height_m, dtype=np.float64), roughness_m * 1.01)
    v_hub = np.asarray(
        _wind_speed.logarithmic_profile(v10, 10.0, hub, roughness_m), dtype=np.float64
    )
    speed, power = curve
    frac = np.interp(v_hub, speed, power, left=0.0, right=0.0)
    return np.asarray(frac * np.asarray(rated_kw, dtype=np.float64), dtype=np.float64)


# ---------------------------------------------------------------------- battery


def battery_step(
    soc: ArrayLike,
    p_kw: ArrayLike,
    dt_h: float,
    e_kwh: ArrayLike,
    p_charge_max_kw: ArrayLike,
    p_discharge_max_kw: ArrayLike,
    eta_charge: ArrayLike,
    eta_discharge: ArrayLike,
    soc_min: ArrayLike,
    soc_max: ArrayLike,
) -> tuple[FloatArray, FloatArray]:
    """Advance batteries one step at a requested power; returns (new soc, actual power).

    Parameters
    ----------
    soc : array (n,) [1]
        State of charge at the start of the step.
    p_kw : array (n,) [kW]
        Requested power at the grid side, generator convention: > 0 discharges,
        < 0 charges. Clipped to the power limits and to what the SoC allows.
    dt_h : float [h]
        Step length.
    e_kwh : array (n,) [kWh]
        Usable capacity; a battery with 0 kWh does nothing.
    p_charge_max_kw : array (n,) [kW >= 0]
        Charging power limit.
    p_discharge_max_kw : array (n,) [kW >= 0]
        Discharging power limit.
    eta_charge : array (n,) [1], in (0, 1]
        Stored energy changes by ``-p * eta_charge * dt`` when charging.
    eta_discharge : array (n,) [1], in (0, 1]
        Stored energy changes by ``-p / eta_discharge * dt`` when discharging.
    soc_min : array (n,) [1]
        Lowest state of charge allowed.
    soc_max : array (n,) [1]
        Highest state of charge allowed.

    Returns
    -------
    new_soc : array (n,) [1]
        Within [soc_min, soc_max] when ``soc`` was; a battery outside its band is only
        allowed to move towards it.
    actual_p_kw : array (n,) [kW], generator convention

    """
    soc_a = np.asarray(soc, dtype=np.float64)
    e = np.asarray(e_kwh, dtype=np.float64)
    eta_c = np.asarray(eta_charge, dtype=np.float64)
    eta_d = np.asarray(eta_discharge, dtype=np.float64)
    lo = np.asarray(soc_min, dtype=np.float64)
    hi = np.asarray(soc_max, dtype=np.float64)
    if dt_h <= 0:
        raise ValueError(f"dt_h must be positive, got {dt_h}")
    p = np.clip(
        np.asarray(p_kw, dtype=np.float64),
        -np.asarray(p_charge_max_kw, dtype=np.float64),
        np.asarray(p_discharge_max_kw, dtype=np.float64),
    )
    # Energy the SoC band allows over the step, converted to grid-side power.
    p_dis_soc = np.maximum(soc_a - lo, 0.0) * e * eta_d / dt_h
    p_chg_soc = np.maximum(hi - soc_a, 0.0) * e / (eta_c * dt_h)
    p = np.clip(p, -p_chg_soc, p_dis_soc)
    p = np.where(e > 0, p, 0.0)
    stored_kw = np.where(p > 0, p / eta_d, p * eta_c)  # power leaving the cells
    safe_e = np.where(e > 0, e, 1.0)
    new_soc = soc_a - stored_kw * dt_h / safe_e
    # Guard against round-off only: never create a new violation of the band.
    new_soc = np.clip(new_soc, np.minimum(soc_a, lo), np.maximum(soc_a, hi))
    return np.asarray(new_soc, dtype=np.float64), np.asarray(p, dtype=np.float64)


# ------------------------------------------------------------- thermal models

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


# -------------------------------------------------------------- hot water, EVs

#: Hot-water use: share of the day's draw in the morning and evening peaks, and their
#: local centre and spread [h]; the rest is spread evenly over the day.
_DRAW_PEAKS: tuple[tuple[float, float, float], ...] = ((0.45, 7.0, 1.0), (0.40, 19.5, 1.5))


def _local_hour(times: pd.DatetimeIndex, tz: str) -> FloatArray:
    local = times.tz_convert(tz)
    return np.asarray(local.hour + local.minute / 60.0 + local.second / 3600.0, dtype=np.float64)


def water_draw_profile(times: pd.DatetimeIndex, tz: str) -> FloatArray:
    """Daily shape of hot-water use at ``times`` [kW per kWh/day].

    Morning and evening peaks (wrapped Gaussians around 07:00 and 19:30 local time) on
    an even base; its integral over a local day is 1 kWh, so the caller multiplies by
    each home's daily draw [kWh/day] (and any per-home factor).

    Parameters
    ----------
    times : DatetimeIndex, tz-aware
        Start of each step.
    tz : str
        IANA time zone of the homes.

    """
    if times.tz is None:
        raise ValueError("times must be timezone-aware (UTC)")
    hour = _local_hour(times, tz)
    base_share = 1.0 - sum(share for share, _, _ in _DRAW_PEAKS)
    shape = np.full(len(hour), base_share / 24.0)
    for share, centre, sd in _DRAW_PEAKS:
        for wrap in (-24.0, 0.0, 24.0):
            z = (hour - centre - wrap) / sd
            shape += share * np.exp(-0.5 * z**2) / (sd * np.sqrt(2.0 * np.pi))
    return shape


#: Local arrival window of EV sessions [h] and the shortest plug-in time [h].
EV_ARRIVAL_WINDOW_H = (14.0, 23.5)
EV_MIN_PLUGGED_H = 1.0
EV_SESSION_KWH_BOUNDS = (1.0, 80.0)
EV_NO_SESSION_SHARE = 0.15
EV_SESSION_SIGMA = 0.4  # log-standard deviation of the session energy


def ev_sessions(
    n: int,
    rng: np.random.Generator,
    arrival_hour: ArrayLike,
    departure_hour: ArrayLike,
    session_kwh: ArrayLike,
    day_start_utc: pd.Timestamp,
    tz: str,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """One evening charging session per charger for the local day of ``day_start_utc``.

    Arrival ~ Normal(arrival_hour, 1.5 h) local time, clipped to 14:00-23:30 of that day;
    departure ~ Normal(departure_hour, 1 h) local time of the next morning, at least one
    hour after arrival; energy ~ lognormal with mean ``session_kwh``, clipped to [1, 80].
    About 15 % of chargers get no session: arrival and departure +inf, energy 0.

    Parameters
    ----------
    n : int
        Number of chargers.
    rng : numpy Generator
        Source of randomness.
    arrival_hour : array (n,) or float [h, local]
        Typical plug-in hour.
    departure_hour : array (n,) or float [h, local]
        Typical hour the car must be ready, next morning.
    session_kwh : array (n,) or float [kWh]
        Mean energy a session needs.
    day_start_utc : Timestamp, tz-aware
        Any instant of the day whose evening is simulated (its local date in ``tz``).
    tz : str
        IANA time zone of the chargers.

    Returns
    -------
    arrival_s, departure_s : array (n,) [s since the Unix epoch, UTC]
    energy_kwh : array (n,) [kWh]

    """
    start = pd.Timestamp(day_start_utc)
    if start.tz is None:
        raise ValueError("day_start_utc must be timezone-aware")
    local_day = start.tz_convert(tz).normalize()
    # Anchor hours on local noon of each day, which lies after any DST switch.
    noon0 = (local_day + pd.Timedelta(hours=12)).timestamp()
    noon1 = (local_day + pd.DateOffset(days=1) + pd.Timedelta(hours=12)).timestamp()

    arr_h = np.clip(
        rng.normal(np.broadcast_to(np.asarray(arrival_hour, dtype=np.float64), (n,)), 1.5),
        *EV_ARRIVAL_WINDOW_H,
    )
    dep_h = np.clip(
        rng.normal(np.broadcast_to(np.asarray(departure_hour, dtype=np.float64), (n,)), 1.0),
        0.0,
        24.0,
    )
    arrival = noon0 + (arr_h - 12.0) * 3600.0
    departure = np.maximum(noon1 + (dep_h - 12.0) * 3600.0, arrival + EV_MIN_PLUGGED_H * 3600.0)

    mean_kwh = np.broadcast_to(np.asarray(session_kwh, dtype=np.float64), (n,))
    mu = np.log(np.maximum(mean_kwh, 1e-9)) - EV_SESSION_SIGMA**2 / 2.0
    energy = np.clip(rng.lognormal(mu, EV_SESSION_SIGMA), *EV_SESSION_KWH_BOUNDS)

    none = rng.random(n) < EV_NO_SESSION_SHARE
    arrival = np.where(none, np.inf, arrival)
    departure = np.where(none, np.inf, departure)
    energy = np.where(none, 0.0, energy)
    return (
        np.asarray(arrival, dtype=np.float64),
        np.asarray(departure, dtype=np.float64),
        np.asarray(energy, dtype=np.float64),
    )
