"""An event measured by every baseline method: delivered kW and kWh with their uncertainty.

The uncertainty of a method comes from placebo days: the same window on recent days
without an event, where the true effect is zero, so whatever the method "delivers"
there is its error. Their mean is the method's bias at this fleet, their spread the
uncertainty printed next to every delivered figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gridflock.domain.messages import FloatArray, StrArray
from gridflock.mv.baselines import Baseline, Method
from gridflock.mv.meter import Calendar, EventWindow, MeterData, SiteInfo

__all__ = ["Delivery", "EventMV", "measure_event", "placebo_errors"]

#: z of the two-sided 90 % interval printed with every delivered figure.
Z90 = 1.6448536269514722


@dataclass(frozen=True)
class Delivery:
    """What one method says an event delivered, with how far to trust it.

    Powers in kW (generator sign: > 0 is "up"), energies in kWh over the window, all
    over the event's participants with a valid baseline. ``per_site_kw`` and
    ``per_site_kwh`` follow ``site_ids``; ``node_ids``/``per_node_kw`` the grid nodes
    (empty without node labels). ``placebo_bias_kw`` is the mean and
    ``uncertainty_kw`` the standard deviation of the method's mean delivered kW over
    ``placebo_days`` recent non-event days; ``interval_90_kw`` the 90 % interval of the
    delivered mean. NaN when no placebo day could be computed.
    """

    method: str
    baseline: Baseline
    delivered_kw: float
    delivered_kwh: float
    baseline_kw: float
    actual_kw: float
    site_ids: StrArray
    per_site_kw: FloatArray
    per_site_kwh: FloatArray
    node_ids: StrArray
    per_node_kw: FloatArray
    placebo_bias_kw: float
    uncertainty_kw: float
    placebo_days: int

    @property
    def interval_90_kw(self) -> tuple[float, float]:
        """90 % interval of the mean delivered kW (placebo spread, normal approximation)."""
        h = Z90 * self.uncertainty_kw
        return self.delivered_kw - h, self.delivered_kw + h

    @property
    def uncertainty_pct(self) -> float:
        """Uncertainty in % of the baseline's mean import over the window."""
        return 100.0 * self.uncertainty_kw / abs(self.baseline_kw) if self.baseline_kw else np.nan


@dataclass(frozen=True)
class EventMV:
    """One event measured by several methods; ``deliveries`` keyed by method name."""

    event: EventWindow
    deliveries: dict[str, Delivery]
    recommended: str
    reason: str


def placebo_errors(
    meter: MeterData,
    event: EventWindow,
    method: str | Method,
    calendar: Calendar | None = None,
    info: SiteInfo | None = None,
    days: int = 10,
) -> FloatArray:
    """Mean delivered kW (over the participants) the method finds on ``days`` placebo days.

    Placebo days are the most recent days before the event of the same type (working or
    not), not holidays and not event days, with the event's window on the same local
    clock; the true effect there is zero, so each value is the method's error [kW].
    """
    raise NotImplementedError


def measure_event(
    meter: MeterData,
    event: EventWindow,
    methods: Sequence[str | Method] | None = None,
    calendar: Calendar | None = None,
    info: SiteInfo | None = None,
    placebo_days: int = 10,
) -> EventMV:
    """Every method's delivery for ``event``, with the placebo uncertainty and the pick.

    ``methods`` defaults to every method the data allows (the control group needs
    ``info.control``, the battery baseline ``meter.battery_kw``, the regression
    ``meter.temp_c``). The recommended method comes from :func:`recommend_method` on the
    fleet mix in ``info``.
    """
    raise NotImplementedError


_ = (pd, np)
