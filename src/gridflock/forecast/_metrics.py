"""Forecast accuracy metrics (pure functions of arrays; NaN targets are skipped)."""

from __future__ import annotations

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


def mae(y: FloatArray, p: FloatArray) -> float:
    """Mean absolute error [unit of y]."""
    raise NotImplementedError


def rmse(y: FloatArray, p: FloatArray) -> float:
    """Root mean square error."""
    raise NotImplementedError


def nmae(y: FloatArray, p: FloatArray) -> float:
    """MAE divided by the mean absolute value of y [1]."""
    raise NotImplementedError


def relative_mae_range(y: FloatArray, p: FloatArray) -> float:
    """MAE divided by y's P1-P99 range (OpenSTEF's relative MAE) [1]."""
    raise NotImplementedError


def one_minus_wape(y: FloatArray, p: FloatArray) -> float:
    """1 - sum|e| / sum|y| (FlexMeasures' accuracy figure) [1]."""
    raise NotImplementedError


def pinball(y: FloatArray, q_values: FloatArray, quantiles: tuple[float, ...]) -> float:
    """Mean pinball loss over quantiles; q_values has a trailing quantile axis."""
    raise NotImplementedError


def crps_quantiles(y: FloatArray, q_values: FloatArray, quantiles: tuple[float, ...]) -> float:
    """CRPS approximated by twice the mean pinball loss over the quantiles."""
    raise NotImplementedError


def coverage(y: FloatArray, lo: FloatArray, hi: FloatArray) -> float:
    """Share of y within [lo, hi] [1]."""
    raise NotImplementedError


def peak_timing_error_min(
    y: FloatArray, p: FloatArray, steps_per_day: int, step_min: float = 15.0
) -> FloatArray:
    """Per day: |time of the forecast's daily maximum - time of the actual one| [min]."""
    raise NotImplementedError


def skill(mae_model: float, mae_reference: float) -> float:
    """1 - MAE / MAE of a reference (seasonal naive, persistence) [1]."""
    raise NotImplementedError
