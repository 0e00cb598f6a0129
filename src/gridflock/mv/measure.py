"""An event measured by every baseline method: delivered kW and kWh with their uncertainty.

The uncertainty of a method comes from placebo days: the same window on recent days
without an event, where the true effect is zero, so whatever the method "delivers"
there is its error. Their mean is the method's bias at this fleet, their spread the
uncertainty printed next to every delivered figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from gridflock.domain.messages import BoolArray, FloatArray, StrArray
from gridflock.mv.baselines import (
    LOOKBACK_DAYS,
    Baseline,
    Method,
    candidate_days,
    compute_baseline,
)
from gridflock.mv.meter import Calendar, EventWindow, MeterData, SiteInfo
from gridflock.mv.recommend import FleetMix, recommend_method

__all__ = [
    "Delivery",
    "EventMV",
    "available_methods",
    "fleet_mix",
    "measure_event",
    "placebo_errors",
]

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

    def as_dict(self) -> dict[str, float | int | str | list[float]]:
        """The figures a statement prints (no arrays but the interval), for JSON."""
        lo, hi = self.interval_90_kw
        return {
            "method": self.method,
            "delivered_kw": self.delivered_kw,
            "delivered_kwh": self.delivered_kwh,
            "baseline_kw": self.baseline_kw,
            "actual_kw": self.actual_kw,
            "sites": int(np.isfinite(self.per_site_kw).sum()),
            "placebo_bias_kw": self.placebo_bias_kw,
            "uncertainty_kw": self.uncertainty_kw,
            "interval_90_kw": [lo, hi],
            "placebo_days": self.placebo_days,
            "notes": self.baseline.notes,
        }

    @property
    def uncertainty_pct(self) -> float:
        """Uncertainty in % of the baseline's mean import over the window."""
        return 100.0 * self.uncertainty_kw / abs(self.baseline_kw) if self.baseline_kw else np.nan


@dataclass(frozen=True)
class EventMV:
    """One event measured by several methods; ``deliveries`` keyed by method name.

    ``errors`` holds, per method that could not be computed, the reason (the other
    methods are still measured).
    """

    event: EventWindow
    deliveries: dict[str, Delivery]
    recommended: str
    reason: str
    errors: dict[str, str] = field(default_factory=dict)


#: Above this many rows the regression (one model fit per row) runs on grid-node aggregates.
REGRESSION_MAX_ROWS = 200
#: ... and on the event's total when there are more grid nodes than this.
REGRESSION_MAX_NODES = 20


def _shift(ts: pd.Timestamp, tz: str, days: int) -> pd.Timestamp:
    """The same local clock time ``days`` days earlier (UTC)."""
    wall = ts.tz_convert(tz).tz_localize(None) - pd.Timedelta(days=days)
    return wall.tz_localize(tz, ambiguous=True, nonexistent="shift_forward").tz_convert("UTC")


def _participants(meter: MeterData, event: EventWindow, info: SiteInfo | None) -> BoolArray:
    if event.participants is not None:
        mask = np.asarray(event.participants, dtype=bool)
        if mask.shape != (meter.n_sites,):
            raise ValueError(
                f"participants mask has shape {mask.shape}, the meter {meter.n_sites} rows"
            )
        return mask
    if info is not None and info.control is not None:
        return ~np.asarray(info.control, dtype=bool)
    return np.ones(meter.n_sites, dtype=bool)


def _mean_delivered(b: Baseline, rows: BoolArray) -> float:
    """Mean over the window of the delivered kW summed over ``rows`` with a valid baseline."""
    m = rows & b.valid
    if not m.any():
        return float("nan")
    return float(np.nansum(b.delivered_kw[m], axis=0).mean())


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
    Days the meter data does not reach far enough back for are skipped.
    """
    calendar = calendar or Calendar()
    rows = _participants(meter, event, info)
    day = pd.Timestamp(event.start).tz_convert(meter.tz).date()
    offsets, _ = candidate_days(day, calendar, LOOKBACK_DAYS)
    out: list[float] = []
    for k in offsets.tolist():
        if len(out) >= days:
            break
        ev = EventWindow(
            _shift(event.start, meter.tz, k),
            _shift(event.end, meter.tz, k),
            f"{event.event_id}-placebo-{k}",
            rows,
            event.direction,
        )
        try:
            b = compute_baseline(method, meter, ev, calendar, info)
        except ValueError:
            continue  # not enough data before this day
        err = _mean_delivered(b, rows)
        if np.isfinite(err):
            out.append(err)
    return np.asarray(out, dtype=np.float64)


def _node_rows(info: SiteInfo | None, n: int) -> StrArray:
    if info is not None and info.grid_node is not None:
        return np.asarray(info.grid_node, dtype=object)
    return np.full(n, "fleet", dtype=object)


def _delivery(
    method: str,
    b: Baseline,
    rows: BoolArray,
    nodes: StrArray,
    errors: FloatArray,
    step_h: float,
) -> Delivery:
    m = rows & b.valid
    per_site = np.where(m[:, None], b.delivered_kw, np.nan)
    with np.errstate(invalid="ignore"):
        per_site_kw = _nanmean_rows(per_site)
    per_site_kwh = np.where(m, np.nansum(per_site, axis=1) * step_h, np.nan)
    names, base, act = (
        b.by_group(np.where(m, nodes, ""))
        if m.any()
        else (np.zeros(0, object), np.zeros((0, len(b.times))), np.zeros((0, len(b.times))))
    )
    keep = names != ""
    total_b = np.nansum(b.kw[m], axis=0) if m.any() else np.full(len(b.times), np.nan)
    total_a = np.nansum(b.actual_kw[m], axis=0) if m.any() else np.full(len(b.times), np.nan)
    delivered = total_a - total_b
    return Delivery(
        method=method,
        baseline=b,
        delivered_kw=float(delivered.mean()) if len(delivered) else float("nan"),
        delivered_kwh=float(delivered.sum() * step_h) if len(delivered) else float("nan"),
        baseline_kw=float(total_b.mean()) if len(total_b) else float("nan"),
        actual_kw=float(total_a.mean()) if len(total_a) else float("nan"),
        site_ids=b.site_ids,
        per_site_kw=per_site_kw,
        per_site_kwh=per_site_kwh,
        node_ids=names[keep],
        per_node_kw=(act - base)[keep].mean(axis=1) if keep.any() else np.zeros(0),
        placebo_bias_kw=float(errors.mean()) if len(errors) else float("nan"),
        uncertainty_kw=float(errors.std(ddof=1)) if len(errors) > 1 else float("nan"),
        placebo_days=len(errors),
    )


def _nanmean_rows(x: FloatArray) -> FloatArray:
    ok = np.isfinite(x)
    n = ok.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.where(ok, x, 0.0).sum(axis=1) / n, dtype=np.float64)


def available_methods(meter: MeterData, info: SiteInfo | None) -> list[str]:
    """The methods the data allows: day matching always; the others when their inputs exist.

    ``battery_device_replay`` is left out (it applies the DFS rule to ten past days, about
    ten times the work of the others): it is computed when asked for by name
    (:func:`replay_available` says whether the data allows it).
    """
    out = [
        Method.CAISO_10IN10,
        Method.CAISO_10IN10_UNADJUSTED,
        Method.CAISO_10IN10_ADDITIVE,
        Method.PJM_HIGH4OF5,
        Method.UK_DFS,
    ]
    if meter.temp_c is not None:
        out += [Method.PJM_HIGH4OF5_WSA, Method.REGRESSION]
        if meter.gen_kw is not None:
            out.append(Method.REGRESSION_MGO)
    if meter.temp_c is not None and meter.ghi_w_m2 is not None:
        out.append(Method.WEATHER_MATCHED)
    if info is not None and info.control is not None and np.asarray(info.control).any():
        out.append(Method.CONTROL_GROUP)
    if meter.battery_kw is not None:
        out += [Method.BATTERY_DEVICE, Method.BATTERY_DEVICE_DAYS, Method.BATTERY_DEVICE_TREND]
    if meter.gen_kw is not None:
        out += [Method.CAISO_10IN10_MGO, Method.PJM_HIGH4OF5_MGO, Method.UK_DFS_MGO]
    return [str(m) for m in out]


def replay_available(meter: MeterData, info: SiteInfo | None) -> bool:
    """Whether ``battery_device_replay`` can replay: battery power, SOC and parameters."""
    return (
        meter.battery_kw is not None
        and meter.battery_soc_kwh is not None
        and info is not None
        and info.battery is not None
    )


def fleet_mix(meter: MeterData, event: EventWindow, info: SiteInfo | None) -> FleetMix:
    """The event's fleet mix (shares of participants holding each kind) and its data."""
    rows = _participants(meter, event, info)
    n = int(rows.sum())
    shares = dict.fromkeys(("pv", "battery", "ev_charger", "heat_pump"), 0.0)
    control = 0
    if info is not None:
        kinds = np.asarray(info.kinds, dtype=object).astype(str)[rows]
        for k in shares:
            shares[k] = float(np.mean([k in s.split("+") for s in kinds])) if n else 0.0
        control = int(np.asarray(info.control).sum()) if info.control is not None else 0
    return FleetMix(
        n_sites=n,
        pv=shares["pv"],
        battery=shares["battery"],
        ev=shares["ev_charger"],
        heat_pump=shares["heat_pump"],
        control_sites=control,
        battery_telemetry=meter.battery_kw is not None,
        weather=meter.temp_c is not None,
        irradiance=meter.ghi_w_m2 is not None,
        generation_telemetry=meter.gen_kw is not None,
    )


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
    fleet mix in ``info``. Over more than :data:`REGRESSION_MAX_ROWS` participants the
    regression is fitted per grid node (on the event's total above
    :data:`REGRESSION_MAX_NODES` nodes); its per-site figures are then NaN.
    """
    calendar = calendar or Calendar()
    rows = _participants(meter, event, info)
    event = EventWindow(event.start, event.end, event.event_id, rows, event.direction)
    names = [str(m) for m in (methods if methods is not None else available_methods(meter, info))]
    nodes = _node_rows(info, meter.n_sites)
    out: dict[str, Delivery] = {}
    failed: dict[str, str] = {}
    step_h = meter.step_s / 3600.0
    for name in names:
        try:
            regression = name in (Method.REGRESSION, Method.REGRESSION_MGO)
            if regression and int(rows.sum()) > REGRESSION_MAX_ROWS:
                groups = nodes[rows]
                if len(set(groups.tolist())) > REGRESSION_MAX_NODES:
                    groups = np.full(len(groups), "total", dtype=object)
                agg = meter.take(rows).aggregate(groups)
                agg_ev = EventWindow(event.start, event.end, event.event_id, None, event.direction)
                b = compute_baseline(name, agg, agg_ev, calendar, None)
                errors = placebo_errors(agg, agg_ev, name, calendar, None, placebo_days)
                d = _delivery(name, b, np.ones(agg.n_sites, bool), agg.site_ids, errors, step_h)
                if (agg.site_ids == "total").any():  # fitted on the total: no node figures
                    d = replace(d, node_ids=np.zeros(0, object), per_node_kw=np.zeros(0))
                nan = np.full(meter.n_sites, np.nan)
                d = replace(d, site_ids=meter.site_ids, per_site_kw=nan, per_site_kwh=nan.copy())
            else:
                b = compute_baseline(name, meter, event, calendar, info)
                errors = placebo_errors(meter, event, name, calendar, info, placebo_days)
                d = _delivery(name, b, rows, nodes, errors, step_h)
            out[name] = d
        except ValueError as exc:  # this method's inputs are missing: the others go on
            if methods is not None and len(names) == 1:
                raise
            failed[name] = str(exc)
    rec = recommend_method(fleet_mix(meter, event, info))
    return EventMV(event, out, rec.method, rec.reason, failed)
