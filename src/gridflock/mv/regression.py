"""Regression baseline: CalTRACK hourly (time of week and temperature) through eemeter.

The model is eemeter's demand-response model (``eemeter.drmeter``: CalTRACK hourly with
one segment), fitted per row on the hours before the event day (event days and holidays
left out) and asked for the event day's hours. We feed it import (-net kW, so the usage
it expects is positive where a home draws) and temperature in °F, as CalTRACK's
temperature bins are set in °F. It is one model fit per row (about a quarter of a second
each), so over thousands of sites it is run on grid-node aggregates.
"""

from __future__ import annotations

import logging
import warnings
from functools import partial

import numpy as np
import pandas as pd

from gridflock.domain.messages import FloatArray
from gridflock.mv.baselines import (
    METHODS,
    Baseline,
    Method,
    _columns,
    _event_day,
    _steps,
    metered_generation,
)
from gridflock.mv.meter import Calendar, EventWindow, MeterData, SiteInfo, local_days

__all__ = ["REGRESSION_LOOKBACK_DAYS", "regression"]

#: Days of history the regression is fitted on.
REGRESSION_LOOKBACK_DAYS = 60


def _fit_predict(observed: pd.Series, temp_f: pd.Series, target: pd.DatetimeIndex) -> FloatArray:
    """Fit CalTRACK hourly on ``observed`` and predict hourly usage at ``target``."""
    from eemeter.drmeter.models.caltrack import BaselineData, Model, ReportingData

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        level = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            base = BaselineData.from_series(
                observed.rename("observed"), temp_f.rename("temperature"), False
            )
            model = Model().fit(base)
            # a whole day around the target hours, so the data has an hourly frequency
            span = pd.date_range(
                target[0] - pd.Timedelta(hours=12), target[-1] + pd.Timedelta(hours=12), freq="h"
            )
            report = ReportingData.from_series(
                None, temp_f.reindex(span).interpolate(limit_direction="both").rename(
                    "temperature"
                ), False
            )
            pred = model.predict(report)
        finally:
            logging.disable(level)
    return np.asarray(pred["predicted"].reindex(target), dtype=np.float64)


def regression(
    meter: MeterData,
    event: EventWindow,
    calendar: Calendar,
    info: SiteInfo | None = None,
    lookback_days: int = REGRESSION_LOOKBACK_DAYS,
) -> Baseline:
    """CalTRACK hourly regression baseline per row (eemeter), over the event window."""
    if meter.temp_c is None:
        raise ValueError(
            "the regression baseline needs a temperature series: give MeterData.temp_c (°C)"
        )
    steps = _steps(meter, event.start, event.end)
    cols = _columns(meter, steps, "event window")
    day = _event_day(meter, event)
    days = local_days(meter.times, meter.tz)
    first = day - pd.Timedelta(days=lookback_days)
    excluded = np.array(
        [d in calendar.event_days or d in calendar.holidays for d in days], dtype=bool
    )
    train = (days < day) & (days >= first) & ~excluded
    hour = meter.times.floor("h")
    temp_f = pd.Series(meter.temp_c * 9 / 5 + 32, index=meter.times).groupby(hour).mean()
    target = pd.DatetimeIndex(sorted(set(steps.floor("h"))))
    n = meter.n_sites
    kw = np.full((n, len(steps)), np.nan)
    valid = np.zeros(n, bool)
    if train.sum() * meter.step_s >= 14 * 86400:  # CalTRACK asks for enough history
        train_times = pd.DatetimeIndex(meter.times[train])
        imp = pd.DataFrame(-meter.net_kw[:, train].T, index=train_times)
        hourly = imp.groupby(train_times.floor("h")).mean()
        pos = target.get_indexer(steps.floor("h"))
        for i in range(n):
            obs = hourly[i].dropna()
            if len(obs) < 14 * 24:
                continue
            pred = _fit_predict(obs, temp_f, target)
            kw[i] = -pred[pos]
            valid[i] = bool(np.isfinite(kw[i]).all())
    kw[~valid] = np.nan
    used = np.full(n, int(np.unique(days[train]).size), dtype=np.int64)
    return Baseline(
        str(Method.REGRESSION), event.event_id, meter.site_ids, steps, kw,
        meter.net_kw[:, cols], valid, np.full(n, np.nan), used,
        "CalTRACK hourly (eemeter drmeter), temperature and time of week",
    )


METHODS[Method.REGRESSION] = regression
METHODS[Method.REGRESSION_MGO] = partial(metered_generation, method=Method.REGRESSION_MGO)
