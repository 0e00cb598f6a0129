"""Global LightGBM quantile models: training, the model bundle, prediction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from gridflock.forecast._types import Forecast, History, HorizonName, WeatherSource

__all__ = ["ModelBundle", "TrainConfig", "predict", "train"]


@dataclass(frozen=True)
class TrainConfig:
    """How to train; the defaults suit a fleet of hundreds to thousands of sites.

    Attributes
    ----------
    quantiles : tuple of float
        Probability levels to forecast (at least 0.1, 0.5, 0.9).
    quantities : tuple of str or None
        Series to model (None: every series of the history).
    max_rows : int
        Training rows sampled per quantity (site x target step x issue time); bounds the
        training time whatever the fleet size.
    num_boost_round : int
        Boosting rounds per quantile model.
    learning_rate, num_leaves, min_data_in_leaf : LightGBM parameters
    intraday_hours : float [h]
        Length of the intraday horizon.
    issue_hour_local : float [h]
        Local hour at which day-ahead forecasts are issued (before noon) on D-1.
    calibration_days : int
        Final days of the training range held out to learn how the sites' errors correlate
        (for group quantiles) and how wide the bands must be; then the models are refit on
        everything.
    seed : int
        Row sampling and LightGBM seed.
    num_threads : int
        LightGBM threads.

    """

    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)
    quantities: tuple[str, ...] | None = None
    max_rows: int = 400_000
    num_boost_round: int = 200
    learning_rate: float = 0.08
    num_leaves: int = 63
    min_data_in_leaf: int = 50
    intraday_hours: float = 8.0
    issue_hour_local: float = 10.0
    calibration_days: int = 7
    seed: int = 0
    num_threads: int = 2


@dataclass(eq=False)
class ModelBundle:
    """Trained models of every quantity, with what is needed to use and judge them.

    ``models[quantity][i]`` is the LightGBM model text of ``quantiles[i]``. ``meta`` holds
    the version, the trained range, feature names, parameters, calibration figures and, once
    set by the caller, backtest figures. :meth:`to_bytes`/:meth:`from_bytes` round-trip it.
    """

    models: dict[str, list[str]]
    quantiles: tuple[float, ...]
    features: tuple[str, ...]
    config: TrainConfig
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        """Content hash of the models (stable across serialisation)."""
        raise NotImplementedError

    @property
    def quantities(self) -> tuple[str, ...]:
        """Quantities this bundle forecasts."""
        return tuple(self.models)

    def to_bytes(self) -> bytes:
        """Serialise (compressed JSON: metadata and model texts)."""
        raise NotImplementedError

    @classmethod
    def from_bytes(cls, data: bytes) -> ModelBundle:
        """Inverse of :meth:`to_bytes`; refuses data of another format version."""
        raise NotImplementedError


def train(
    history: History, weather: WeatherSource, config: TrainConfig | None = None
) -> ModelBundle:
    """Train one global quantile model per quantity and quantile over all sites.

    Parameters
    ----------
    history : History
        Measured series (at least 14 days; NaN gaps are skipped as targets).
    weather : WeatherSource
        Weather forecasts as they were known at each training issue time (the twin's or a
        file's); a :class:`WeatherSeries` of actuals works too (perfect forecasts).
    config : TrainConfig
        Defaults if None.

    """
    raise NotImplementedError


def predict(
    bundle: ModelBundle,
    history: History,
    weather: WeatherSource,
    issued_at: pd.Timestamp,
    horizon: HorizonName | pd.Timedelta = "day_ahead",
    *,
    quantities: tuple[str, ...] | None = None,
    tz: str | None = None,
) -> dict[str, Forecast]:
    """Quantile forecasts per site for each quantity, issued at ``issued_at``.

    Parameters
    ----------
    bundle : ModelBundle
        From :func:`train` (or :meth:`ModelBundle.from_bytes`).
    history : History
        What was measured up to ``issued_at``; anything later is ignored (the history is cut
        at ``issued_at`` here, so passing more cannot leak).
    weather : WeatherSource
        Forecasts known at ``issued_at``.
    issued_at : Timestamp, tz-aware
        Issue time.
    horizon : "intraday", "day_ahead" or Timedelta
        ``intraday``: from the next quarter hour for ``config.intraday_hours``;
        ``day_ahead``: the local day after ``issued_at``'s local date (``tz``, default the
        sites' first time zone), 92 to 100 steps on DST days; a Timedelta: that long from
        the next quarter hour (up to 48 h).
    quantities : tuple of str or None
        Subset to forecast (default: all the bundle knows that the history holds).
    tz : str or None
        Local time zone of the day-ahead day.

    Returns
    -------
    dict quantity -> Forecast with one key per site.

    """
    raise NotImplementedError
