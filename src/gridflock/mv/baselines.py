"""Baselines: what each site would have drawn without the event, by the rules markets settle on.

Every method takes the same inputs (:class:`MeterData`, an :class:`EventWindow`, a
:class:`Calendar` of holidays and previous event days, optional :class:`SiteInfo`) and
returns a :class:`Baseline`: one baseline series per site over the event window, in kW
with the generator sign. Day-matching methods are vectorised over sites: the intervals
they need are gathered into a (sites, days, intervals) block once and averaged there.

Sources and parameters of each method are in ``docs/mv.md``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd

from gridflock.domain.messages import BoolArray, FloatArray, IntArray, StrArray
from gridflock.mv.meter import Calendar, EventWindow, MeterData, SiteInfo

__all__ = [
    "METHODS",
    "Baseline",
    "Method",
    "compute_baseline",
]


class Method(StrEnum):
    """The baseline methods, by the name settlement statements print."""

    CAISO_10IN10 = "caiso_10in10"
    """CAISO 10-in-10 with the multiplicative day-of adjustment capped at ±20 %."""
    CAISO_10IN10_UNADJUSTED = "caiso_10in10_unadjusted"
    """CAISO 10-in-10 without the day-of adjustment."""
    CAISO_10IN10_ADDITIVE = "caiso_10in10_additive"
    """CAISO 10-in-10 with an additive day-of adjustment taken after sunset-like hours."""
    PJM_HIGH4OF5 = "pjm_high4of5"
    """PJM High 4 of 5 with the symmetric additive adjustment (SAA)."""
    PJM_HIGH4OF5_WSA = "pjm_high4of5_wsa"
    """PJM High 4 of 5 with the weather-sensitive adjustment (WSA)."""
    UK_DFS = "uk_dfs"
    """UK Demand Flexibility Service: mean of the previous 10 working days, in-day adjusted."""
    REGRESSION = "regression"
    """CalTRACK hourly regression on temperature and time of week (eemeter)."""
    CONTROL_GROUP = "control_group"
    """Randomised control group: held-out sites matched on kind and size."""
    BATTERY_DEVICE = "battery_device"
    """Device-level baseline for batteries: the power held before the event."""


@dataclass(frozen=True)
class Baseline:
    """One method's baseline for each row over the event window.

    ``kw`` and ``actual_kw`` are (n_sites, n_steps) [kW, generator sign] over ``times``
    (the event window's intervals); ``valid`` marks rows for which the method had
    enough data (a row without is NaN throughout); ``adjustment`` is the day-of
    adjustment applied per row (a ratio for multiplicative methods, kW for additive
    ones, NaN where none); ``days_used`` how many history days each row averaged.
    """

    method: str
    event_id: str
    site_ids: StrArray
    times: pd.DatetimeIndex
    kw: FloatArray
    actual_kw: FloatArray
    valid: BoolArray
    adjustment: FloatArray
    days_used: IntArray
    notes: str = ""

    @property
    def step_h(self) -> float:
        """Interval length [h]."""
        if len(self.times) < 2:
            return float("nan")
        return float((self.times[1] - self.times[0]).total_seconds() / 3600.0)

    @property
    def delivered_kw(self) -> FloatArray:
        """Actual minus baseline per row and interval [kW, generator sign: > 0 is "up"]."""
        return self.actual_kw - self.kw

    def total(self) -> tuple[FloatArray, FloatArray]:
        """Baseline and actual summed over the valid rows, per interval [kW]."""
        v = self.valid
        return np.nansum(self.kw[v], axis=0), np.nansum(self.actual_kw[v], axis=0)

    def by_group(self, groups: StrArray) -> tuple[StrArray, FloatArray, FloatArray]:
        """Baseline and actual summed per group (e.g. grid node) over the valid rows.

        Returns the group names and two (n_groups, n_steps) arrays [kW].
        """
        keys = np.asarray(groups, dtype=object).astype(str)
        names, inv = np.unique(keys, return_inverse=True)
        base = np.zeros((len(names), len(self.times)))
        act = np.zeros_like(base)
        v = self.valid
        np.add.at(base, inv[v], np.nan_to_num(self.kw[v]))
        np.add.at(act, inv[v], np.nan_to_num(self.actual_kw[v]))
        return names.astype(object), base, act


MethodFn = Callable[[MeterData, EventWindow, Calendar, SiteInfo | None], Baseline]

#: The methods by name; each is ``fn(meter, event, calendar, info) -> Baseline``.
METHODS: dict[str, MethodFn] = {}


def compute_baseline(
    method: str | Method,
    meter: MeterData,
    event: EventWindow,
    calendar: Calendar | None = None,
    info: SiteInfo | None = None,
) -> Baseline:
    """Baseline of every row of ``meter`` for ``event`` by ``method``.

    ``calendar`` lists holidays and previous event days (excluded from history);
    ``info`` is needed by the control group (kinds, sizes, held-out sites).
    """
    try:
        fn = METHODS[str(method)]
    except KeyError:
        raise ValueError(
            f"unknown baseline method {method!r}: use one of {', '.join(METHODS)}"
        ) from None
    return fn(meter, event, calendar or Calendar(), info)


# ---------------------------------------------------------------------- day matching
def _placeholder(*_: object) -> Baseline:
    raise NotImplementedError


_ = dt
