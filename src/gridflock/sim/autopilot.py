"""The autopilot's proof: the twin over days, three ways (no VPP, manual events, autopilot).

* **no VPP**: the twin's shadow, which never sees a command (the same seed, the same weather,
  loads and EV sessions as the two runs below, so all three are compared on identical days).
* **manual**: today's practice, the default evening event each day (placed by
  :mod:`gridflock.sim.scenario` on a perfect forecast of that day, sized to the fleet's
  flexibility), served by the dispatcher.
* **autopilot**: the fleet's batteries follow a plan re-solved every 15 minutes over the
  next 24 hours (:func:`gridflock.optimize.autopilot.plan_fleet`) from a forecast issued
  before the fact: the seasonal-naive forecast (the mean of the same quarter hour over the
  seven preceding days of the fleet's reported baseline, the first week from a twin run over
  the preceding week), corrected by the last quarter's error with a one-hour decay. It never
  sees the twin's future. The plan is executed per battery as setpoints with a validity, the
  way a schedule is: charge where the plan charges, hold, and discharge up to each home's own
  import where it discharges.

Figures per way: peak net import, energy cost under a tariff, energy shifted, comfort
violations (heat pumps and water heaters pushed outside their band by the VPP), EV departures
met (a session leaves with no less energy than it would have without the VPP) and battery
cycles.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gridflock.dispatch.dispatcher import Dispatcher
from gridflock.domain.events import Event, EventSource
from gridflock.domain.kinds import DeviceKind
from gridflock.domain.messages import CommandBatch, FloatArray
from gridflock.domain.spec import FleetSpec
from gridflock.fleet.state import FleetState
from gridflock.optimize.autopilot import (
    QUARTER_S,
    FleetPlan,
    PlanError,
    Policies,
    Proposal,
    StoragePool,
    Tariff,
    plan_fleet,
    proposals,
)
from gridflock.sim.imperfections import Imperfections
from gridflock.sim.scenario import ScenarioConfig, _forecast_default_event, scenario_tracker_config
from gridflock.sim.twin import Twin

__all__ = [
    "COMPARISON_SCHEMA_VERSION",
    "Comparison",
    "ComparisonConfig",
    "SeasonalNaive",
    "TwinAutopilot",
    "WayResult",
    "run_comparison",
    "write_comparison",
]

K = DeviceKind
Progress = Callable[[str, int, int], None]
COMPARISON_SCHEMA_VERSION = 1
_DAY_S = 86_400.0
#: A device-step counts as a comfort violation when the VPP leaves it this far [K] further
#: outside its band than it would have been on its own.
COMFORT_TOLERANCE_K = 0.1
#: An EV session counts as met when it leaves with at most this much less energy [kWh]
#: than it would have without the VPP.
EV_TOLERANCE_KWH = 0.05


@dataclass(frozen=True)
class ComparisonConfig:
    """What to compare: ``days`` from local midnight of ``date``."""

    date: dt.date
    days: int = 7
    step_s: float = 300.0
    seed: int = 7
    imperfections: Imperfections = field(default_factory=Imperfections)
    tariff: Tariff = field(default_factory=Tariff)
    policies: Policies = field(default_factory=Policies)
    history_days: int = 7

    def __post_init__(self) -> None:
        if not 1 <= self.days <= 31:
            raise ValueError(f"days must be within 1..31, got {self.days}")
        if not 1 <= self.history_days <= 28:
            raise ValueError(f"history days must be within 1..28, got {self.history_days}")
        if not (60 <= self.step_s <= QUARTER_S and QUARTER_S % self.step_s == 0):
            raise ValueError(
                f"the step must divide 15 minutes and be at least 1 minute, got {self.step_s} s"
            )


@dataclass
class WayResult:
    """One way of running the fleet: its series and figures."""

    name: str
    net_kw: FloatArray
    battery_kw: FloatArray
    battery_throughput_kwh: float
    comfort_violations: int
    ev_sessions: int
    ev_met: int
    commands: int = 0
    decisions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Comparison:
    """The three ways over the same days."""

    config: ComparisonConfig
    spec: FleetSpec
    tz: str
    times: pd.DatetimeIndex
    prices: FloatArray
    feed_in: FloatArray
    ways: dict[str, WayResult]
    forecast_kw: FloatArray
    manual_events: list[Event]
    runtime_s: float

    def figures(self, name: str) -> dict[str, float]:
        """Peak, cost, energy and the invariants of one way."""
        w = self.ways[name]
        dt_h = self.config.step_s / 3600.0
        imp = np.maximum(-w.net_kw, 0.0)
        exp = np.maximum(w.net_kw, 0.0)
        base = np.maximum(-self.ways["no_vpp"].net_kw, 0.0)
        e_kwh = float(self.spec.devices[K.BATTERY]["e_kwh"].sum())
        return {
            "peak_import_kw": float(imp.max()),
            "energy_cost_eur": float((self.prices * imp - self.feed_in * exp).sum() * dt_h),
            "energy_imported_kwh": float(imp.sum() * dt_h),
            "energy_exported_kwh": float(exp.sum() * dt_h),
            "energy_shifted_kwh": float(np.maximum(base - imp, 0.0).sum() * dt_h),
            "comfort_violations": float(w.comfort_violations),
            "ev_departures": float(w.ev_sessions),
            "ev_departures_met_pct": 100.0 * w.ev_met / w.ev_sessions if w.ev_sessions else 100.0,
            "battery_cycles": w.battery_throughput_kwh / (2.0 * e_kwh) if e_kwh > 0 else 0.0,
        }


class SeasonalNaive:
    """Forecast by quarter hour: the mean of the same quarter over the preceding days.

    Fed with observed quarter means (UTC quarter start → kW); a forecast for a quarter uses
    only quarters at least one day before it, so it never sees what it forecasts.
    """

    def __init__(self, days: int = 7) -> None:
        self.days = days
        self.seen: dict[int, float] = {}

    def observe(self, quarter_ts: float, kw: float) -> None:
        """Record the observed mean of the quarter starting at ``quarter_ts`` (UTC s)."""
        self.seen[round(quarter_ts)] = kw

    def forecast(self, starts: FloatArray) -> FloatArray:
        """Forecast for quarters starting at ``starts`` (UTC s); NaN where no day is known."""
        out = np.full(len(starts), np.nan)
        for i, ts in enumerate(starts.tolist()):
            vals = [
                self.seen[k]
                for d in range(1, self.days + 1)
                if (k := round(ts - d * _DAY_S)) in self.seen
            ]
            if vals:
                out[i] = float(np.mean(vals))
        return out


class TwinAutopilot:
    """Plans the fleet's batteries every quarter hour and turns the plan into setpoints.

    Reads only what telemetry tells (the fleet state) and the forecast; writes commands.
    """

    def __init__(
        self,
        state: FleetState,
        forecaster: SeasonalNaive,
        tariff: Tariff,
        policies: Policies,
        tz: str,
        step_s: float,
        horizon_quarters: int = 96,
    ) -> None:
        self.state = state
        self.forecaster = forecaster
        self.tariff = tariff
        self.policies = policies
        self.tz = tz
        self.step_s = step_s
        self.horizon = horizon_quarters
        sl = state.kind_slices[K.BATTERY]
        self.rows = np.arange(sl.start, sl.stop)
        c = state.kind_columns[K.BATTERY]
        self.c = c
        self.floor = np.maximum(c["soc_min"], c["soc_reserve"])
        self.not_battery = np.ones(state.n, bool)
        self.not_battery[sl] = False
        bat_sites = state.site_idx[sl]
        self.bat_sites = bat_sites
        self.bat_share = 1.0 / np.bincount(bat_sites, minlength=state.grid.n_sites)[bat_sites]
        self.plan: FleetPlan | None = None
        self.plans = 0
        self.decisions: list[dict[str, Any]] = []
        self._acc = 0.0
        self._acc_n = 0
        self._last_quarter: float | None = None
        self._last_forecast: float | None = None
        self._seq = 0

    def baseline_import_kw(self) -> float:
        """The fleet's import without its batteries, from the devices' reported baselines."""
        base = self.state.baseline_kw()
        return float(-np.nansum(base[self.not_battery]))

    def observe(self, now: float) -> None:
        """Accumulate the quarter's observed baseline (call after each step's telemetry)."""
        self._acc += self.baseline_import_kw()
        self._acc_n += 1

    def replan(self, now: float) -> FleetPlan | None:
        """At a quarter's start: close the last quarter, forecast, plan the next 24 h."""
        if self._last_quarter is not None and self._acc_n:
            self.forecaster.observe(self._last_quarter, self._acc / self._acc_n)
        observed = self._acc / self._acc_n if self._acc_n else None
        self._acc, self._acc_n = 0.0, 0
        starts: FloatArray = now + QUARTER_S * np.arange(self.horizon, dtype=np.float64)
        fc = self.forecaster.forecast(starts)
        if np.isnan(fc).all():
            self._last_quarter = now
            return None
        fc = np.asarray(pd.Series(fc).ffill().bfill(), dtype=np.float64)
        naive_now = float(fc[0])
        # intraday: the last quarter's error carries on, fading over an hour
        if observed is not None and self._last_forecast is not None:
            err = observed - self._last_forecast
            fc = fc + err * np.exp(-np.arange(self.horizon, dtype=np.float64) / 4.0)
        self._last_quarter = now
        times = pd.DatetimeIndex(pd.to_datetime(starts, unit="s", utc=True))
        c = self.c
        soc = self.state.soc[self.rows]
        pool = StoragePool.from_arrays(
            c["e_kwh"],
            np.where(np.isfinite(soc), soc, self.floor),
            self.floor,
            c["soc_max"],
            c["p_charge_max_kw"],
            c["p_discharge_max_kw"],
            c["eta_charge"],
            c["eta_discharge"],
        )
        try:
            self.plan = plan_fleet(times, fc, pool, self.tariff, self.policies, self.tz)
        except PlanError as e:  # keep the last plan and say why
            self.decisions.append({"at": times[0].isoformat(), "decision": f"no new plan: {e}"})
            return self.plan
        self._last_forecast = naive_now  # the error is measured against the naive forecast
        self.plans += 1
        local = times[0].tz_convert(self.tz)
        if local.hour == 0 and local.minute == 0:  # the day-ahead plan: log its proposals
            for p in proposals(self.plan, self.tz, min_kw=max(0.01 * pool.p_charge_max_kw, 1.0)):
                self.decisions.append(_decision(p, times[0]))
        return self.plan

    def commands(self, now: float) -> CommandBatch | None:
        """Battery setpoints for the step starting at ``now``, from the plan's quarter."""
        plan = self.plan
        if plan is None or not len(self.rows):
            return None
        q = int((now - plan.times[0].timestamp()) // QUARTER_S)
        if not 0 <= q < len(plan.times):
            return None
        st, c, rows = self.state, self.c, self.rows
        dt_h = self.step_s / 3600.0
        soc = np.where(np.isfinite(st.soc[rows]), st.soc[rows], self.floor)
        p = np.nan_to_num(st.p_kw)
        other = np.bincount(
            st.site_idx[self.not_battery],
            weights=p[self.not_battery],
            minlength=st.grid.n_sites,
        )[self.bat_sites]
        home_import = np.maximum(-other, 0.0) * self.bat_share
        charge, discharge = plan.charge_kw[q], plan.discharge_kw[q]
        sp = np.zeros(len(rows))
        if discharge > 0:
            # the homes' own import first, then export to the neighbours (the fleet's peak
            # is the neighbours' import too), within each site's export limit
            stored = np.maximum(soc - self.floor, 0.0) * c["e_kwh"] * c["eta_discharge"] / dt_h
            lim = st.grid.site_export_limit_kw[self.bat_sites]
            head = np.where(np.isfinite(lim), lim * self.bat_share + home_import, np.inf)
            cap = np.minimum(np.minimum(c["p_discharge_max_kw"], stored), head)
            own = np.minimum(home_import, cap)
            if own.sum() >= discharge:
                sp = own * (discharge / own.sum())
            else:
                extra = cap - own
                more = discharge - own.sum()
                sp = own + (extra * min(more / extra.sum(), 1.0) if extra.sum() > 0 else 0.0)
        else:
            room = np.maximum(c["soc_max"] - soc, 0.0) * c["e_kwh"] / (c["eta_charge"] * dt_h)
            can = np.minimum(c["p_charge_max_kw"], room)
            # the home's own surplus is always taken in (it would go out at the feed-in
            # price): the plan sets the least charge, the meter what more there is to take
            own_surplus = np.minimum(np.maximum(other, 0.0) * self.bat_share, can)
            sp = -own_surplus
            if charge > 0:
                lim = st.grid.site_import_limit_kw[self.bat_sites]
                head = np.where(np.isfinite(lim), np.maximum(lim - home_import, 0.0), np.inf)
                w = np.minimum(can, head * self.bat_share)
                total = w.sum()
                if total > 0:
                    sp = -np.maximum(w * min(charge / total, 1.0), own_surplus)
        self._seq += 1
        n = len(rows)
        return CommandBatch(
            np.array([f"ap-{self._seq}-{i}" for i in range(n)], dtype=object),
            st.device_ids[rows],
            sp,
            np.full(n, now + 2 * self.step_s),  # lapse to the device's own control if silent
            np.full(n, int(now * 1000) + self._seq, dtype=np.int64),
            now,
            None,
        )


def _decision(p: Proposal, issued: pd.Timestamp) -> dict[str, Any]:
    d = p.as_dict()
    d["issued_at"] = issued.isoformat()
    return d


def _start(spec: FleetSpec, day: dt.date) -> tuple[str, pd.Timestamp]:
    tz = str(spec.sites["tz"].iloc[0]) if len(spec.sites) else "UTC"
    local = pd.Timestamp(dt.datetime.combine(day, dt.time()))
    return tz, local.tz_localize(tz).tz_convert("UTC")


def _history(
    spec: FleetSpec, cfg: ComparisonConfig, forecaster: SeasonalNaive, progress: Progress | None
) -> None:
    """The preceding days, left alone: their reported baselines (without batteries) by quarter."""
    day0 = cfg.date - dt.timedelta(days=cfg.history_days)
    _tz, start = _start(spec, day0)
    steps = round(cfg.history_days * _DAY_S / QUARTER_S)
    twin = Twin(spec, start, steps, QUARTER_S, cfg.seed + 1, cfg.imperfections)
    bat = twin.ks[K.BATTERY]
    keep = np.ones(twin.cap.n, bool)
    keep[bat] = False
    for t in range(steps):
        ts = twin.now
        twin.step()
        forecaster.observe(ts, float(-twin.natural_kw[keep].sum()))
        if progress:
            progress("history", t + 1, steps)


def _manual_events(
    spec: FleetSpec, cfg: ComparisonConfig, progress: Progress | None
) -> list[Event]:
    """Today's practice: the default evening event of each day, as ``simulate`` places it."""
    out = []
    for k in range(cfg.days):
        day = cfg.date + dt.timedelta(days=k)
        tz, start = _start(spec, day)
        sc = ScenarioConfig(day, 24.0, QUARTER_S, cfg.seed, imperfections=cfg.imperfections)
        steps = round(24 * 3600 / QUARTER_S)
        (req,) = _forecast_default_event(spec, sc, tz, start, steps, None)
        out.append(
            Event(
                f"manual-{k + 1:02d}",
                req.target_kw,
                req.start.timestamp(),
                req.end.timestamp(),
                req.scope,
                EventSource.SIMULATION,
                created_by="gridflock simulate",
            )
        )
        if progress:
            progress("manual plan", k + 1, cfg.days)
    return out


def _run(
    spec: FleetSpec,
    cfg: ComparisonConfig,
    name: str,
    events: list[Event],
    autopilot: Callable[[FleetState], TwinAutopilot] | None,
    progress: Progress | None,
) -> tuple[WayResult, WayResult, pd.DatetimeIndex, FloatArray]:
    """One twin run: the way ``name`` (real devices) and no VPP (the shadow) side by side."""
    _tz, start = _start(spec, cfg.date)
    steps = round(cfg.days * _DAY_S / cfg.step_s)
    twin = Twin(spec, start, steps, cfg.step_s, cfg.seed, cfg.imperfections)
    state = FleetState.from_spec(spec)
    dispatcher = Dispatcher(state, scenario_tracker_config(cfg.step_s))
    for ev in events:
        dispatcher.add(ev)
    pilot = autopilot(state) if autopilot else None
    bat = twin.ks[K.BATTERY]
    hp, wh = twin.ks[K.HEAT_PUMP], twin.ks[K.WATER_HEATER]
    hpc, whc = twin.col[K.HEAT_PUMP], twin.col[K.WATER_HEATER]
    dt_h = cfg.step_s / 3600.0
    net, net0 = np.zeros(steps), np.zeros(steps)
    batt, batt0 = np.zeros(steps), np.zeros(steps)
    fc = np.full(steps, np.nan)
    through = through0 = 0.0
    violations = violations0 = 0
    commands = 0

    def outside(x: FloatArray, lo: FloatArray, hi: FloatArray) -> FloatArray:
        return np.maximum(np.maximum(lo - x, x - hi), 0.0)

    for t in range(steps):
        now = twin.now
        if pilot is not None and round(now) % round(QUARTER_S) == 0:
            plan = pilot.replan(now)
            if plan is not None:
                fc[t] = plan.forecast_import_kw[0]
        if pilot is not None:
            batch = pilot.commands(now)
            if batch is not None:
                twin.send(batch)
                commands += len(batch)
        twin.step()
        for b in twin.receive():
            state.apply(b)
        state.mark_stale(twin.now, 3 * cfg.step_s + 60)
        if pilot is not None:
            pilot.observe(twin.now)
        for cmd in dispatcher.step(twin.now):
            twin.send(cmd)
            commands += len(cmd)
        p, shadow = twin.p_kw, twin.natural_kw
        net[t], net0[t] = p.sum(), shadow.sum()
        batt[t], batt0[t] = p[bat].sum(), shadow[bat].sum()
        through += float(np.abs(p[bat]).sum()) * dt_h
        through0 += float(np.abs(shadow[bat]).sum()) * dt_h
        lo, hi = hpc["t_min_c"], hpc["t_max_c"]
        real_out = outside(twin.real.t_in, lo, hi)
        shadow_out = outside(twin.shadow.t_in, lo, hi)
        violations += int((real_out > shadow_out + COMFORT_TOLERANCE_K).sum())
        violations0 += int((shadow_out > COMFORT_TOLERANCE_K).sum())
        lo, hi = whc["t_min_c"], whc["t_max_c"]
        real_out = outside(twin.real.t_tank, lo, hi)
        shadow_out = outside(twin.shadow.t_tank, lo, hi)
        violations += int((real_out > shadow_out + COMFORT_TOLERANCE_K).sum())
        violations0 += int((shadow_out > COMFORT_TOLERANCE_K).sum())
        if progress:
            progress(name, t + 1, steps)
    _ = (hp, wh)
    t_end = twin.now
    dep = twin.ev_departure
    left = np.isfinite(dep) & (dep >= twin.t0) & (dep <= t_end)
    sessions = int(left.sum())
    met = int((twin.real.ev_need[left] <= twin.shadow.ev_need[left] + EV_TOLERANCE_KWH).sum())
    met0 = sessions  # the shadow is its own reference
    way = WayResult(name, net, batt, through, violations, sessions, met, commands)
    if pilot is not None:
        way.decisions = pilot.decisions
    alone = WayResult("no_vpp", net0, batt0, through0, 0, sessions, met0)
    alone.decisions = [{"comfort_outside_band_on_its_own": violations0}]
    return way, alone, twin.times, fc


def run_comparison(
    spec: FleetSpec, cfg: ComparisonConfig, progress: Progress | None = None
) -> Comparison:
    """Run the three ways over ``cfg.days`` and gather their series and figures."""
    began = time.perf_counter()
    tz, _ = _start(spec, cfg.date)
    forecaster = SeasonalNaive(cfg.history_days)
    _history(spec, cfg, forecaster, progress)
    manual_events = _manual_events(spec, cfg, progress)
    manual, alone, times, _ = _run(spec, cfg, "manual", manual_events, None, progress)

    def make(state: FleetState) -> TwinAutopilot:
        return TwinAutopilot(state, forecaster, cfg.tariff, cfg.policies, tz, cfg.step_s)

    pilot, alone2, _, fc = _run(spec, cfg, "autopilot", [], make, progress)
    if not np.allclose(alone.net_kw, alone2.net_kw):  # both runs share one counterfactual
        raise RuntimeError("the two runs' undispatched twins differ: the comparison is unsound")
    prices = cfg.tariff.import_prices(times, tz)
    feed = cfg.tariff.export_prices(times, tz)
    return Comparison(
        cfg,
        spec,
        tz,
        times,
        prices,
        feed,
        {"no_vpp": alone, "manual": manual, "autopilot": pilot},
        np.asarray(pd.Series(fc).ffill(), dtype=np.float64),
        manual_events,
        time.perf_counter() - began,
    )


def summary(c: Comparison) -> dict[str, Any]:
    """The comparison's figures as a JSON-ready dict."""
    figs = {name: c.figures(name) for name in c.ways}
    base, man, ap = figs["no_vpp"], figs["manual"], figs["autopilot"]

    def pct(a: float, b: float) -> float:
        return round(100.0 * (a - b) / a, 2) if a else 0.0

    cfg = c.config
    return {
        "schema_version": COMPARISON_SCHEMA_VERSION,
        "homes": len(c.spec.sites),
        "devices": c.spec.counts(),
        "window": {
            "start": c.times[0].isoformat(),
            "end": (c.times[-1] + pd.Timedelta(seconds=cfg.step_s)).isoformat(),
            "days": cfg.days,
            "step_s": cfg.step_s,
            "timezone": c.tz,
        },
        "seed": cfg.seed,
        "tariff": {
            "kind": cfg.tariff.kind,
            "bands": [list(b) for b in cfg.tariff.bands] if cfg.tariff.kind == "tou" else None,
            "flat_eur_per_kwh": cfg.tariff.flat_eur_per_kwh,
            "feed_in_eur_per_kwh": cfg.tariff.feed_in_eur_per_kwh,
        },
        "forecast": (
            f"seasonal naive: mean of the same quarter hour over the {cfg.history_days} "
            "preceding days of the reported baseline (the first days from a twin run over "
            "the preceding week), corrected by the last quarter's error (1 h decay)"
        ),
        "policies": cfg.policies.as_dict(),
        "ways": {k: {n: round(v, 3) for n, v in f.items()} for k, f in figs.items()},
        "peak_reduction_pct": {
            "manual": pct(base["peak_import_kw"], man["peak_import_kw"]),
            "autopilot": pct(base["peak_import_kw"], ap["peak_import_kw"]),
        },
        "cost_saving_pct": {
            "manual": pct(base["energy_cost_eur"], man["energy_cost_eur"]),
            "autopilot": pct(base["energy_cost_eur"], ap["energy_cost_eur"]),
        },
        "autopilot_beats_manual": {
            "peak": ap["peak_import_kw"] < man["peak_import_kw"],
            "cost": ap["energy_cost_eur"] < man["energy_cost_eur"],
        },
        "forecast_mape_pct": _mape(c),
        "manual_events": [
            {
                "id": e.id,
                "start": pd.Timestamp(e.start, unit="s", tz="UTC").isoformat(),
                "end": pd.Timestamp(e.end, unit="s", tz="UTC").isoformat(),
                "target_kw": e.target_kw,
            }
            for e in c.manual_events
        ],
        "autopilot_plans": len([d for d in c.ways["autopilot"].decisions if "action" in d]),
        "autopilot_decisions": c.ways["autopilot"].decisions[:200],
        "runtime_s": round(c.runtime_s, 2),
    }


def _mape(c: Comparison) -> float | None:
    """The forecast's error against the observed baseline without batteries, per quarter [%]."""
    base = -(c.ways["no_vpp"].net_kw - c.ways["no_vpp"].battery_kw)
    fc = c.forecast_kw
    ok = np.isfinite(fc) & (np.abs(base) > 1.0)
    if not ok.any():
        return None
    return round(float(np.mean(np.abs(fc[ok] - base[ok]) / np.abs(base[ok])) * 100.0), 2)


def write_comparison(c: Comparison, out: Path) -> dict[str, Path]:
    """Write summary.json, plot.png and timeseries.parquet into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "summary": out / "summary.json",
        "plot": out / "plot.png",
        "series": out / "timeseries.parquet",
    }
    paths["summary"].write_text(json.dumps(summary(c), indent=2) + "\n")
    df = pd.DataFrame({"ts": c.times, "price_eur_per_kwh": c.prices, "forecast_kw": c.forecast_kw})
    for name, w in c.ways.items():
        df[f"net_kw_{name}"] = w.net_kw
        df[f"battery_kw_{name}"] = w.battery_kw
    df.to_parquet(paths["series"], index=False)
    _plot(c, paths["plot"])
    return paths


def _plot(c: Comparison, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    local = c.times.tz_convert(c.tz).tz_localize(None)
    fig, (ax1, ax2, ax3) = plt.subplots(
        3, 1, figsize=(12, 9), sharex=True, gridspec_kw={"height_ratios": [3, 2, 1]}
    )
    colours = {"no_vpp": "#9aa5b1", "manual": "#d29922", "autopilot": "#1f6feb"}
    figs = {n: c.figures(n) for n in c.ways}
    for name, w in c.ways.items():
        f = figs[name]
        ax1.plot(
            local,
            -w.net_kw / 1000,
            color=colours[name],
            lw=1.0 if name == "no_vpp" else 1.2,
            label=f"{name.replace('_', ' ')}: peak {f['peak_import_kw'] / 1000:.2f} MW, "
            f"{f['energy_cost_eur']:,.0f} EUR",
        )
        ax2.plot(local, -w.battery_kw / 1000, color=colours[name], lw=1.0, label=name)
    ax1.plot(
        local,
        c.forecast_kw / 1000,
        color="#8250df",
        lw=0.8,
        ls=":",
        label="forecast without batteries",
    )
    ax1.axhline(0, color="black", lw=0.6)
    ax1.set_ylabel("fleet net import [MW]")
    ax1.set_title(
        f"{len(c.spec.sites):,} homes over {c.config.days} days from {c.config.date}",
        loc="left",
    )
    ax1.legend(loc="upper left", frameon=False, fontsize=8)
    ax1.grid(alpha=0.3)
    ax2.axhline(0, color="black", lw=0.6)
    ax2.set_ylabel("batteries [MW]\n(+ charging)")
    ax2.legend(loc="upper left", frameon=False, fontsize=8)
    ax2.grid(alpha=0.3)
    ax3.step(local, c.prices, where="post", color="#1a7f37")
    ax3.set_ylabel("price\n[EUR/kWh]")
    ax3.grid(alpha=0.3)
    ax3.set_xlabel(f"local time ({c.tz})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def shortened(cfg: ComparisonConfig, days: int) -> ComparisonConfig:
    """The same comparison over fewer days (tests)."""
    return replace(cfg, days=days)
