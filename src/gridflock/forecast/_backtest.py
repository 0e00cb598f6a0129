"""Rolling-origin backtests: day-ahead and intraday, against seasonal naive and persistence."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from gridflock.forecast._model import TrainConfig
from gridflock.forecast._types import FloatArray, History, WeatherSource

__all__ = ["BacktestConfig", "BacktestReport", "SeriesResult", "backtest"]


@dataclass(frozen=True)
class BacktestConfig:
    """Which origins to test and how often to retrain.

    Attributes
    ----------
    test_days : int
        Final local days held out; every day-ahead origin (D-1 at the issue hour) and every
        intraday origin (each ``intraday_every`` within those days) is forecast with models
        trained only on data before it.
    retrain_every_days : int
        Models are retrained (expanding window) every this many test days.
    intraday_every_h : float [h]
        Spacing of intraday origins in the backtest (the service issues every 15 min; a
        coarser spacing gives the same statistics faster).
    horizons : tuple of str
        ``day_ahead`` and/or ``intraday``.
    groups : tuple of str
        Groupings whose totals are scored too (``fleet``, ``grid_node``, ...).

    """

    test_days: int = 14
    retrain_every_days: int = 7
    intraday_every_h: float = 3.0
    horizons: tuple[str, ...] = ("day_ahead", "intraday")
    groups: tuple[str, ...] = ("fleet",)
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass
class SeriesResult:
    """Scores of one series (a site's quantity, or a group total) at one horizon.

    ``metrics`` maps names (mae, nmae, rmse, pinball, crps, coverage_p10_p90,
    peak_time_error_min, peak_within_30min, mae_seasonal_naive, mae_persistence,
    skill_seasonal_naive, skill_persistence, relative_mae_p1_p99, one_minus_wape) to
    values; ``y``, ``p`` (quantiles), ``times`` are the scored points for plots.
    """

    series: str
    horizon: str
    metrics: dict[str, float]
    times: pd.DatetimeIndex
    y: FloatArray
    p: FloatArray


@dataclass
class BacktestReport:
    """Every series' scores, plus notes on how they were made (perfect weather, ...)."""

    results: list[SeriesResult]
    quantiles: tuple[float, ...]
    notes: list[str] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        """One row per series and horizon, one column per metric."""
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        """Metrics and notes as plain JSON types."""
        raise NotImplementedError


def backtest(
    history: History,
    weather: WeatherSource,
    config: BacktestConfig | None = None,
) -> BacktestReport:
    """Rolling-origin backtest of every series of ``history`` (and the configured groups)."""
    raise NotImplementedError
