"""Files in: a table of meters (and weather) for a backtest, and recorded weather forecasts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gridflock.forecast._types import FloatArray, History, WeatherSeries

__all__ = ["FileWeatherSource", "SeriesFile", "read_series_file"]


@dataclass
class SeriesFile:
    """What :func:`read_series_file` found: the series, the weather and notes on both."""

    history: History
    weather: WeatherSeries
    notes: list[str] = field(default_factory=list)


def read_series_file(
    path: Path,
    *,
    timestamp: str | None = None,
    tz: str | None = None,
    weather_columns: tuple[str, ...] | None = None,
) -> SeriesFile:
    """Read a CSV or parquet of one timestamp column, value columns and weather columns.

    Values are resampled to 15-minute means (kW; energy columns are not guessed). Every
    problem is reported at once in a ``ValueError`` that says what to change.
    """
    raise NotImplementedError


class FileWeatherSource:
    """Recorded weather forecasts from a CSV/parquet: ``issued_at``, ``valid_at``, columns.

    For each (issue, valid) pair it answers with the latest run issued at or before the
    issue time that covers the valid time (so a backtest sees only what was known).
    """

    def __init__(self, path: Path) -> None:
        raise NotImplementedError

    @property
    def names(self) -> tuple[str, ...]:
        """The forecast columns."""
        raise NotImplementedError

    def forecast(self, issued_at: FloatArray, valid_at: FloatArray) -> dict[str, FloatArray]:
        """See :class:`gridflock.forecast.WeatherSource`."""
        del issued_at, valid_at
        return {"": np.zeros(0)}
