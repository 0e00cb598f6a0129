"""The forecast scheduler: models trained from the store's telemetry, forecasts issued on time.

:class:`ForecastService` runs beside the control loop. On the timetable of
:class:`~gridflock.service.forecast_schedule.ForecastSchedule` it

- **retrains** the global quantile models (:func:`gridflock.forecast.train`) on the last
  ``forecast_history_days`` of telemetry, resampled to 15 minutes per site and quantity,
  and stores the version with its figures (``forecast_models``);
- **issues** intraday (every 15 min) and day-ahead (D-1 before noon local) forecasts per
  site (:func:`gridflock.forecast.predict`), kept in memory, and their group totals by
  fleet, grid node, programme and region (:func:`gridflock.forecast.aggregate`) plus the
  need-for-support windows (:func:`gridflock.forecast.support_windows`), stored.

All CPU and database work runs in a worker (daemon) thread, so the control
loop never waits on it. A failure is logged, shown in :meth:`status` and retried later;
it never stops the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pandas as pd

from gridflock.config import Settings
from gridflock.domain.kinds import DeviceKind
from gridflock.domain.spec import FleetSpec
from gridflock.forecast import (
    FLEX_QUANTITIES,
    BacktestConfig,
    Forecast,
    History,
    ModelBundle,
    SiteAttributes,
    SupportWindow,
    TrainConfig,
    WeatherSeries,
    WeatherSource,
    aggregate,
    backtest,
    predict,
    support_windows,
    train,
)
from gridflock.service.forecast_flex import FlexRecorder
from gridflock.service.forecast_schedule import Due, ForecastSchedule
from gridflock.store import Store
from gridflock.store.records import ForecastModelRecord, IssuedForecast, SupportWindowRecord

__all__ = [
    "GROUP_BY",
    "HORIZONS",
    "ForecastService",
    "NotEnoughHistoryError",
    "in_daemon_thread",
    "read_site_history",
]

log = logging.getLogger("gridflock.service.forecast")
T = TypeVar("T")

STEP_S = 900
#: Groupings every issue is aggregated by.
GROUP_BY = ("fleet", "grid_node", "program", "region")
HORIZONS = ("intraday", "day_ahead", "next_48h")
#: The flexibility quantities are also issued for the next 48 h, at the day-ahead slot.
NEXT_48H = pd.Timedelta(hours=48)
#: Days of telemetry kept in memory for issuing (lags, seasonal lags) and for actuals.
ISSUE_HISTORY_DAYS = 15
#: Training needs at least this much history [days].
MIN_TRAIN_DAYS = 14
#: Retry a failed training after this long [s] (no history yet, a database outage...).
RETRY_S = 600.0
#: Late readings: each refresh re-reads this much before the cached end [s].
REREAD_S = 3600.0
#: A group's actual is shown when at least this share of its sites reported.
MIN_REPORTING = 0.9


class NotEnoughHistoryError(RuntimeError):
    """The store does not hold enough telemetry to train on yet."""


# ---------------------------------------------------------------------------- history
def _floor_step(t: float) -> float:
    return math.floor(t / STEP_S) * STEP_S


def read_site_history(
    store: Store, spec: FleetSpec, sites: SiteAttributes, start: float, end: float
) -> History:
    """Per-site 15-min power by quantity over ``[start, end)`` from stored telemetry.

    The store's own per-site history (:meth:`Store.site_power`: each device's readings
    averaged per 15-minute bucket in SQL, summed per site and kind), as quantities
    (``KIND_QUANTITY``; ``net`` over every device of the site). A bucket in which a device of
    the site did not report is NaN for that site; a site without a device of a kind is 0 for
    that kind. ``start`` and ``end`` are floored to 15 minutes. Sites of ``sites`` that the
    store does not know yet (a fleet edit not saved) are NaN throughout.
    """
    from gridflock.sim.history import KIND_QUANTITY  # the twin's module loads pvlib: not at start

    t0, t1 = _floor_step(start), _floor_step(end)
    n_t = max(int((t1 - t0) // STEP_S), 0)
    times = pd.date_range(pd.Timestamp(t0, unit="s", tz="UTC"), periods=n_t, freq="15min")
    n = sites.n
    kinds = spec.all_devices()["kind"].to_numpy(object)
    quantities = sorted(
        {KIND_QUANTITY[DeviceKind(k)] for k in kinds if DeviceKind(k) in KIND_QUANTITY}
    )
    series = {q: np.zeros((n, n_t)) for q in (*quantities, "net")}
    if n_t == 0 or len(kinds) == 0:
        return History(times, series, sites)
    power = store.site_power(
        datetime.fromtimestamp(t0, UTC), datetime.fromtimestamp(t1, UTC), STEP_S
    )
    rows = pd.Index(power.site_ids).get_indexer(pd.Index(sites.ids))
    have = rows >= 0
    series["net"][:] = np.nan
    series["net"][have] = power.net_kw[rows[have]]
    for kind, values in power.by_kind_kw.items():
        q = KIND_QUANTITY.get(DeviceKind(kind))
        if q in series:
            series[q][have] += values[rows[have]]  # NaN (a device silent) stays with its site
    for q in quantities:
        series[q][~have] = np.nan
    return History(times, series, sites)


def _merge(old: History, new: History, start: float) -> History:
    """``old`` with ``new`` written over it, cut to begin at ``start`` (same sites)."""
    t0 = pd.Timestamp(_floor_step(start), unit="s", tz="UTC")
    end = max(old.times[-1] if len(old.times) else t0, new.times[-1] if len(new.times) else t0)
    times = pd.date_range(t0, end, freq="15min")
    out: dict[str, npt.NDArray[np.float64]] = {}
    for q in set(old.series) | set(new.series):
        arr = np.full((old.n_sites, len(times)), np.nan)
        for h in (old, new):
            if q in h.series and len(h.times):
                pos = times.get_indexer(h.times)
                keep = pos >= 0
                arr[:, pos[keep]] = h.series[q][:, keep]
        out[q] = arr
    return History(times, out, old.sites)


def _json_safe(value: Any) -> Any:
    """``value`` with NaN/inf as None and NumPy scalars as Python numbers (for JSON)."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _no_weather() -> WeatherSeries:
    """A weather source with no columns: models use calendar and lags only."""
    return WeatherSeries(pd.DatetimeIndex([], tz="UTC"), {})


@dataclass(frozen=True)
class GroupSeries:
    """Actual group totals over a forecast's steps (kW; NaN where not known)."""

    times: pd.DatetimeIndex
    values: npt.NDArray[np.float64]


# ---------------------------------------------------------------------------- the service
class ForecastService:
    """Trains, issues and serves forecasts; see the module docstring.

    Parameters
    ----------
    settings
        ``forecast_*`` settings.
    store
        Telemetry in; model versions, group forecasts and support windows out.
    spec
        The current fleet (called at each run: fleet imports are followed).
    clock
        The service clock [UTC epoch s].
    weather
        Weather forecasts (the twin's, a file's); ``None``: calendar and lags only.
    flexibility
        ``now -> (site ids, up kW, down kW)``: each site's band flexibility held for
        ``FLEX_HOLD_H`` (the live fleet state's); recorded every quarter hour
        (:class:`~gridflock.service.forecast_flex.FlexRecorder`) and forecast as
        ``flex_up`` / ``flex_down`` once ``MIN_TRAIN_DAYS`` are recorded. ``None``: not
        forecast.

    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        spec: Callable[[], FleetSpec],
        clock: Callable[[], float] = time.time,
        weather: WeatherSource | None = None,
        flexibility: Callable[
            [float], tuple[Sequence[str], npt.NDArray[np.float64], npt.NDArray[np.float64]]
        ]
        | None = None,
    ) -> None:
        self.settings = settings
        self.flex = FlexRecorder(settings.forecast_history_days)
        self._flexibility = flexibility
        self.store = store
        self._spec = spec
        self.clock = clock
        self.leading: Callable[[], bool] = lambda: True
        """Whether this process leads (a standby issues no forecasts; role control)."""
        self.weather: WeatherSource = weather if weather is not None else _no_weather()
        self.weather_name = "none" if weather is None else type(weather).__name__
        self.quantiles = tuple(float(q) for q in settings.forecast_quantiles)
        self.schedule = ForecastSchedule(
            self._timezone(spec()),
            intraday_every_s=settings.forecast_intraday_every_min * 60,
            day_ahead_hour=settings.forecast_day_ahead_hour,
            retrain_every_s=settings.forecast_retrain_every_h * 3600.0,
        )
        self.bundle: ModelBundle | None = None
        self.model: ForecastModelRecord | None = None
        self.site_forecasts: dict[str, dict[str, Forecast]] = {}
        """Per-site forecasts of the latest issue: horizon -> quantity -> Forecast."""
        self.group_forecasts: dict[tuple[str, str, str, str], IssuedForecast] = {}
        """Latest group forecasts: (horizon, quantity, group_by, group) -> forecast."""
        self.windows: dict[str, list[SupportWindowRecord]] = {}
        self.groups: dict[str, list[str]] = {}
        self._history: History | None = None
        self._sites_key: tuple[str, ...] = ()
        self._sites: SiteAttributes | None = None
        self._fleet_threshold_kw: float | None = None
        self._busy = False
        self._state = "starting"
        self._last_error: str | None = None
        self._last_error_at: float | None = None
        self._timings: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self.held: str | None = None
        """While set (a reason), nothing is trained or issued (the demo seeds history)."""

    # ------------------------------------------------------------------ configuration
    def _timezone(self, spec: FleetSpec) -> ZoneInfo:
        """The configured zone, else the sites' most common one, else UTC."""
        name = self.settings.forecast_timezone
        if not name and len(spec.sites):
            name = Counter(spec.sites["tz"].astype(str)).most_common(1)[0][0]
        try:
            return ZoneInfo(name or "UTC")
        except Exception:
            log.warning("unknown time zone %r of the sites; day-ahead uses UTC", name)
            return ZoneInfo("UTC")

    def _train_config(self) -> TrainConfig:
        return TrainConfig(
            quantiles=self.quantiles,
            quantities=(
                tuple(self.settings.forecast_quantities)
                if self.settings.forecast_quantities
                else None
            ),
            max_rows=self.settings.forecast_max_rows,
            num_boost_round=self.settings.forecast_boost_rounds,
            intraday_hours=self.settings.forecast_intraday_hours,
            issue_hour_local=self.settings.forecast_day_ahead_hour,
            num_threads=1,  # the other core stays with the control loop
            workers=self.settings.forecast_train_workers,
        )

    def _fleet_sites(self) -> SiteAttributes:
        spec = self._spec()
        key = tuple(spec.sites["id"].astype(str))
        if self._sites is None or key != self._sites_key:
            from gridflock.sim.history import site_attributes

            self._sites = site_attributes(spec)
            self._sites_key = key
            self._history = None  # other sites: read again
            self.groups = self._group_labels(spec, self._sites)
        return self._sites

    @staticmethod
    def _group_labels(spec: FleetSpec, sites: SiteAttributes) -> dict[str, list[str]]:
        out = {"fleet": ["fleet"]}
        for by in ("program", "region"):
            out[by] = sorted({str(g) for g in sites.groups(by) if str(g)})
        out["grid_node"] = sorted(_node_members(spec, sites))
        return out

    # ------------------------------------------------------------------ reads for the API
    def status(self) -> dict[str, Any]:
        """What the forecaster is doing, its model, its last issues and its last error."""
        now = self.clock()
        s = self.schedule
        model = self.model
        return {
            "enabled": self.settings.forecast_enabled,
            "state": self.held or self._state,
            "busy": self._busy,
            "model_id": model.id if model else None,
            "trained_at": model.trained_at if model else None,
            "weather": self.weather_name,
            "timezone": str(s.tz),
            "quantiles": list(self.quantiles),
            "last_intraday": _dt(s.last_intraday),
            "last_day_ahead": _dt(s.last_day_ahead),
            "next_intraday": _dt(s.intraday_slot(now) + s.intraday_every_s),
            "next_day_ahead": _dt(s.next_day_ahead(now)),
            "next_retrain": _dt((s.last_trained or now) + s.retrain_every_s),
            "retrain_requested": s.retrain_requested,
            "last_error": self._last_error,
            "last_error_at": _dt(self._last_error_at),
            "timings_s": dict(self._timings),
        }

    def latest(
        self,
        horizon: str | None = None,
        quantity: str | None = None,
        group_by: str | None = None,
        group: str | None = None,
        before: datetime | None = None,
    ) -> list[IssuedForecast]:
        """The latest group forecasts matching the filters (memory, else the store).

        ``before``: the latest issued strictly before then (from the store): what was
        forecast for hours that have happened since.
        """
        if before is not None:
            return self.store.latest_forecasts(
                horizon=horizon, quantity=quantity, group_by=group_by, group=group, before=before
            )
        found = [
            f
            for (h, q, by, g), f in self.group_forecasts.items()
            if (horizon is None or h == horizon)
            and (quantity is None or q == quantity)
            and (group_by is None or by == group_by)
            and (group is None or g == group)
        ]
        if found or self.group_forecasts:
            return sorted(found, key=lambda f: (f.horizon, f.quantity, f.group_by, f.group))
        return self.store.latest_forecasts(
            horizon=horizon, quantity=quantity, group_by=group_by, group=group
        )

    def site(self, horizon: str, quantity: str, site_id: str) -> IssuedForecast | None:
        """One site's latest forecast, from memory (``None``: not issued, or unknown site)."""
        fc = self.site_forecasts.get(horizon, {}).get(quantity)
        if fc is None:
            return None
        rows = np.flatnonzero(fc.keys == site_id)
        if not len(rows):
            return None
        return IssuedForecast(
            issued_at=fc.issued_at.to_pydatetime(),
            horizon=horizon,
            quantity=quantity,
            group_by="site",
            group=site_id,
            model_id=self.model.id if self.model else None,
            start=fc.times[0].to_pydatetime(),
            step_s=STEP_S,
            quantiles=fc.quantiles,
            values_kw=fc.values[int(rows[0])],
        )

    def quantities(self) -> tuple[str, ...]:
        """Quantities the current model forecasts (empty before the first model)."""
        if self.bundle is not None:
            return self.bundle.quantities
        return tuple(sorted({f.quantity for f in self.latest()}))

    def error_ar(self, quantity: str, horizon: str, kind: str) -> list[float] | None:
        """The current model's learned error process ``[phi, sd]`` (for peak times)."""
        if self.bundle is None:
            return None
        found = self.bundle.meta.get("error_ar", {}).get(quantity, {}).get(horizon, {})
        ar = found.get(kind) if isinstance(found, dict) else None
        return [float(ar[0]), float(ar[1])] if ar else None

    def actuals(self, forecast: IssuedForecast) -> npt.NDArray[np.float64]:
        """What happened over ``forecast``'s steps, from the telemetry read so far (NaN: unknown).

        A group's total is the sum of its sites, scaled up for sites that did not report
        when at least 90 % did; NaN otherwise.
        """
        n_steps = forecast.values_kw.shape[0]
        out = np.full(n_steps, np.nan)
        hist = self._history
        sites = self._sites
        if hist is None or sites is None or forecast.quantity not in hist.series:
            return out
        times = pd.date_range(forecast.start, periods=n_steps, freq=f"{forecast.step_s}s")
        pos = hist.times.get_indexer(times)
        have = pos >= 0
        if not have.any():
            return out
        mask = self._members(forecast.group_by, forecast.group)
        if mask is None or not mask.any():
            return out
        block = hist.series[forecast.quantity][mask][:, pos[have]]
        reported = np.isfinite(block).sum(axis=0)
        total = np.nansum(block, axis=0) * mask.sum() / np.maximum(reported, 1)
        total[reported < MIN_REPORTING * mask.sum()] = np.nan
        out[have] = total
        return out

    def _members(self, group_by: str, group: str) -> npt.NDArray[np.bool_] | None:
        sites = self._sites
        if sites is None:
            return None
        if group_by == "grid_node":
            return _node_members(self._spec(), sites).get(group)
        if group_by == "site":
            return np.asarray(sites.ids == group, dtype=bool)
        labels = sites.groups(group_by)
        return np.asarray(labels == group, dtype=bool)

    def support(self, horizon: str | None = None) -> list[SupportWindowRecord]:
        """Need-for-support windows of the latest issue (memory, else the store)."""
        if self.windows:
            out = [w for h, ws in self.windows.items() if horizon in (None, h) for w in ws]
            return sorted(out, key=lambda w: (w.start, w.scope))
        return self.store.latest_support_windows(horizon)

    def release(self) -> None:
        """End a hold (see ``held``) and train at once."""
        self.held = None
        self.schedule.retrain_requested = True
        self._wake.set()

    def request_retrain(self) -> bool:
        """Ask for a retraining as soon as possible; ``False`` if already asked or running."""
        if self.schedule.retrain_requested or self._state == "training":
            return False
        self.schedule.retrain_requested = True
        self._wake.set()
        return True

    # ------------------------------------------------------------------ the work
    def load_stored_model(self) -> bool:
        """Take up the newest stored model version (after a restart); ``True`` if one was."""
        versions = self.store.forecast_models(limit=1)
        if not versions:
            return False
        bundle_bytes = self.store.forecast_model_bundle(versions[0].id)
        if bundle_bytes is None:
            return False
        try:
            self.bundle = ModelBundle.from_bytes(bundle_bytes)
        except Exception as e:  # another format version: train a new one
            log.warning("stored model %s cannot be read (%s); training anew", versions[0].id, e)
            return False
        self.model = versions[0]
        self.schedule.last_trained = versions[0].trained_at.timestamp()
        log.info("forecast model %s taken up from the store", versions[0].id)
        return True

    def train_now(self, now: float) -> ForecastModelRecord:
        """Train on the stored history up to ``now``, store the version, use it from now on."""
        sites = self._fleet_sites()
        if sites.n == 0:
            raise NotEnoughHistoryError("the fleet has no sites to forecast")
        end = _floor_step(now)
        start = end - self.settings.forecast_history_days * 86_400.0
        t = time.perf_counter()
        history = read_site_history(self.store, self._spec(), sites, start, end)
        days = _days_with_data(history)
        if days < MIN_TRAIN_DAYS:
            raise NotEnoughHistoryError(
                f"the store holds {days:.1f} days of telemetry in the last "
                f"{self.settings.forecast_history_days} days; training needs at least "
                f"{MIN_TRAIN_DAYS} (forecasts start once they are there)"
            )
        history = self.flex.add_to(_trim_empty_start(history), MIN_TRAIN_DAYS)
        read_s = time.perf_counter() - t
        log.info(
            "forecast training data: %d sites x %d steps read in %.1f s",
            history.n_sites,
            len(history.times),
            read_s,
        )
        # the issues that follow start from it: no second read of the same days
        self._history = _tail(history, ISSUE_HISTORY_DAYS)
        t = time.perf_counter()
        bundle = train(history, self.weather, self._train_config())
        train_s = time.perf_counter() - t
        self._fleet_threshold_kw = _fleet_import_p90(history)
        t = time.perf_counter()
        figures: dict[str, Any] = {"backtest": self._backtest(history)}
        figures["calibration"] = bundle.meta.get("calibration") or {}
        self._timings["backtest_s"] = round(time.perf_counter() - t, 2)
        trained_at = datetime.fromtimestamp(now, UTC)
        model_id = f"fm-{trained_at:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        params = {
            "version": bundle.version,
            "quantiles": list(self.quantiles),
            "quantities": list(bundle.quantities),
            "boost_rounds": self.settings.forecast_boost_rounds,
            "sites": history.n_sites,
            "weather": self.weather_name,
            "features": len(bundle.features),
            "read_s": round(read_s, 2),
            "train_s": round(train_s, 2),
        }
        record = self.store.save_forecast_model(
            model_id,
            "all",
            trained_at=trained_at,
            data_start=history.times[0].to_pydatetime(),
            data_end=(history.times[-1] + pd.Timedelta(minutes=15)).to_pydatetime(),
            params=_json_safe(params),
            backtest=_json_safe(figures),
            bundle=bundle.to_bytes(),
        )
        self.bundle, self.model = bundle, record
        self._timings.update(read_s=round(read_s, 2), train_s=round(train_s, 2))
        log.info(
            "forecast model %s trained on %d sites x %.1f days in %.1f s",
            model_id,
            history.n_sites,
            days,
            train_s,
        )
        return record

    def _backtest(self, history: History) -> dict[str, Any]:
        """Rolling-origin scores of the fleet's net over the final held-out days.

        Models trained only on the days before each origin (``forecast.backtest``), so the
        figures are out of sample: ``{horizon: {series: metrics}}``, or ``{"error": ...}``.
        """
        days = self.settings.forecast_backtest_days
        if days <= 0 or "net" not in history.series:
            return {}
        config = BacktestConfig(
            test_days=days,
            retrain_every_days=days,
            intraday_every_h=3.0,
            groups=("fleet",),
            train=replace(self._train_config(), quantities=("net",)),
        )
        try:
            report = backtest(history, self.weather, config)
        except Exception as e:  # a short or odd history: say so, keep the model
            log.warning("forecast backtest skipped: %s", e)
            return {"error": str(e)}
        out: dict[str, Any] = {"test_days": days}
        for r in report.to_json()["results"]:
            if r["series"] == "net@fleet":
                out[r["horizon"]] = {r["series"]: r["metrics"]}
        return out

    def _issue_history(self, now: float) -> History:
        """The last days of per-site history up to ``now``, read incrementally."""
        sites = self._fleet_sites()
        end = _floor_step(now)
        start = end - ISSUE_HISTORY_DAYS * 86_400.0
        hist = self._history
        if hist is None or not len(hist.times) or hist.times[0].timestamp() > start + 86_400:
            hist = read_site_history(self.store, self._spec(), sites, start, end)
        else:
            since = max(hist.times[-1].timestamp() + STEP_S - REREAD_S, start)
            new = read_site_history(self.store, self._spec(), sites, since, end)
            hist = _merge(hist, new, start)
        hist = self.flex.add_to(hist, 0.0)
        self._history = hist
        return hist

    def record_flexibility(self, now: float) -> None:
        """Record each site's band flexibility once per quarter hour (see ``flexibility``)."""
        if self._flexibility is None or self.held is not None or not self.flex.due(now):
            return
        try:
            ids, up, down = self._flexibility(now)
        except Exception:  # the fleet state is being swapped: the next wake-up records it
            log.debug("flexibility not recorded at %s", now, exc_info=True)
            return
        self.flex.record(now, ids, up, down)

    def issue(self, horizon: str, now: float) -> list[IssuedForecast]:
        """Issue ``horizon`` forecasts at ``now``: per site in memory, groups and windows stored."""
        bundle, model = self.bundle, self.model
        if bundle is None:
            raise NotEnoughHistoryError("no model trained yet: nothing to issue")
        t = time.perf_counter()
        history = self._issue_history(now)
        issued_at = pd.Timestamp(datetime.fromtimestamp(now, UTC))  # whole microseconds
        wanted = tuple(q for q in bundle.quantities if q in history.series)
        if horizon == "next_48h":  # the fleet's flexibility over the next two days
            wanted = tuple(q for q in wanted if q in FLEX_QUANTITIES)
            if not wanted:
                return []
        per_site = predict(
            bundle,
            history,
            self.weather,
            issued_at,
            NEXT_48H if horizon == "next_48h" else horizon,  # type: ignore[arg-type]
            quantities=wanted,
            tz=str(self.schedule.tz),
        )
        spec = self._spec()
        sites = history.sites
        nodes = _node_members(spec, sites)
        issued: list[IssuedForecast] = []
        group_nets: dict[str, Forecast] = {}
        for quantity, fc in per_site.items():
            for by in GROUP_BY:
                groups: npt.NDArray[np.object_] | dict[str, npt.NDArray[np.bool_]]
                if by == "grid_node":
                    groups = nodes
                    if not groups:
                        continue
                else:
                    groups = sites.groups(by)
                agg = aggregate(fc, groups)
                if quantity == "net" and by in ("fleet", "grid_node"):
                    group_nets[by] = agg
                issued += [
                    IssuedForecast(
                        issued_at=issued_at.to_pydatetime(),
                        horizon=horizon,
                        quantity=quantity,
                        group_by=by,
                        group=str(key),
                        model_id=model.id if model else None,
                        start=agg.times[0].to_pydatetime(),
                        step_s=STEP_S,
                        quantiles=agg.quantiles,
                        values_kw=agg.values[i],
                    )
                    for i, key in enumerate(agg.keys)
                    if str(key)
                ]
        windows = self._support_windows(group_nets, spec)
        self.site_forecasts[horizon] = per_site
        for f in issued:
            self.group_forecasts[(f.horizon, f.quantity, f.group_by, f.group)] = f
        self.windows[horizon] = [
            SupportWindowRecord(
                issued_at.to_pydatetime(),
                horizon,
                scope,
                w.start.to_pydatetime(),
                w.end.to_pydatetime(),
                float(w.probability),
                float(w.kw_needed),
                w.reason,
                float(w.kw_needed_p90),
            )
            for scope, w in windows
        ]
        predict_s = time.perf_counter() - t
        self._timings[f"{horizon}_s"] = round(predict_s, 2)
        try:  # memory serves the API during a database outage; the store keeps the record
            self.store.save_forecasts(issued)
            self.store.save_support_windows(
                issued_at.to_pydatetime(), horizon, self.windows[horizon]
            )
            keep = now - self.settings.forecast_keep_days * 86_400.0
            self.store.prune_forecasts(keep)
        except Exception as e:
            self._fail(f"{horizon} forecast issued but not stored: {e}")
        log.info(
            "%s forecast issued: %d group series, %d support windows, %.1f s",
            horizon,
            len(issued),
            len(windows),
            predict_s,
        )
        return issued

    def _support_windows(
        self, nets: dict[str, Forecast], spec: FleetSpec
    ) -> list[tuple[str, SupportWindow]]:
        """Windows of the fleet (over its threshold) and grid nodes (over their limits).

        Each comes with its scope as events name it: ``fleet`` or ``grid_node:<id>``.
        """
        out: list[tuple[str, SupportWindow]] = []
        fleet = nets.get("fleet")
        threshold = self.settings.forecast_support_fleet_kw or self._fleet_threshold_kw
        if fleet is not None and threshold is not None and threshold > 0:
            out += [("fleet", w) for w in support_windows(fleet, {"fleet": float(threshold)})]
        node_fc = nets.get("grid_node")
        if node_fc is not None:
            limits = dict(
                zip(
                    spec.grid_nodes["id"].astype(str),
                    spec.grid_nodes["limit_import_kw"].astype(float),
                    strict=True,
                )
            )
            limits = {k: v for k, v in limits.items() if math.isfinite(v) and v > 0}
            if limits:
                out += [(f"grid_node:{w.scope}", w) for w in support_windows(node_fc, limits)]
        return out

    def step(self, now: float, due: Due) -> None:
        """Do what is due at ``now`` (in a worker thread); failures are recorded, not raised."""
        self._busy = True
        try:
            if due.retrain:
                self._state = "training"
                try:
                    self.train_now(now)
                except NotEnoughHistoryError as e:
                    self._fail(str(e), waiting=True)
                    self._retry_training(now)
                    due = Due(False, due.intraday, due.day_ahead)
                except Exception as e:
                    log.exception("forecast training failed")
                    self._fail(f"training failed: {e}")
                    self._retry_training(now)
                    due = Due(False, due.intraday, due.day_ahead)
            for horizon, wanted in (
                ("intraday", due.intraday),
                ("day_ahead", due.day_ahead),
                ("next_48h", due.day_ahead),
            ):
                if not wanted or self.bundle is None:
                    continue
                self._state = f"issuing {horizon}"
                try:
                    self.issue(horizon, now)
                except Exception as e:
                    log.exception("%s forecast failed", horizon)
                    self._fail(f"{horizon} forecast failed: {e}")
            self.schedule.mark(now, due)
            if self.bundle is not None and self._state != "failing":
                self._state = "ready"
        finally:
            self._busy = False

    def _retry_training(self, now: float) -> None:
        """A failed training is tried again in ``RETRY_S``, not at every wake-up."""
        s = self.schedule
        s.last_trained = now - s.retrain_every_s + RETRY_S
        s.retrain_requested = False

    def _fail(self, message: str, *, waiting: bool = False) -> None:
        (log.info if waiting else log.error)("forecasts: %s", message)
        self._last_error = message
        self._last_error_at = self.clock()
        self._state = "waiting for history" if waiting else "failing"

    # ------------------------------------------------------------------ the loop
    async def run(self) -> None:
        """Serve the timetable until :meth:`stop`; never raises."""
        if not self.settings.forecast_enabled:
            self._state = "disabled"
            return
        with contextlib.suppress(Exception):
            await in_daemon_thread(self.load_stored_model)
        while not self._stopping:
            self._wake.clear()
            now = self.clock()
            due = None
            if self.leading():  # a standby neither records nor issues: the leader does
                self.record_flexibility(now)  # in the loop's thread: the state is not moving
                due = self.schedule.due(now)
            if due and self.held is None:
                try:
                    await in_daemon_thread(self.step, now, due)
                except Exception as e:  # pragma: no cover - step records its own failures
                    log.exception("forecast step failed")
                    self._fail(str(e))
                    self.schedule.mark(now, due)
                continue
            wait = (
                60.0
                if self.held is not None  # release() wakes the loop
                else max(self.schedule.next_wakeup(self.clock()) - self.clock(), 0.0)
            )
            with contextlib.suppress(TimeoutError):
                # wake at least once a minute: the clock may be moved (tests, demo)
                await asyncio.wait_for(self._wake.wait(), min(wait, 60.0))

    def stop(self) -> None:
        """Ask :meth:`run` to return (after the step in flight)."""
        self._stopping = True
        self._wake.set()


# ---------------------------------------------------------------------------- helpers
async def in_daemon_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn(*args, **kwargs)`` in a daemon thread and await it.

    Unlike ``asyncio.to_thread`` (the loop's executor, joined at exit), a stopping service
    does not wait for a training in flight: Ctrl-C ends the process at once.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if done.cancelled():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)  # type: ignore[arg-type]

    def work() -> None:
        try:
            result = fn(*args, **kwargs)
        except BaseException as e:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(settle, None, e)
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=work, name="gridflock-forecast", daemon=True).start()
    return await done


def _dt(t: float | None) -> datetime | None:
    return None if t is None else datetime.fromtimestamp(t, UTC)


def _node_members(spec: FleetSpec, sites: SiteAttributes) -> dict[str, npt.NDArray[np.bool_]]:
    """Each grid node -> mask of the sites below it (directly or through child nodes)."""
    nodes = spec.grid_nodes
    if not len(nodes):
        return {}
    parent = dict(zip(nodes["id"].astype(str), nodes["parent"].fillna("").astype(str), strict=True))
    site_node = np.asarray(sites.grid_node, dtype=object)
    out: dict[str, npt.NDArray[np.bool_]] = {}
    for direct in {str(n) for n in site_node}:
        below = site_node == direct
        node, seen = direct, set()
        while node and node not in seen:
            seen.add(node)
            out[node] = out[node] | below if node in out else below.copy()
            node = parent.get(node, "")
    return out


def _tail(history: History, days: float) -> History:
    """The last ``days`` of ``history``."""
    keep = round(days * 96)
    if len(history.times) <= keep:
        return history
    return History(
        history.times[-keep:], {q: v[:, -keep:] for q, v in history.series.items()}, history.sites
    )


def _days_with_data(history: History) -> float:
    """Days from the first to the last step at which any site reported its net power."""
    series = history.series.get("net")
    if series is None or not len(history.times):
        return 0.0
    seen = np.flatnonzero(np.isfinite(series).any(axis=0))
    if not len(seen):
        return 0.0
    return float(seen[-1] - seen[0] + 1) / 96.0


def _trim_empty_start(history: History) -> History:
    """The history from its first step with any net reading (a young store's empty days)."""
    series = history.series.get("net")
    if series is None:
        return history
    seen = np.flatnonzero(np.isfinite(series).any(axis=0))
    first = int(seen[0]) if len(seen) else 0
    if first == 0:
        return history
    return History(
        history.times[first:], {q: v[:, first:] for q, v in history.series.items()}, history.sites
    )


def _fleet_import_p90(history: History) -> float | None:
    """The 90th percentile of the fleet's net import over the history [kW], if known."""
    net = history.series.get("net")
    if net is None:
        return None
    fleet_import = -np.nansum(net, axis=0)
    fleet_import = fleet_import[np.isfinite(net).any(axis=0)]
    if not len(fleet_import):
        return None
    p90 = float(np.percentile(fleet_import, 90))
    return p90 if p90 > 0 else None
