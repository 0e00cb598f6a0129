"""Forecast accuracy metrics: pure functions of arrays; points with a NaN target are skipped.

Definitions follow common practice: nMAE divides by the mean absolute actual value;
OpenSTEF's relative MAE divides by the P1-P99 range of the actual values; FlexMeasures'
accuracy is 1 - WAPE (sum of absolute errors over sum of absolute actuals); the CRPS is
approximated from the quantiles as twice their mean pinball loss; skill is
1 - MAE / MAE of a reference.
"""

from __future__ import annotations

import numpy as np

from gridflock.forecast._types import FloatArray

__all__ = [
    "coverage",
    "crps_quantiles",
    "mae",
    "nmae",
    "one_minus_wape",
    "peak_timing_error_min",
    "pinball",
    "relative_mae_range",
    "rmse",
    "skill",
]


def _pair(y: FloatArray, p: FloatArray) -> tuple[FloatArray, FloatArray]:
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    y, p = np.broadcast_arrays(y, p)
    ok = ~(np.isnan(y) | np.isnan(p))
    return y[ok], p[ok]


def mae(y: FloatArray, p: FloatArray) -> float:
    """Mean absolute error [unit of y]; NaN if no point is known."""
    yy, pp = _pair(y, p)
    return float(np.mean(np.abs(yy - pp))) if len(yy) else float("nan")


def rmse(y: FloatArray, p: FloatArray) -> float:
    """Root mean square error [unit of y]."""
    yy, pp = _pair(y, p)
    return float(np.sqrt(np.mean((yy - pp) ** 2))) if len(yy) else float("nan")


def nmae(y: FloatArray, p: FloatArray) -> float:
    """MAE divided by the mean absolute value of y [1]."""
    yy, pp = _pair(y, p)
    denom = float(np.mean(np.abs(yy))) if len(yy) else 0.0
    return float(np.mean(np.abs(yy - pp))) / denom if denom > 0 else float("nan")


def relative_mae_range(y: FloatArray, p: FloatArray) -> float:
    """MAE divided by y's P1-P99 range (OpenSTEF's relative MAE) [1]."""
    yy, pp = _pair(y, p)
    if not len(yy):
        return float("nan")
    rng = float(np.percentile(yy, 99) - np.percentile(yy, 1))
    return float(np.mean(np.abs(yy - pp))) / rng if rng > 0 else float("nan")


def one_minus_wape(y: FloatArray, p: FloatArray) -> float:
    """1 - sum|y - p| / sum|y| (FlexMeasures' accuracy) [1]."""
    yy, pp = _pair(y, p)
    denom = float(np.sum(np.abs(yy)))
    return 1.0 - float(np.sum(np.abs(yy - pp))) / denom if denom > 0 else float("nan")


def pinball(y: FloatArray, q_values: FloatArray, quantiles: tuple[float, ...]) -> float:
    """Mean pinball (quantile) loss over points and quantiles [unit of y].

    ``q_values`` has y's shape plus a trailing axis of ``len(quantiles)``.
    """
    y = np.asarray(y, dtype=np.float64)
    qv = np.asarray(q_values, dtype=np.float64)
    if qv.shape != (*y.shape, len(quantiles)):
        raise ValueError(f"q_values has shape {qv.shape}, need {(*y.shape, len(quantiles))}")
    ok = ~np.isnan(y) & ~np.isnan(qv).any(axis=-1)
    if not ok.any():
        return float("nan")
    diff = y[ok][:, None] - qv[ok]
    q = np.asarray(quantiles)[None, :]
    return float(np.mean(np.maximum(q * diff, (q - 1.0) * diff)))


def crps_quantiles(y: FloatArray, q_values: FloatArray, quantiles: tuple[float, ...]) -> float:
    """CRPS approximated by twice the mean pinball loss over the quantiles [unit of y]."""
    return 2.0 * pinball(y, q_values, quantiles)


def coverage(y: FloatArray, lo: FloatArray, hi: FloatArray) -> float:
    """Share of known y within [lo, hi] [1]."""
    y = np.asarray(y, dtype=np.float64)
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    ok = ~(np.isnan(y) | np.isnan(lo) | np.isnan(hi))
    if not ok.any():
        return float("nan")
    return float(np.mean((y[ok] >= lo[ok]) & (y[ok] <= hi[ok])))


def peak_timing_error_min(
    y: FloatArray, p: FloatArray, steps_per_day: int, step_min: float = 15.0
) -> FloatArray:
    """Per whole day: |time of the forecast's daily maximum - the actual one's| [min].

    ``y`` and ``p`` are 1-D, starting at a day's first step; a trailing part day is
    ignored, and a day with a missing actual value gives NaN. For net import, pass the
    import (``-net``) so the peak is the largest import.
    """
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError("y and p must be 1-D of the same length")
    n_days = len(y) // steps_per_day
    if n_days == 0:
        return np.zeros(0)
    yy = y[: n_days * steps_per_day].reshape(n_days, steps_per_day)
    pp = p[: n_days * steps_per_day].reshape(n_days, steps_per_day)
    bad = np.isnan(yy).any(axis=1) | np.isnan(pp).any(axis=1)
    ty = np.argmax(np.nan_to_num(yy, nan=-np.inf), axis=1)
    tp = np.argmax(np.nan_to_num(pp, nan=-np.inf), axis=1)
    err = np.abs(ty - tp).astype(np.float64) * step_min
    return np.where(bad, np.nan, err)


def skill(mae_model: float, mae_reference: float) -> float:
    """1 - MAE / MAE of a reference (seasonal naive, persistence) [1]; > 0 is better."""
    if not np.isfinite(mae_reference) or mae_reference <= 0:
        return float("nan")
    return 1.0 - mae_model / mae_reference
