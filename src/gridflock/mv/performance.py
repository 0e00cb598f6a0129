"""Event performance: what was delivered against the target, from a sampled series."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from gridflock.domain.messages import FloatArray

__all__ = ["EventPerformance", "event_performance"]


@dataclass(frozen=True)
class EventPerformance:
    """Figures of one event.

    Powers in kW with the event's sign (> 0 up), percentages of the target, time in
    seconds from the event start, energy in kWh over the window.
    """

    target_kw: float
    delivered_kw_mean: float
    delivered_pct: float
    tracking_rmse_pct: float
    time_to_90pct_s: float | None
    energy_delivered_kwh: float
    non_responders: int
    samples: int

    def as_dict(self) -> dict[str, float | int | None]:
        """Plain dict for JSON output and storage."""
        return asdict(self)


def event_performance(
    ts: FloatArray,
    delivered_kw: FloatArray,
    target_kw: float,
    start: float,
    end: float,
    non_responders: int = 0,
) -> EventPerformance:
    """Measure delivery over ``[start, end)`` from samples ``(ts, delivered_kw)``.

    Each sample stands for the interval up to the next one (the last one for the median
    step), which gives the energy. ``time_to_90pct_s`` is None if 90 % was never reached.
    """
    ts = np.asarray(ts, dtype=float)
    d = np.asarray(delivered_kw, dtype=float)
    inside = (ts >= start) & (ts < end) & np.isfinite(d)
    ts, d = ts[inside], d[inside]
    if not len(ts) or target_kw == 0:
        return EventPerformance(target_kw, 0.0, 0.0, 100.0, None, 0.0, non_responders, 0)
    step = np.diff(ts, append=ts[-1] + (np.median(np.diff(ts)) if len(ts) > 1 else end - ts[0]))
    step = np.minimum(step, end - ts)
    mean = float(np.average(d, weights=step))
    rmse = float(np.sqrt(np.average((d - target_kw) ** 2, weights=step)))
    reached = np.flatnonzero(d / target_kw >= 0.9)
    t90 = float(ts[reached[0]] - start) if len(reached) else None
    return EventPerformance(
        target_kw=float(target_kw),
        delivered_kw_mean=mean,
        delivered_pct=100.0 * mean / target_kw,
        tracking_rmse_pct=100.0 * rmse / abs(target_kw),
        time_to_90pct_s=t90,
        energy_delivered_kwh=float((d * step).sum() / 3600.0),
        non_responders=non_responders,
        samples=len(ts),
    )
