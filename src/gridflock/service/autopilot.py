"""The autopilot in the running service: re-plans on a schedule, proposes, acts or asks.

Every ``replan_interval_s`` (15 minutes; also on demand) it forecasts the fleet's import
without its batteries over the next ``horizon_h`` hours, solves the storage plan
(:func:`gridflock.optimize.autopilot.plan_fleet`) under the operator's policies, and cuts it
into **proposals**: pre-charge and discharge blocks, each with the policy that asked for it
and the reason. Proposals are shown ahead (API and dashboard).

* In ``automatic`` mode a proposal becomes an event (``source: autopilot``) once its start
  is within ``lead_s``; the ones further ahead stay proposed and are re-planned.
* In ``approval`` mode nothing happens until an operator approves a proposal (then its event
  is created at once, scheduled for its start) or vetoes it (the autopilot then proposes
  nothing of that kind over that window again).

With ``execute_as="schedules"`` the batteries' part goes to the devices as schedules through
the plan executor instead of events (the pre-charging plan itself): in automatic mode the
whole plan at each re-plan, in approval mode each approved block; each battery gets the
fleet's power in proportion to its power limit, and batteries that do not report are left
to their own control.

Re-planning replaces the proposals still pending; one whose window and action come back
keeps its id. Approved and executed proposals stand, and new blocks overlapping them are
left out. Every decision (plan, propose, approve, veto, execute, supersede, settings,
error) is appended to the decision log with its reason, through the store writer.

The forecast is pluggable (``forecaster``); the default is the daily seasonal-naive
forecast from the read model's 24-hour history (the same quarter hour yesterday), falling
back to the fleet's import now where history is missing.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

from gridflock.domain.auth import Principal, Role
from gridflock.domain.envelopes import Envelope
from gridflock.domain.errors import ConflictError, GridflockError, InvalidError, NotFoundError
from gridflock.domain.events import EventSource, Scope
from gridflock.domain.kinds import DeviceKind
from gridflock.domain.messages import FloatArray
from gridflock.domain.schedules import PlanSeries
from gridflock.domain.spec import FleetSpec
from gridflock.forecast import Forecast, WeatherSource
from gridflock.optimize import InitialState, PlanInfeasibleError, SiteForecasts, pick_quantile
from gridflock.optimize.autopilot import (
    QUARTER_S,
    FleetPlan,
    PlanError,
    Policies,
    StoragePool,
    Tariff,
    plan_devices,
    plan_fleet,
    proposals,
)
from gridflock.service.control import ControlLoop
from gridflock.service.events import EventService
from gridflock.service.plans import series_of
from gridflock.service.readmodel import ReadModel
from gridflock.store.records import AutopilotDecision, AutopilotProposal, IssuedForecast

__all__ = [
    "AUTOPILOT",
    "AutopilotService",
    "AutopilotSettings",
    "EngineInputs",
    "ForecastSource",
    "Forecaster",
    "engine_inputs",
]

log = logging.getLogger("gridflock.autopilot")

#: The principal the autopilot's own events are created by.
AUTOPILOT = Principal("autopilot", "autopilot", Role.OPERATOR)
#: A forecaster: quarter-hour starts (UTC) -> the fleet's import without batteries [kW].
Forecaster = Callable[[pd.DatetimeIndex], FloatArray]
Mode = Literal["automatic", "approval"]
Execution = Literal["events", "schedules"]
_OPEN = ("pending", "approved")
_KEEP_S = 86_400.0  # proposals kept in memory this long after they end
#: Outdoor temperature assumed where the weather source has none [°C].
_T_OUT_FALLBACK_C = 15.0
#: Fewest quarter hours a forecast must cover from now to be planned on.
_MIN_STEPS = 4


class ForecastSource(Protocol):
    """What the autopilot reads of the forecast service (``service.forecasting``)."""

    site_forecasts: dict[str, dict[str, Forecast]]
    weather: WeatherSource

    def latest(
        self,
        horizon: str | None = None,
        quantity: str | None = None,
        group_by: str | None = None,
        group: str | None = None,
    ) -> list[IssuedForecast]:
        """The latest group forecasts matching the filters."""
        ...


@dataclass(frozen=True)
class EngineInputs:
    """The forecast engine's latest issue, at the planning quantile, on the plan's steps."""

    times: pd.DatetimeIndex
    sites: SiteForecasts
    fleet_import_kw: FloatArray  #: the fleet's import without its batteries [kW, + import]
    source: str  #: in words, for the decision log


def engine_inputs(
    source: ForecastSource, spec: FleetSpec, times: pd.DatetimeIndex, quantile: float
) -> EngineInputs | None:
    """Per-site forecasts for the optimiser from the forecast engine's latest issues.

    Each quarter hour takes the latest issue covering it (intraday, then the day-ahead);
    the plan runs from the first covered quarter of ``times`` (the one under way is
    covered only by an issue made before it began) for as long as the issues cover it
    without a gap. Planning on quantile ``q`` is cautious on the side that costs:
    consumption at its ``q`` quantile (the ``1 - q`` quantile of ``load``, which is
    negative), PV and wind at their ``1 - q`` quantile, the fleet's import at its ``q``
    quantile (``-net`` at ``1 - q``, less the batteries' median, which the plan replaces).
    None when there is no ``load`` forecast or less than an hour is covered: the caller
    then falls back to the seasonal-naive forecast.
    """
    issues = sorted(
        ((h, per) for h, per in source.site_forecasts.items() if "load" in per),
        key=lambda hp: hp[1]["load"].issued_at,
        reverse=True,
    )
    if not issues:
        return None
    src = np.full(len(times), -1, dtype=np.int64)
    pos = np.full(len(times), -1, dtype=np.int64)
    for i, (_h, per) in enumerate(issues):
        p = np.asarray(per["load"].times.get_indexer(times), dtype=np.int64)
        take = (src < 0) & (p >= 0)
        src[take], pos[take] = i, p[take]
    covered = src >= 0
    if not covered.any():
        return None
    first = int(np.argmax(covered))
    gap = np.flatnonzero(~covered[first:])
    last = first + (int(gap[0]) if len(gap) else len(times) - first)
    if last - first < _MIN_STEPS:
        return None
    times, src, pos = times[first:last], src[first:last], pos[first:last]
    n = len(times)
    site_ids = pd.Index(spec.sites["id"].to_numpy(dtype=object))

    def per_site(quantity: str, q: float) -> FloatArray:
        out = np.zeros((len(site_ids), n))
        for i, (_h, per) in enumerate(issues):
            fc, cols = per.get(quantity), np.flatnonzero(src == i)
            if fc is None or not len(cols):
                continue
            at = pd.Index(fc.keys).get_indexer(site_ids)
            have = at >= 0
            block = fc.values[at[have]][:, pos[cols], :]
            vals = pick_quantile(np.asarray(fc.quantiles), np.moveaxis(block, -1, 0), q)
            out[np.ix_(np.flatnonzero(have), cols)] = np.nan_to_num(vals)
        return out

    load_kw = np.maximum(-per_site("load", 1.0 - quantile), 0.0)
    pv_kw = np.maximum(per_site("pv", 1.0 - quantile), 0.0)
    wind_kw = np.maximum(per_site("wind", 1.0 - quantile), 0.0)
    issued_at = np.array([issues[i][1]["load"].issued_at.timestamp() for i in src])
    valid = np.asarray(times.asi8 // 10**9, dtype=np.float64)
    t_out = np.full(n, _T_OUT_FALLBACK_C)
    try:
        w = source.weather.forecast(issued_at, valid)
        if "temp_air_c" in w:
            t_out = np.where(np.isfinite(w["temp_air_c"]), w["temp_air_c"], _T_OUT_FALLBACK_C)
    except (KeyError, ValueError) as e:
        log.warning("autopilot: no weather forecast (%s): %.0f °C assumed", e, t_out[0])
    fleet = _fleet_import(source, [h for h, _ in issues], src, times, quantile)
    if fleet is None:
        fleet = load_kw.sum(axis=0) - pv_kw.sum(axis=0) - wind_kw.sum(axis=0)
    used = ", ".join(
        f"{h} of {per['load'].issued_at:%Y-%m-%d %H:%M} UTC"
        for i, (h, per) in enumerate(issues)
        if (src == i).any()
    )
    return EngineInputs(
        times,
        SiteForecasts(load_kw, pv_kw, wind_kw, np.asarray(t_out, dtype=np.float64)),
        fleet,
        f"forecast engine ({used}), planned on its {quantile:.2f} quantile",
    )


def _fleet_import(
    source: ForecastSource,
    horizons: list[str],
    src: npt.NDArray[np.int64],
    times: pd.DatetimeIndex,
    quantile: float,
) -> FloatArray | None:
    """The fleet's import without batteries at ``quantile`` from the fleet group forecasts."""

    def group(quantity: str, q: float) -> FloatArray | None:
        out = np.full(len(times), np.nan)
        for i, h in enumerate(horizons):
            cols = np.flatnonzero(src == i)
            found = source.latest(h, quantity, "fleet", "fleet")
            if not len(cols) or not found:
                continue
            f = found[0]
            idx = pd.date_range(f.start, periods=f.values_kw.shape[0], freq=f"{f.step_s}s")
            at = idx.get_indexer(times[cols])
            ok = at >= 0
            vals = pick_quantile(np.asarray(f.quantiles), f.values_kw[at[ok]].T, q)
            out[cols[ok]] = vals
        return out if np.isfinite(out).all() else None

    net = group("net", 1.0 - quantile)
    if net is None:
        return None
    battery = group("battery", 0.5)
    out: FloatArray = -(net - (battery if battery is not None else 0.0))
    return out


@dataclass(frozen=True)
class AutopilotSettings:
    """What the operator sets: on or off, the mode, the policies and the tariff."""

    enabled: bool = True
    mode: Mode = "approval"
    policies: Policies = field(default_factory=Policies)
    tariff: Tariff = field(default_factory=Tariff)
    horizon_h: float = 24.0
    replan_interval_s: float = QUARTER_S
    lead_s: float = QUARTER_S
    execute_as: Execution = "events"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the tariff without dynamic prices)."""
        t = self.tariff
        return {
            "enabled": self.enabled,
            "mode": self.mode,
            "policies": self.policies.as_dict(),
            "tariff": {
                "kind": t.kind if t.kind != "dynamic" else "tou",
                "flat_eur_per_kwh": t.flat_eur_per_kwh,
                "bands": [list(b) for b in t.bands],
                "feed_in_eur_per_kwh": t.feed_in_eur_per_kwh,
            },
            "horizon_h": self.horizon_h,
            "replan_interval_s": self.replan_interval_s,
            "lead_s": self.lead_s,
            "execute_as": self.execute_as,
        }

    @staticmethod
    def from_dict(d: dict[str, Any]) -> AutopilotSettings:
        """Inverse of :meth:`as_dict`; :class:`InvalidError` names what is wrong."""
        try:
            t = dict(d.get("tariff") or {})
            if "bands" in t:
                t["bands"] = tuple(tuple(float(x) for x in b) for b in t["bands"])
            if t.get("kind") == "dynamic":
                raise PlanError(
                    "a dynamic tariff is not set through the settings: give tou or flat"
                )
            s = AutopilotSettings(
                enabled=bool(d.get("enabled", True)),
                mode=d.get("mode", "approval"),
                policies=Policies.from_dict(d.get("policies") or {}),
                tariff=Tariff(**t),
                horizon_h=float(d.get("horizon_h", 24.0)),
                replan_interval_s=float(d.get("replan_interval_s", QUARTER_S)),
                lead_s=float(d.get("lead_s", QUARTER_S)),
                execute_as=d.get("execute_as", "events"),
            )
        except (PlanError, TypeError, ValueError) as e:
            raise InvalidError(f"invalid autopilot settings: {e}") from None
        if s.execute_as not in ("events", "schedules"):
            raise InvalidError(f"execute_as must be 'events' or 'schedules', got {s.execute_as!r}")
        if s.mode not in ("automatic", "approval"):
            raise InvalidError(f"mode must be 'automatic' or 'approval', got {s.mode!r}")
        if not (math.isfinite(s.horizon_h) and 1 <= s.horizon_h <= 72):
            raise InvalidError("horizon_h must be within 1..72 hours")
        if not (math.isfinite(s.replan_interval_s) and 60 <= s.replan_interval_s <= 86_400):
            raise InvalidError("replan_interval_s must be within 60..86400 s")
        if not (math.isfinite(s.lead_s) and 0 <= s.lead_s <= 86_400):
            raise InvalidError("lead_s must be within 0..86400 s")
        return s


@dataclass(frozen=True)
class _Job:
    """One re-plan's inputs, read on the loop's thread and solved on a worker."""

    settings: AutopilotSettings
    times: pd.DatetimeIndex
    fc: FloatArray
    source: str
    pool: StoragePool
    tz: str
    inputs: EngineInputs | None
    state: InitialState | None
    envelopes: tuple[Envelope, ...] = ()


class AutopilotService:
    """Plans, proposes, executes or waits for the operator; logs every decision."""

    def __init__(
        self,
        loop: ControlLoop,
        events: EventService,
        read_model: ReadModel,
        forecaster: Forecaster | None = None,
        forecasts: ForecastSource | None = None,
    ) -> None:
        self.loop = loop
        self.events = events
        self.read_model = read_model
        self.forecaster = forecaster or self._seasonal_naive
        self.forecasts = forecasts
        self.forecast_source = "none yet"
        #: Longest one LP of the per-device plan may take [s]: the re-plan runs between
        #: control cycles, so a fleet cap coupling thousands of sites gives way to the next
        #: cap, then to none (decomposed per site), rather than hold the loop.
        self.plan_time_limit_s: float | None = 5.0
        self.settings = AutopilotSettings()
        self.plan: FleetPlan | None = None
        self.planned_at: float | None = None
        self.items: dict[str, AutopilotProposal] = {}
        self._next_plan = -math.inf
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="autopilot")
        self._running: tuple[_Job, Future[tuple[FleetPlan | None, str | None]]] | None = None
        #: Prices from outside (the utility's, over OpenADR) laid over the tariff per plan.
        self.price_overlay: Callable[[Tariff, pd.DatetimeIndex, str], Tariff] | None = None

    # ------------------------------------------------------------------ life
    def load(self) -> None:
        """Take up the last settings and the open proposals from the store."""
        store = self.loop.store
        try:
            last, _ = store.decisions(kind="settings", limit=1)
            if last and last[0].detail:
                self.settings = AutopilotSettings.from_dict(last[0].detail)
            now = self.loop.clock()
            for status in (*_OPEN, "executed"):
                items, _ = store.proposals(status=status, since=now, limit=10_000)
                self.items.update({p.id: p for p in items})
        except (GridflockError, OSError) as e:  # a bad stored row must not stop the service
            log.warning("autopilot: could not take up its state from the store: %s", e)

    def tick(self, now: float) -> None:
        """Called after each control cycle: re-plan when due, execute what is due.

        The re-plan's solve runs in a worker thread (one at a time); its result is taken
        up at the first cycle after it is done. A failure is logged and retried at the next
        re-plan; it never stops the control loop.
        """
        if not self.settings.enabled:
            return
        try:
            running = self._running
            if running is not None and running[1].done():
                self._running = None
                self._apply(running[0], running[1].result(), now)
            elif running is None and now >= self._next_plan:
                job = self._prepare(now)
                if job is not None:
                    self._running = (job, self._worker.submit(self._compute, job))
            if self.settings.mode == "automatic":
                self._execute_due(now)
            self._expire(now)
        except Exception as e:  # the control loop goes on without the autopilot's turn
            self._next_plan = now + self.settings.replan_interval_s
            log.exception("autopilot turn failed")
            self._log(
                "error", "autopilot", f"internal error: {e.__class__.__name__}: {e}", None, None
            )

    # ------------------------------------------------------------------ planning
    def _seasonal_naive(self, times: pd.DatetimeIndex) -> FloatArray:
        """The same quarter hour yesterday, from the read model's 24-hour history."""
        now = self.loop.clock()
        hist = self.read_model.fleet_history(now - 86_400.0, now)
        kinds = [k.value for k in self.loop.state.kinds if k is not DeviceKind.BATTERY]
        fallback = float(-self.loop.state.p_kw[self._not_battery()].sum())
        if hist.empty:
            return np.full(len(times), fallback)
        imp = -hist[kinds].sum(axis=1)
        quarter = hist["ts"].dt.floor("15min")
        means = imp.groupby(quarter).mean()
        back = times - pd.Timedelta(days=1)
        out = np.array(means.reindex(back).to_numpy(np.float64), dtype=np.float64)
        out[~np.isfinite(out)] = fallback
        return out

    def _not_battery(self) -> np.ndarray:
        st = self.loop.state
        mask = np.ones(st.n, bool)
        sl = st.kind_slices.get(DeviceKind.BATTERY)
        if sl is not None:
            mask[sl] = False
        return mask

    def _pool(self) -> StoragePool:
        st = self.loop.state
        sl = st.kind_slices.get(DeviceKind.BATTERY)
        if sl is None or sl.stop == sl.start:
            return StoragePool(0.0, 0.0, 0.0, 0.0)
        c = st.kind_columns[DeviceKind.BATTERY]
        floor = np.maximum(c["soc_min"], c["soc_reserve"])
        online = st.online[sl]
        soc = np.where(np.isfinite(st.soc[sl]), st.soc[sl], floor)
        w = online.astype(np.float64)  # only batteries that report can be planned on
        return StoragePool.from_arrays(
            c["e_kwh"] * w,
            soc,
            floor,
            c["soc_max"],
            c["p_charge_max_kw"] * w,
            c["p_discharge_max_kw"] * w,
            c["eta_charge"],
            c["eta_discharge"],
        )

    def _tz(self) -> str:
        spec = self.loop.spec
        return str(spec.sites["tz"].iloc[0]) if len(spec.sites) else "UTC"

    def replan(self, now: float) -> FleetPlan | None:
        """Forecast, solve and propose now, on this thread; returns the plan (None if it failed).

        The control loop does not call this: :meth:`tick` solves in a worker thread
        (:meth:`_prepare` / :meth:`_compute` / :meth:`_apply`) so control cycles go on.
        """
        job = self._prepare(now)
        if job is None:
            return None
        return self._apply(job, self._compute(job), now)

    def finish(self, now: float, timeout_s: float | None = None) -> bool:
        """Wait for the re-plan being solved (if any) and take it up; False on timeout."""
        running = self._running
        if running is None:
            return True
        try:
            result = running[1].result(timeout=timeout_s)
        except TimeoutError:
            return False
        self._running = None
        self._apply(running[0], result, now)
        return True

    async def replan_async(self, now: float) -> FleetPlan | None:
        """:meth:`replan` for the event loop: the solve runs in a worker thread."""
        job = self._prepare(now)
        if job is None:
            return None
        result = await asyncio.to_thread(self._compute, job)
        return self._apply(job, result, now)

    def _prepare(self, now: float) -> _Job | None:
        """What a re-plan needs, read on the loop's thread (state and forecasts move)."""
        s = self.settings
        self._next_plan = now + s.replan_interval_s
        start = pd.Timestamp(math.floor(now / QUARTER_S) * QUARTER_S, unit="s", tz="UTC")
        n = max(round(s.horizon_h * 3600.0 / QUARTER_S), 1)
        times = pd.date_range(start, periods=n, freq=pd.Timedelta(seconds=QUARTER_S))
        try:
            inputs: EngineInputs | None = None
            if self.forecasts is not None:
                inputs = engine_inputs(self.forecasts, self.loop.spec, times, s.policies.quantile)
            if inputs is not None:
                times, fc, source = inputs.times, inputs.fleet_import_kw, inputs.source
            else:
                fc = np.asarray(self.forecaster(times), dtype=np.float64)
                source = (
                    "seasonal naive (yesterday's same quarter hours): no forecast issued yet"
                    if self.forecaster == self._seasonal_naive
                    else "the configured forecaster"
                )
            state = InitialState.from_fleet_state(self.loop.state) if inputs is not None else None
            if self.price_overlay is not None:
                s = replace(s, tariff=self.price_overlay(s.tariff, times, self._tz()))
            envelopes = self.loop.dispatcher.envelopes
            return _Job(s, times, fc, source, self._pool(), self._tz(), inputs, state, envelopes)
        except (PlanError, ValueError) as e:
            self._log("error", "autopilot", f"no new plan: {e}", None, None)
            return None

    def _compute(self, job: _Job) -> tuple[FleetPlan | None, str | None]:
        """Solve the sketch and the per-device plan (pure: safe on a worker thread).

        Returns the plan (None if even the sketch failed) and the error that stopped a
        step, in words for the decision log.
        """
        s = job.settings
        try:
            sketch = plan_fleet(job.times, job.fc, job.pool, s.tariff, s.policies, job.tz)
        except (PlanError, ValueError) as e:
            return None, f"no new plan: {e}"
        if job.inputs is None or job.state is None:
            return sketch, None
        try:
            plan = plan_devices(
                self.loop.spec,
                job.times,
                job.inputs.sites,
                job.state,
                s.tariff,
                s.policies,
                sketch,
                job.tz,
                time_limit_s=self.plan_time_limit_s,
                envelopes=job.envelopes,
            )
        except (PlanInfeasibleError, GridflockError, PlanError, ValueError) as e:
            return sketch, f"no plan per device ({e}); the fleet's storage plan stands"
        return plan, None

    def _apply(
        self, job: _Job, result: tuple[FleetPlan | None, str | None], now: float
    ) -> FleetPlan | None:
        """Take a computed plan up on the loop's thread: log it, propose, maybe schedule."""
        plan, error = result
        if error is not None:
            self._log("error", "autopilot", error, None, None)
        if plan is None:
            return None
        s, times, fc, pool, source = job.settings, job.times, job.fc, job.pool, job.source
        self.forecast_source = source
        self.plan, self.planned_at = plan, now
        blocks = proposals(plan, job.tz, min_kw=max(0.01 * pool.p_charge_max_kw, 1.0))
        per_device = plan.devices is not None
        self._log(
            "plan",
            "autopilot",
            f"planned {len(times)} quarter hours from {times[0]:%Y-%m-%d %H:%M} UTC "
            f"{'per device' if per_device else 'for the storage as one'}: peak "
            f"{float(fc.max()):,.0f} -> {plan.peak_kw:,.0f} kW, {len(blocks)} blocks; "
            f"forecast: {source}",
            None,
            {
                "storage_kwh": round(pool.e_max_kwh, 3),
                "stored_kwh": round(pool.e_now_kwh, 3),
                "objective_eur": round(plan.objective_eur, 4),
                "forecast_peak_kw": round(float(fc.max()), 3),
                "planned_peak_kw": round(plan.peak_kw, 3),
                "per_device": per_device,
                "sites_left_out": (
                    len(plan.devices.infeasible) if plan.devices is not None else None
                ),
                "fleet_cap_kw": None if not math.isfinite(plan.cap_kw) else round(plan.cap_kw, 3),
                "forecast": source,
            },
        )
        self._reconcile(blocks, now)
        if s.mode == "automatic" and s.execute_as == "schedules":
            self._schedule_plan(plan, now)
        return plan

    def _reconcile(self, blocks: list[Any], now: float) -> None:
        """Replace pending proposals by the new plan's blocks, keeping committed ones."""
        committed = [p for p in self.items.values() if p.status in ("approved", "executed")]
        vetoed = [p for p in self.items.values() if p.status == "vetoed"]
        pending = {
            (p.action, p.start, p.end): p for p in self.items.values() if p.status == "pending"
        }
        created = _utc(now)
        scope = self.settings.policies.peak_shaving.scope
        fresh: list[AutopilotProposal] = []
        for b in blocks:
            a, z = b.start.to_pydatetime(), b.end.to_pydatetime()
            if any(p.start < z and a < p.end for p in committed):
                continue  # a committed block stands
            if any(p.action == b.action and p.start < z and a < p.end for p in vetoed):
                continue  # the operator said no to this over this window
            old = pending.pop((b.action, a, z), None)
            fresh.append(
                AutopilotProposal(
                    old.id if old else f"ap-{uuid.uuid4().hex[:12]}",
                    old.created_at if old else created,
                    a,
                    z,
                    b.action,
                    round(b.target_kw, 3),
                    round(b.energy_kwh, 3),
                    scope,
                    b.policy,
                    b.reason,
                    "pending",
                )
            )
        gone = [replace(p, status="superseded", decided_at=created) for p in pending.values()]
        for p in gone:
            self.items[p.id] = p
        for p in fresh:
            self.items[p.id] = p
        self._save(gone + fresh)
        if gone:
            self._log(
                "supersede",
                "autopilot",
                f"{len(gone)} pending proposals replaced by the new plan",
                None,
                {"ids": [p.id for p in gone][:100]},
            )
        for p in fresh:
            self._log("propose", "autopilot", p.reason, p.id, _brief(p))

    # ------------------------------------------------------------------ decisions
    def approve(self, proposal_id: str, principal: Principal) -> AutopilotProposal:
        """An operator approves: the proposal's event is created now (scheduled for its start)."""
        p = self._open(proposal_id)
        p = replace(p, status="approved", decided_by=principal.label, decided_at=self._now())
        self.items[p.id] = p
        self._save([p])
        self._log("approve", principal.label, f"approved: {p.reason}", p.id, _brief(p))
        return self._run(p, principal)

    def veto(self, proposal_id: str, principal: Principal, reason: str) -> AutopilotProposal:
        """An operator vetoes: nothing of that kind over that window is proposed again."""
        p = self._open(proposal_id)
        if p.status != "pending":
            raise ConflictError(
                f"proposal {proposal_id} is {p.status}: only a pending one can be vetoed; "
                "cancel its event instead"
            )
        p = replace(p, status="vetoed", decided_by=principal.label, decided_at=self._now())
        self.items[p.id] = p
        self._save([p])
        why = reason.strip() or "no reason given"
        self._log("veto", principal.label, f"vetoed: {why}", p.id, _brief(p))
        return p

    def _open(self, proposal_id: str) -> AutopilotProposal:
        p = self.items.get(proposal_id)
        if p is None:
            raise NotFoundError(
                f"unknown proposal {proposal_id!r}: list them at /api/v1/autopilot/proposals"
            )
        if p.status != "pending":
            raise ConflictError(
                f"proposal {proposal_id} is {p.status}, not pending: "
                + (
                    "the plan has changed since; approve one of the pending proposals"
                    if p.status == "superseded"
                    else "it was decided already"
                )
            )
        return p

    # ------------------------------------------------------------------ schedules
    def _series(self, net_kw: FloatArray, start: float, plan_id: str) -> PlanSeries | None:
        """The fleet's battery power per quarter (+ discharge) split over the batteries."""
        st = self.loop.state
        sl = st.kind_slices.get(DeviceKind.BATTERY)
        if sl is None or sl.stop == sl.start:
            return None
        c = st.kind_columns[DeviceKind.BATTERY]
        w = st.online[sl].astype(np.float64)
        pd_, pc = c["p_discharge_max_kw"] * w, c["p_charge_max_kw"] * w
        if pd_.sum() <= 0 or pc.sum() <= 0:
            return None
        net = np.asarray(net_kw, dtype=np.float64)[None, :]
        p = np.where(net > 0, (pd_ / pd_.sum())[:, None] * net, (pc / pc.sum())[:, None] * net)
        p[w == 0] = np.nan  # not reporting: left to its own control
        return PlanSeries(plan_id, st.device_ids[sl], p, start, QUARTER_S)

    def _block_series(self, q0: float, steps: int, plan_id: str) -> PlanSeries | None:
        """The batteries' rows of the per-device plan over one block (None: no such plan)."""
        plan = self.plan
        if plan is None or plan.devices is None:
            return None
        full = series_of(plan.devices, self.loop.state, plan_id)
        k = round((q0 - full.start) / full.step_s)
        if k < 0 or k + steps > full.steps:
            return None
        st = self.loop.state
        sl = st.kind_slices.get(DeviceKind.BATTERY)
        if sl is None:
            return None
        battery = np.isin(full.device_ids, st.device_ids[sl])
        if not battery.any():
            return None
        return PlanSeries(
            plan_id,
            full.device_ids[battery],
            full.p_kw[battery, k : k + steps],
            q0,
            full.step_s,
        )

    def _send(self, series: PlanSeries | None, now: float, proposal_id: str | None) -> bool:
        """Send battery schedules; log what the executor did. Whether anything could go."""
        plans = self.loop.plans
        if series is None or plans is None:
            self._log("error", "autopilot", "no battery to send schedules to", proposal_id, None)
            return False
        try:
            r = plans.apply(series, now)
        except ValueError as e:
            self._log("error", "autopilot", f"schedules refused: {e}", proposal_id, None)
            return False
        self._log(
            "schedule",
            "autopilot",
            f"plan {r.plan_id} to the batteries as schedules: {r.sent} sent, {r.unchanged} "
            f"unchanged, {sum(r.refused.values())} refused",
            proposal_id,
            {"plan_id": r.plan_id, "sent": r.sent, "unchanged": r.unchanged, "refused": r.refused},
        )
        return True

    def _schedule_plan(self, plan: FleetPlan, now: float) -> None:
        """Automatic mode with schedules: the whole plan goes to the devices.

        The per-device plan as it is (every device with a setpoint); the fleet's storage
        plan alone is split over the batteries by their power limits.
        """
        start = plan.times[0].timestamp()
        plan_id = f"ap-{int(start)}"
        series = (
            series_of(plan.devices, self.loop.state, plan_id)
            if plan.devices is not None
            else self._series(plan.discharge_kw - plan.charge_kw, start, plan_id)
        )
        if not self._send(series, now, None):
            return
        done = [
            replace(p, status="executed", decided_at=_utc(now))
            for p in self.items.values()
            if p.status == "pending"
        ]
        for p in done:
            self.items[p.id] = p
        self._save(done)

    def _execute_due(self, now: float) -> None:
        if self.settings.execute_as == "schedules":
            return  # the plan went out as schedules at the re-plan
        for p in list(self.items.values()):
            if p.status == "pending" and p.start.timestamp() <= now + self.settings.lead_s:
                self._run(p, AUTOPILOT)

    def _run(self, p: AutopilotProposal, principal: Principal) -> AutopilotProposal:
        """Create the proposal's event (``source: autopilot``); a refusal is logged, not raised."""
        now = self.loop.clock()
        start = max(p.start.timestamp(), now)
        end = p.end.timestamp()
        if end <= now + 1:
            p = replace(p, status="expired", decided_at=_utc(now))
            self.items[p.id] = p
            self._save([p])
            self._log("expire", "autopilot", "its window passed before it ran", p.id, None)
            return p
        if self.settings.execute_as == "schedules":
            q0 = p.start.timestamp()
            steps = max(round((end - q0) / QUARTER_S), 1)
            series = self._block_series(q0, steps, f"{p.id}"[:48])
            if series is None:
                series = self._series(np.full(steps, p.target_kw), q0, f"{p.id}"[:48])
            ok = self._send(series, now, p.id)
            p = replace(p, status="executed" if ok else "failed", decided_at=_utc(now))
            self.items[p.id] = p
            self._save([p])
            return p
        try:
            event = self.events.create(
                p.target_kw,
                start,
                end - start,
                Scope.parse(p.scope),
                principal,
                EventSource.AUTOPILOT,
                allow_partial=True,
            )
        except GridflockError as e:
            p = replace(p, status="failed", decided_at=_utc(now))
            self.items[p.id] = p
            self._save([p])
            self._log("error", "autopilot", f"its event was refused: {e}", p.id, None)
            return p
        p = replace(p, status="executed", event_id=event.id, decided_at=_utc(now))
        self.items[p.id] = p
        self._save([p])
        self._log(
            "execute",
            principal.label,
            f"event {event.id} created ({p.target_kw:+,.0f} kW): {p.reason}",
            p.id,
            {**_brief(p), "event_id": event.id},
        )
        return p

    def _expire(self, now: float) -> None:
        for p in list(self.items.values()):
            if p.end.timestamp() < now - _KEEP_S:
                del self.items[p.id]
            elif p.status in _OPEN and p.end.timestamp() <= now:
                q = replace(p, status="expired", decided_at=_utc(now))
                self.items[p.id] = q
                self._save([q])
                self._log("expire", "autopilot", "its window passed without an event", p.id, None)

    def set_settings(self, settings: AutopilotSettings, principal: Principal) -> None:
        """Replace the settings; re-plan at the next cycle."""
        self.settings = settings
        self._next_plan = -math.inf
        self._log(
            "settings",
            principal.label,
            f"settings changed: {'on' if settings.enabled else 'off'}, {settings.mode} mode",
            None,
            settings.as_dict(),
        )

    # ------------------------------------------------------------------ reads
    def proposals_list(self, status: str | None = None) -> list[AutopilotProposal]:
        """Proposals in memory (the last day and ahead), by start."""
        items = [p for p in self.items.values() if status is None or p.status == status]
        return sorted(items, key=lambda p: (p.start, p.id))

    def decisions(
        self, kind: str | None, limit: int, offset: int
    ) -> tuple[list[AutopilotDecision], int]:
        """The decision log from the store, newest first."""
        return self.loop.store.decisions(kind=kind, limit=limit, offset=offset)

    def status(self) -> dict[str, Any]:
        """On or off, mode, when it planned and plans next, proposals by status."""
        counts: dict[str, int] = {}
        for p in self.items.values():
            counts[p.status] = counts.get(p.status, 0) + 1
        plan = self.plan
        return {
            "enabled": self.settings.enabled,
            "mode": self.settings.mode,
            "planned_at": None if self.planned_at is None else _utc(self.planned_at),
            "next_plan_at": (
                _utc(self._next_plan)
                if self.settings.enabled and math.isfinite(self._next_plan)
                else None
            ),
            "proposals": counts,
            "planned_peak_kw": None if plan is None else plan.peak_kw,
            "forecast_peak_kw": None if plan is None else float(plan.forecast_import_kw.max()),
            "per_device": plan is not None and plan.devices is not None,
            "forecast": self.forecast_source,
        }

    def _now(self) -> datetime:
        return _utc(self.loop.clock())

    # ------------------------------------------------------------------ store
    def _save(self, items: list[AutopilotProposal]) -> None:
        if not items:
            return
        store = self.loop.store
        self.loop.writer.op(
            "autopilot.proposals",
            lambda: store.save_proposals(items),
            [_brief(p) for p in items],
        )

    def _log(
        self,
        kind: str,
        actor: str,
        reason: str,
        proposal_id: str | None,
        detail: dict[str, Any] | None,
    ) -> None:
        ts = self.loop.clock()
        store = self.loop.store
        log.info("autopilot %s by %s: %s", kind, actor, reason)
        self.loop.writer.op(
            "autopilot.decision",
            lambda: store.record_decision(
                kind, actor, reason, proposal_id=proposal_id, detail=detail, ts=ts
            ),
            {"ts": ts, "kind": kind, "actor": actor, "reason": reason},
        )


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _brief(p: AutopilotProposal) -> dict[str, Any]:
    return {
        "id": p.id,
        "action": p.action,
        "start": p.start.isoformat(),
        "end": p.end.isoformat(),
        "target_kw": p.target_kw,
        "policy": p.policy,
        "status": p.status,
    }
