"""Forecasting: load, PV, wind, heat, EV and net import, and when the grid will need the plant.

The public interface (pure: arrays in, arrays out; no database, no clock):

- :class:`History`, :class:`SiteAttributes`, :class:`WeatherSeries`: the inputs.
- :class:`WeatherLocations`: several places, each site takes its own (nearest or named).
- :class:`WeatherSource`: where weather forecasts come from (:class:`FileWeatherSource` reads
  recorded forecasts; ``gridflock.sim.forecast_weather.TwinWeatherSource`` is the twin's).
- :func:`train` -> :class:`ModelBundle` (global LightGBM quantile models per quantity,
  serialisable with :meth:`ModelBundle.to_bytes`), :func:`predict` -> :class:`Forecast`
  per site, :func:`aggregate` -> group forecasts, :func:`support_windows` ->
  :class:`SupportWindow` list.
- :func:`backtest` (rolling origin) -> :class:`BacktestReport`; metrics in ``metrics``.
- :func:`read_series_file`: a CSV/parquet of meters and weather -> History + WeatherSeries.

See docs/forecast.md.
"""

from gridflock.forecast import _metrics as metrics
from gridflock.forecast._aggregate import aggregate
from gridflock.forecast._backtest import BacktestConfig, BacktestReport, SeriesResult, backtest
from gridflock.forecast._files import (
    BadFileError,
    FileWeatherSource,
    SeriesFile,
    read_series_file,
    read_weather_forecasts,
)
from gridflock.forecast._locations import WeatherLocations
from gridflock.forecast._model import ModelBundle, TrainConfig, predict, train
from gridflock.forecast._peak import peak_step
from gridflock.forecast._support import exceedance_probability, support_windows
from gridflock.forecast._types import (
    FLEX_HOLD_H,
    FLEX_QUANTITIES,
    QUANTITIES,
    STEP,
    Forecast,
    History,
    HorizonName,
    SiteAttributes,
    SupportWindow,
    WeatherSeries,
    WeatherSource,
)

__all__ = [
    "FLEX_HOLD_H",
    "FLEX_QUANTITIES",
    "QUANTITIES",
    "STEP",
    "BacktestConfig",
    "BacktestReport",
    "BadFileError",
    "FileWeatherSource",
    "Forecast",
    "History",
    "HorizonName",
    "ModelBundle",
    "SeriesFile",
    "SeriesResult",
    "SiteAttributes",
    "SupportWindow",
    "TrainConfig",
    "WeatherLocations",
    "WeatherSeries",
    "WeatherSource",
    "aggregate",
    "backtest",
    "exceedance_probability",
    "metrics",
    "peak_step",
    "predict",
    "read_series_file",
    "read_weather_forecasts",
    "support_windows",
    "train",
]
