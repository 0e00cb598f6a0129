"""Batteries: one step of state of charge at a requested power."""

from __future__ import annotations

import numpy as np

from gridflock.sim.physics._types import ArrayLike, FloatArray


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
