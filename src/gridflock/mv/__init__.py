"""Measurement and verification: baselines, delivered energy and how accurate they are.

The public interface (documented in ``docs/mv.md``):

- :class:`MeterData` (sites x intervals of net kW, generator sign, NaN gaps),
  :class:`EventWindow`, :class:`Calendar` (holidays, previous event days),
  :class:`SiteInfo` (kinds, sizes, grid node, control group);
- :class:`Method`, :func:`compute_baseline` -> :class:`Baseline` per site;
- :func:`measure_event` -> :class:`EventMV`: per method the :class:`Delivery` (kW, kWh,
  per site and per grid node, with the placebo-day uncertainty);
- :func:`assign_control_group` (randomised hold-out, stratified on kind and size);
- :class:`FleetMix`, :func:`recommend_method` -> (method, reason).
"""

from gridflock.mv.baselines import (
    METHODS,
    Baseline,
    Method,
    battery_device,
    caiso_10in10,
    compute_baseline,
    metered_generation,
    pjm_high4of5,
    uk_dfs,
)
from gridflock.mv.control import assign_control_group, control_group, strata
from gridflock.mv.measure import (
    Delivery,
    EventMV,
    available_methods,
    fleet_mix,
    measure_event,
    placebo_errors,
)
from gridflock.mv.meter import Calendar, EventWindow, MeterData, SiteInfo, local_days
from gridflock.mv.performance import EventPerformance, event_performance
from gridflock.mv.recommend import FleetMix, Recommendation, recommend_method
from gridflock.mv.regression import regression

__all__ = [
    "METHODS",
    "Baseline",
    "Calendar",
    "Delivery",
    "EventMV",
    "EventPerformance",
    "EventWindow",
    "FleetMix",
    "MeterData",
    "Method",
    "Recommendation",
    "SiteInfo",
    "assign_control_group",
    "available_methods",
    "battery_device",
    "caiso_10in10",
    "compute_baseline",
    "control_group",
    "event_performance",
    "fleet_mix",
    "local_days",
    "measure_event",
    "metered_generation",
    "pjm_high4of5",
    "placebo_errors",
    "recommend_method",
    "regression",
    "strata",
    "uk_dfs",
]
