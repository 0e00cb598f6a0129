"""BDEW's H25 standard household load profile, on any time grid and wall clock.

German households are settled on standard load profiles (BDEW 2025, via demandlib's
H25 with its dynamisation over the year). The twin builds its homes' base load from it
(``sim.profiles``), and M&V uses it to follow the season's change of a day's shape
(``mv.baselines.household_profile``): one copy of the shape for both.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import pandas as pd
from demandlib.bdew import H25

__all__ = ["household_load_shape"]

FloatArray = npt.NDArray[np.float64]

_SLOT_MIN = 15.0  # resolution of the BDEW profile [min]
#: pandas' deprecation warnings that demandlib 0.2.2 triggers under pandas 3 (inplace=True).
_PANDAS_DEPRECATION: type[Warning] = getattr(pd.errors, "Pandas4Warning", FutureWarning)


@lru_cache(maxsize=8)
def _h25_year(year: int) -> FloatArray:
    """H25 for one local calendar year at 15 min, in kW per kWh of annual consumption."""
    start = pd.Timestamp(year=year, month=1, day=1)
    end = pd.Timestamp(year=year + 1, month=1, day=1)
    index = pd.date_range(start, end, freq="15min", inclusive="left")
    with warnings.catch_warnings():
        # demandlib's own use of ``inplace=True``; nothing we can fix from here.
        warnings.filterwarnings("ignore", category=_PANDAS_DEPRECATION, module=r"demandlib\.")
        values = np.asarray(H25(index), dtype=np.float64)
    values = values / (values.sum() * _SLOT_MIN / 60.0)
    values.setflags(write=False)
    return np.asarray(values, dtype=np.float64)


def household_load_shape(times: pd.DatetimeIndex, tz: str = "Europe/Berlin") -> FloatArray:
    """H25 household load shape at ``times`` [kW per kWh/year]; times annual_kwh gives kW.

    The profile is looked up in local wall-clock time ``tz`` (no public holidays). Each
    value is the mean over the step that starts at that time, of the 15-min profile
    smoothed by a 15-min moving average (which is the linear interpolation between slot
    centres): steps up to 15 min see no staircase, longer steps get the exact step mean.

    Parameters
    ----------
    times : DatetimeIndex, tz-aware
        Start of each step.
    tz : str
        IANA time zone whose wall clock the profile follows.

    Returns
    -------
    array (T,) [kW per kWh/year]
        Integrates to 1 kWh over a local calendar year.

    """
    if times.tz is None:
        raise ValueError("times must be timezone-aware (UTC)")
    if len(times) == 0:
        return np.empty(0)
    wall = times.tz_convert(tz).tz_localize(None)
    first_year, last_year = int(wall.year.min()), int(wall.year.max())
    values = np.concatenate([_h25_year(y) for y in range(first_year, last_year + 1)])
    # Cumulative energy at slot edges, so any window's mean is a difference.
    edges_min = _SLOT_MIN * np.arange(len(values) + 1)
    cum_kwh = np.concatenate([[0.0], np.cumsum(values) * _SLOT_MIN / 60.0])

    origin = pd.Timestamp(year=first_year, month=1, day=1)
    x_min = np.asarray((wall - origin).total_seconds(), dtype=np.float64) / 60.0
    if len(x_min) > 1:
        step_min = np.diff(x_min, append=x_min[-1] + (x_min[-1] - x_min[-2]))
        step_min = np.where(step_min > 0, step_min, _SLOT_MIN)  # DST fall-back repeats
    else:
        step_min = np.full(1, _SLOT_MIN)
    width = np.maximum(step_min, _SLOT_MIN)
    centre = x_min + step_min / 2.0
    lo = centre - width / 2.0
    hi = centre + width / 2.0
    mean_kw = (np.interp(hi, edges_min, cum_kwh) - np.interp(lo, edges_min, cum_kwh)) / (
        (hi - lo) / 60.0
    )
    # Outside the covered years np.interp clamps: fall back to the nearest slot value.
    edge = (lo < 0.0) | (hi > edges_min[-1])
    if edge.any():
        slot = np.clip((x_min[edge] // _SLOT_MIN).astype(np.int64), 0, len(values) - 1)
        mean_kw[edge] = values[slot]
    return np.asarray(mean_kw, dtype=np.float64)
