"""A scenario: the twin over a window, once left alone and once run by the VPP.

The undispatched pass ("without the VPP") gives the counterfactual and, when no event
is asked for, places a default event on the evening peak sized to a share of the
flexibility the fleet then holds. The dispatched pass runs the same twin with the same
seed under the dispatcher; the difference of the two is what each event truly delivered.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from gridflock.dispatch.allocate import limit_headroom
from gridflock.dispatch.dispatcher import Dispatcher
from gridflock.dispatch.tracker import EventTracker, TrackerConfig
from gridflock.domain.events import Event, EventSource, Scope
from gridflock.domain.kinds import DeviceKind
from gridflock.domain.messages import BoolArray, CommandBatch, FloatArray, TelemetryBatch
from gridflock.domain.spec import FleetSpec
from gridflock.fleet.flexibility import flexibility
from gridflock.fleet.state import FleetState
from gridflock.mv.performance import EventPerformance, event_performance
from gridflock.sim.events import EventRequest
from gridflock.sim.imperfections import Imperfections
from gridflock.sim.twin import AckCounts, Twin

__all__ = [
    "EventOutcome",
    "ScenarioConfig",
    "ScenarioResult",
    "run_scenario",
    "scenario_tracker_config",
]

Progress = Callable[[str, int, int], None]

#: Durations [h] for which the default event's flexibility is sized.
EVENT_HOURS = (1.0, 2.0, 3.0, 4.0)
#: Resolution [s] of the forecast pass that places the default event.
FORECAST_STEP_S = 900.0
#: The default event covers the evening's import above this share of its peak.
PLATEAU_SHARE = 0.75


@dataclass(frozen=True)
class ScenarioConfig:
    """What to simulate: a window of local time on ``date`` and the events to run."""

    date: dt.date
    hours: float = 24.0
    step_s: float = 60.0
    seed: int = 7
    start_hour: float = 0.0
    events: tuple[EventRequest, ...] | None = None
    imperfections: Imperfections = field(default_factory=Imperfections)
    tracker: TrackerConfig | None = None
    default_event_share: float = 0.6
    default_event_peak_share: float = 0.3
    telemetry_sample_devices: int = 0
    telemetry_sample_every_s: float = 900.0

    def __post_init__(self) -> None:
        if not self.hours > 0:
            raise ValueError(f"hours must be > 0, got {self.hours}")
        if not 1 <= self.step_s <= 3600:
            raise ValueError(f"step must be between 1 s and 1 h, got {self.step_s} s")
        if self.hours * 3600 / self.step_s < 2:
            raise ValueError("the window must hold at least two steps")


@dataclass
class EventOutcome:
    """One event of the run: its figures (true M&V and the tracker's own estimate)."""

    event: Event
    delivered_kw: FloatArray
    estimated_kw: FloatArray
    performance: EventPerformance
    estimate: EventPerformance
    commands_sent: int
    shortfall_kw: float


@dataclass
class ScenarioResult:
    """Series and figures of a scenario; powers in kW, generator sign (+ export)."""

    spec: FleetSpec
    config: ScenarioConfig
    tz: str
    times: pd.DatetimeIndex
    net_with_kw: FloatArray
    net_without_kw: FloatArray
    by_kind_with_kw: pd.DataFrame
    by_kind_without_kw: pd.DataFrame
    events: list[EventOutcome]
    acks: AckCounts
    commands: list[CommandBatch]
    telemetry: list[TelemetryBatch]
    runtime_s: float

    @property
    def peak_import_with_kw(self) -> float:
        """Highest net import of the fleet with the VPP [kW]."""
        return float(np.max(-self.net_with_kw))

    @property
    def peak_import_without_kw(self) -> float:
        """Highest net import of the fleet left alone [kW]."""
        return float(np.max(-self.net_without_kw))

    @property
    def peak_reduction_pct(self) -> float:
        """How much the VPP lowered the peak import, in % of the peak without it."""
        without = self.peak_import_without_kw
        return 100.0 * (without - self.peak_import_with_kw) / without if without > 0 else 0.0


def scenario_tracker_config(step_s: float, merit_order: bool = False) -> TrackerConfig:
    """The loop a scenario runs: one control interval per step, ramping one step ahead.

    Commands then live for 30 s, or three steps where those are longer, so they never
    lapse between renewals.
    """
    return TrackerConfig(interval_s=step_s, merit_order=merit_order, lead_s=step_s)


def _window(spec: FleetSpec, cfg: ScenarioConfig) -> tuple[str, pd.Timestamp, int]:
    tz = str(spec.sites["tz"].iloc[0]) if len(spec.sites) else "UTC"
    local = pd.Timestamp(dt.datetime.combine(cfg.date, dt.time())) + pd.Timedelta(
        hours=cfg.start_hour
    )
    start = local.tz_localize(tz).tz_convert("UTC")
    return tz, start, round(cfg.hours * 3600 / cfg.step_s)


def run_scenario(
    spec: FleetSpec, cfg: ScenarioConfig, progress: Progress | None = None
) -> ScenarioResult:
    """Run the fleet under the dispatcher and measure every event against the shadow.

    Without explicit events a forecast pass of the undispatched twin comes first, to
    place the default event on the evening peak (a perfect day-ahead forecast).
    """
    began = time.perf_counter()
    tz, start, steps = _window(spec, cfg)
    state = FleetState.from_spec(spec)
    requests = list(cfg.events) if cfg.events is not None else None
    end = start + pd.Timedelta(seconds=steps * cfg.step_s)
    for r in requests or ():
        state.scope_mask(r.scope)  # fail early on an unknown scope
        if r.end <= start or r.start >= end:
            raise ValueError(
                f"event at {r.start.tz_convert(tz):%Y-%m-%d %H:%M} lies outside the simulated "
                f"window {start.tz_convert(tz):%H:%M}-{end.tz_convert(tz):%H:%M} {tz}: move it "
                "or widen --hours / --start-hour"
            )
    if requests is None:
        requests = _forecast_default_event(spec, cfg, tz, start, steps, progress)

    twin = Twin(spec, start, steps, cfg.step_s, cfg.seed, cfg.imperfections)
    dispatcher = Dispatcher(state, cfg.tracker or scenario_tracker_config(cfg.step_s))
    trackers: list[EventTracker] = []
    for i, r in enumerate(requests):
        event = Event(
            f"ev-{i + 1:03d}",
            r.target_kw,
            r.start.timestamp(),
            r.end.timestamp(),
            r.scope,
            EventSource.SIMULATION,
            created_by="gridflock simulate",
        )
        trackers.append(dispatcher.add(event))
    # float, not bool: a float matrix product is ~100x faster than a boolean one
    masks = np.array([state.scope_mask(r.scope) for r in requests], dtype=np.float64)
    masks = masks.reshape(len(requests), state.n)
    net_with, net_without = np.zeros(steps), np.zeros(steps)
    scope_with = np.zeros((steps, len(requests)))
    scope_without = np.zeros((steps, len(requests)))
    # events sharing devices and time are measured on their own devices (a device counts
    # for one event), else a scope's response would be reported by every event over it
    shared = _sharing(trackers, masks)
    own_with = np.zeros((steps, len(requests)))
    own_without = np.zeros((steps, len(requests)))
    estimated = np.full((steps, len(requests)), np.nan)
    n_kinds = len(DeviceKind)
    by_kind = np.zeros((steps, n_kinds))
    by_kind_without = np.zeros((steps, n_kinds))
    commands: list[CommandBatch] = []
    telemetry: list[TelemetryBatch] = []
    sample = _sample_rows(state.n, cfg)
    every = max(round(cfg.telemetry_sample_every_s / cfg.step_s), 1)
    for t in range(steps):
        twin.step()
        batches = twin.receive()
        for batch in batches:
            state.apply(batch)
        now = twin.now
        state.mark_stale(now, 3 * cfg.step_s + 60)
        for j, tracker in enumerate(trackers):
            if tracker.touched.any():
                estimated[t, j] = tracker.delivered_kw(now)
        owner = dispatcher.owner.copy()  # who answered for each device in this step
        for cmd in dispatcher.step(now):
            twin.send(cmd)
            commands.append(cmd)
        p, shadow = twin.p_kw, twin.natural_kw
        for k in np.flatnonzero(shared).tolist():
            mine = owner == trackers[k].code
            own_with[t, k], own_without[t, k] = p[mine].sum(), shadow[mine].sum()
        net_with[t], net_without[t] = p.sum(), shadow.sum()
        if len(requests):
            scope_with[t] = masks @ p
            scope_without[t] = masks @ shadow
        by_kind[t] = state.kind_sums(p)
        by_kind_without[t] = state.kind_sums(shadow)
        if len(sample) and t % every == 0:
            telemetry.extend(_subset(b, sample) for b in batches)
        if progress:
            progress("with VPP", t + 1, steps)
    if dispatcher.trackers:  # close events still open at the end of the window
        closing = max(twin.now, *(t.event.end for t in dispatcher.trackers.values()))
        commands.extend(dispatcher.step(closing))

    ts = np.array([x.timestamp() for x in twin.times])
    outcomes = []
    for j, tracker in enumerate(trackers):
        ev = tracker.event
        delivered = (
            own_with[:, j] - own_without[:, j]
            if shared[j]
            else scope_with[:, j] - scope_without[:, j]
        )
        est = estimated[:, j]  # the reading at the end of step t describes step t
        outcomes.append(
            EventOutcome(
                event=ev,
                delivered_kw=delivered,
                estimated_kw=est,
                performance=event_performance(
                    ts, delivered, ev.target_kw, ev.start, ev.end, tracker.non_responders
                ),
                estimate=event_performance(
                    ts, est, ev.target_kw, ev.start, ev.end, tracker.non_responders
                ),
                commands_sent=tracker.commands_sent,
                shortfall_kw=tracker.shortfall_kw,
            )
        )
    names = [k.value for k in DeviceKind]
    return ScenarioResult(
        spec,
        cfg,
        tz,
        twin.times,
        net_with,
        net_without,
        pd.DataFrame(by_kind, index=twin.times, columns=names),
        pd.DataFrame(by_kind_without, index=twin.times, columns=names),
        outcomes,
        twin.acks,
        commands,
        telemetry,
        time.perf_counter() - began,
    )


def _sharing(trackers: list[EventTracker], masks: FloatArray) -> BoolArray:
    """Which events share devices and time with another event."""
    out = np.zeros(len(trackers), bool)
    for a, ta in enumerate(trackers):
        for b, tb in enumerate(trackers):
            if a != b and ta.event.overlaps(tb.event.start, tb.event.end):
                out[a] |= bool((masks[a] * masks[b]).any())
    return out


def undispatched_net_kw(
    spec: FleetSpec,
    cfg: ScenarioConfig,
    progress: Progress | None = None,
    on_step: Callable[[int, Twin, FleetState], None] | None = None,
) -> FloatArray:
    """Fleet net power [kW] of the twin left alone: the forecast pass."""
    _tz, start, steps = _window(spec, cfg)
    twin = Twin(spec, start, steps, cfg.step_s, cfg.seed, cfg.imperfections)
    state = FleetState.from_spec(spec)
    net = np.zeros(steps)
    for t in range(steps):
        twin.step()
        for batch in twin.receive():
            state.apply(batch)
        net[t] = twin.p_kw.sum()
        if on_step is not None:
            on_step(t, twin, state)
        if progress:
            progress("forecast", t + 1, steps)
    return net


def _forecast_default_event(
    spec: FleetSpec,
    cfg: ScenarioConfig,
    tz: str,
    start: pd.Timestamp,
    steps: int,
    progress: Progress | None,
) -> list[EventRequest]:
    # a day-ahead forecast at quarter-hour resolution is all the placement needs
    coarse = min(FORECAST_STEP_S, cfg.hours * 3600 / 8)  # at least 8 steps in the window
    cfg = replace(cfg, step_s=max(cfg.step_s, coarse))
    steps = round(cfg.hours * 3600 / cfg.step_s)
    times = pd.date_range(start, periods=steps, freq=pd.Timedelta(seconds=cfg.step_s))
    candidates = _candidate_steps(times, tz)
    available: dict[tuple[int, float], float] = {}

    def snapshot(t: int, twin: Twin, state: FleetState) -> None:
        if t + 1 not in candidates:
            return
        base = state.baseline_kw()
        site_p = state.site_power_kw(base)
        node_p = state.grid.node_flow_kw(site_p)
        ctl = state.controllable()
        for hours in EVENT_HOURS:
            flex = flexibility(state, hours, twin.now)
            head = limit_headroom(
                flex.up_kw, state.node_groups, state.grid, site_p, node_p, up=True
            )
            available[t + 1, hours] = float(head[ctl].sum())

    net = undispatched_net_kw(spec, cfg, progress, snapshot)
    return _default_event(times, net, available, cfg, tz)


def _candidate_steps(times: pd.DatetimeIndex, tz: str) -> set[int]:
    """Steps (quarter hours, 15:00-22:00 local) where a default event may start."""
    local = times.tz_convert(tz)
    ok = (local.minute % 15 == 0) & (local.hour >= 15) & (local.hour < 22)
    if not ok.any():  # a window without an evening: every quarter hour
        ok = local.minute % 15 == 0
    return {int(i) for i in np.flatnonzero(ok)}


def _default_event(
    times: pd.DatetimeIndex,
    net_without: FloatArray,
    available: dict[tuple[int, float], float],
    cfg: ScenarioConfig,
    tz: str,
) -> list[EventRequest]:
    """An up event over the evening peak, sized so the fleet can hold it.

    The window covers the plateau where the fleet's import stays above PLATEAU_SHARE of its
    evening peak (whole hours, 1 to 4); the target is the smaller of a share of the up
    flexibility the fleet holds for that long and a share of the peak itself, so the
    event shaves the peak rather than moving it.
    """
    if not available:
        raise ValueError("the window is too short to place a default event; give --event")
    local = times.tz_convert(tz)
    quarter = max(int(900 / cfg.step_s), 1)  # smooth over a quarter of an hour
    smooth = pd.Series(-net_without).rolling(quarter, center=True, min_periods=1).mean()
    imports = smooth.to_numpy()
    evening = (local.hour >= 16) & (local.hour < 23)
    peak = int(np.argmax(np.where(evening if evening.any() else True, imports, -np.inf)))
    high = imports >= PLATEAU_SHARE * imports[peak]
    a = peak
    while a > 0 and high[a - 1]:
        a -= 1
    b = peak
    while b < len(high) - 1 and high[b + 1]:
        b += 1
    hours = float(np.clip(np.round((b - a + 1) * cfg.step_s / 3600.0), 1, 4))
    starts = sorted({s for s, _ in available})
    start = min(starts, key=lambda s: abs(s - a))
    kw = min(
        cfg.default_event_share * available[start, hours],
        cfg.default_event_peak_share * float(imports[peak]),
    )
    if not kw > 0:
        raise ValueError("the fleet holds no up flexibility at the evening peak; give --event")
    magnitude = 10 ** (np.floor(np.log10(kw)) - 1)  # two significant digits
    kw = float(np.floor(kw / magnitude) * magnitude)
    return [EventRequest(times[start], hours * 3600, kw, Scope())]


def _sample_rows(n: int, cfg: ScenarioConfig) -> FloatArray:
    k = min(cfg.telemetry_sample_devices, n)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.sort(np.random.default_rng(cfg.seed).choice(n, k, replace=False))


def _subset(batch: TelemetryBatch, sample: np.ndarray) -> TelemetryBatch:
    rows = batch.rows if batch.rows is not None else np.zeros(len(batch), np.int64) - 1
    keep = np.isin(rows, sample) & np.isfinite(batch.p_kw)
    return TelemetryBatch(
        batch.device_ids[keep],
        batch.ts[keep],
        batch.p_kw[keep],
        batch.soc[keep],
        batch.p_baseline_kw[keep],
        {k: v[keep] for k, v in batch.extras.items()},
        batch.rows[keep] if batch.rows is not None else None,
    )
