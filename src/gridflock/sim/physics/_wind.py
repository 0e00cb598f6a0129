"""Wind: windpowerlib power curves (offline) and turbine output at hub height."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import windpowerlib
from windpowerlib import wind_speed as _wind_speed

from gridflock.sim.physics._types import ArrayLike, FloatArray

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
