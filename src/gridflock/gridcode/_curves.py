"""The responses a profile's curves ask for: volt-var, volt-watt and frequency droop.

Pure functions over arrays, the same evaluation a device applies to the settings it is
pushed (``device_settings``) and the twin applies to its devices; checked against EPRI's
OpenDER model for IEEE 1547-2018 in the tests.
"""

from __future__ import annotations

import numpy as np

from gridflock.domain.messages import FloatArray
from gridflock.gridcode._model import Curve, FrequencyProduct, FreqWatt

__all__ = ["curve_value", "droop_p_pu", "product_response"]


def curve_value(curve: Curve, x: FloatArray | float) -> FloatArray:
    """The curve's ordinate at ``x`` [pu]: linear between points, flat beyond them."""
    out: FloatArray = np.interp(np.asarray(x, dtype=np.float64), curve.x, curve.y)
    return out


def droop_p_pu(
    fw: FreqWatt, f_nom_hz: float, f_hz: FloatArray | float, p_pre_pu: FloatArray | float
) -> FloatArray:
    """Active power a frequency-watt function asks for [pu of rated], before limits.

    Over-frequency beyond ``f_nom + db_over``: ``p_pre - (f - f_nom - db) / (f_nom k)``;
    under-frequency (where the code asks it) the mirror image upwards. Inside the
    deadband the pre-disturbance power ``p_pre_pu`` holds. The caller clips to what the
    device can do (a PV system cannot rise above what the sun gives).
    """
    f = np.asarray(f_hz, dtype=np.float64)
    p = np.asarray(p_pre_pu, dtype=np.float64) + np.zeros_like(f)
    over = f - f_nom_hz - fw.db_over_hz
    p = np.where(over > 0, p - over / (f_nom_hz * fw.droop_over), p)
    if fw.db_under_hz is not None and fw.droop_under is not None:
        under = f_nom_hz - fw.db_under_hz - f
        p = np.where(under > 0, p + under / (f_nom_hz * fw.droop_under), p)
    return p


def product_response(prod: FrequencyProduct, f_hz: FloatArray | float) -> FloatArray:
    """Fraction of contracted power a frequency product asks for [-1, 1].

    Positive for under-frequency (give more: export more or import less), negative for
    over-frequency; zero inside the deadband, ``knee_pu`` at ``knee_hz``, one from
    ``full_hz`` on.
    """
    dev = prod.f_nom_hz - np.asarray(f_hz, dtype=np.float64)  # > 0 under-frequency
    mag = np.interp(
        np.abs(dev),
        [prod.deadband_hz, prod.knee_hz, prod.full_hz],
        [0.0, prod.knee_pu, 1.0],
        left=0.0,
        right=1.0,
    )
    out: FloatArray = np.sign(dev) * mag
    return out
