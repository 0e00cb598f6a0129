"""Settlement in the service: statements and the year's value from the store's meter data.

Each site's net power per interval is read from stored telemetry (device readings
averaged per interval in SQL, summed per site), with the history the baselines need
before the event; then :func:`gridflock.mv.settlement.settle_meter` does the rest, the
same code ``gridflock simulate`` runs on the twin. Statements of finished events are
kept (a bounded cache): their meter data no longer changes.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gridflock.config import Settings
from gridflock.domain.errors import ConflictError
from gridflock.domain.events import Event, EventStatus
from gridflock.domain.messages import FloatArray
from gridflock.domain.spec import FleetSpec
from gridflock.mv.meter import Calendar
from gridflock.mv.peaker import EmissionFactors, read_marginal_emissions
from gridflock.mv.settlement import DeviceSites, event_days, settle_meter, site_power
from gridflock.mv.statement import RewardTerms, SettlementTerms, Statement, UnknownMethodError
from gridflock.mv.value import YearValue, yearly_value
from gridflock.store import Store

__all__ = ["SettlementService", "read_site_power", "settlement_terms"]

log = logging.getLogger("gridflock.service")

#: Statements of finished events kept in memory.
CACHE_SIZE = 512


def settlement_terms(settings: Settings) -> SettlementTerms:
    """Rewards, emission factors and thresholds from the settings (reads the emissions file)."""
    path = settings.settlement_emissions_file
    hourly = read_marginal_emissions(path) if path is not None else None
    return SettlementTerms(
        rewards=RewardTerms(
            settings.settlement_reward_basis,
            settings.settlement_reward_rate,
            settings.settlement_currency,
        ),
        emissions=EmissionFactors(
            default_kg_per_mwh=settings.settlement_emission_factor_kg_per_mwh,
            default_source=settings.settlement_emission_factor_source,
            loss_fraction=settings.settlement_loss_fraction,
            hourly=hourly,
            hourly_source=str(path) if path is not None else "",
        ),
        non_responder_kw=settings.settlement_non_responder_kw,
        confidence=settings.settlement_confidence,
    )


@dataclass(frozen=True)
class SitePower:
    """Sites' net and battery power per interval (rows: the fleet's sites)."""

    times: pd.DatetimeIndex
    net_kw: FloatArray
    battery_kw: FloatArray


def read_site_power(
    store: Store, fleet: DeviceSites, start: float, end: float, step_s: int
) -> SitePower:
    """Each site's mean net power per ``step_s`` interval over ``[start, end)`` from telemetry.

    ``start`` is floored to the step. NaN where a device of the site has no reading in
    the interval. (Device means come from ``Store.query_telemetry_resampled``.)
    """
    t0 = float(np.floor(start / step_s) * step_s)
    n = max(int(np.ceil((end - t0) / step_s)), 0)
    times = pd.date_range(pd.Timestamp(t0, unit="s", tz="UTC"), periods=n, freq=f"{step_s}s")
    device_kw = np.full((len(fleet.device_ids), n), np.nan)
    if n and len(fleet.device_ids):
        df = store.query_telemetry_resampled(
            fleet.device_ids.tolist(),
            times[0].to_pydatetime(),
            (times[-1] + pd.Timedelta(seconds=step_s)).to_pydatetime(),
            step_s,
        )
        if len(df):
            d = pd.Index(fleet.device_ids).get_indexer(pd.Index(df["device_id"]))
            secs = pd.DatetimeIndex(df["ts"]).as_unit("s").asi8.astype(np.float64)
            t = np.round((secs - t0) / step_s).astype(np.int64)
            ok = (d >= 0) & (t >= 0) & (t < n)
            device_kw[d[ok], t[ok]] = df["p_kw"].to_numpy(dtype=np.float64)[ok]
    net, bat = site_power(fleet, device_kw)
    return SitePower(times, net, bat)


class SettlementService:
    """Statements of events and the value of a year, on the store's meter data."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.terms = settlement_terms(settings)
        self._cache: OrderedDict[tuple[str, str | None], Statement] = OrderedDict()
        self._lock = threading.Lock()

    def statement(self, spec: FleetSpec, event: Event, method: str | None = None) -> Statement:
        """The statement of ``event``: the recommended method unless ``method`` is given.

        ``ConflictError`` before the event starts or when its meter history cannot carry
        any baseline; ``InvalidError`` for an unknown method.
        """
        if event.status == EventStatus.SCHEDULED:
            raise ConflictError(
                f"event {event.id} has not started: a statement can be made once it is under way"
            )
        key = (event.id, method)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        st = self._compute(spec, event, method)
        if event.status.final:
            with self._lock:
                self._cache[key] = st
                while len(self._cache) > CACHE_SIZE:
                    self._cache.popitem(last=False)
        return st

    def _compute(self, spec: FleetSpec, event: Event, method: str | None) -> Statement:
        s = self.settings
        step = s.settlement_interval_s
        tz = str(spec.sites["tz"].iloc[0]) if len(spec.sites) else "UTC"
        local = pd.Timestamp(event.start, unit="s", tz="UTC").tz_convert(tz).normalize()
        begin = (local - pd.Timedelta(days=s.settlement_history_days)).timestamp()
        last = pd.Timestamp(event.end, unit="s", tz="UTC").tz_convert(tz).normalize()
        end = (last + pd.Timedelta(days=1)).timestamp()
        fleet = DeviceSites(spec)
        power = read_site_power(self.store, fleet, begin, end, step)
        others = self.store.list_events()
        calendar = Calendar.of(
            s.settlement_holidays,
            event_days((e for e in others if e.status != EventStatus.SCHEDULED), tz, skip=event.id),
        )
        notes: list[str] = []
        if not event.status.final:
            notes.append(f"provisional: event {event.id} is still {event.status.value}")
        try:
            return settle_meter(
                event,
                spec,
                power.times,
                power.net_kw,
                battery_kw=power.battery_kw,
                calendar=calendar,
                method=method,
                terms=self.terms,
                notes=notes,
            )
        except UnknownMethodError:
            raise
        except ValueError as e:  # InvalidError included; mv says ValueError for short history
            raise ConflictError(
                f"event {event.id} cannot be settled yet: {e}. Baselines need up to "
                f"{s.settlement_history_days} days of meter data before the event"
            ) from None

    def year(self, spec: FleetSpec, events: list[Event], year: int) -> YearValue:
        """The value of the completed events starting in ``year`` (UTC), on the recommended method.

        An event that cannot be settled (no meter history) is left out and logged.
        """
        done = [
            e
            for e in events
            if e.status == EventStatus.COMPLETED
            and dt.datetime.fromtimestamp(e.start, dt.UTC).year == year
        ]
        statements = []
        for e in done:
            try:
                statements.append(self.statement(spec, e))
            except ConflictError as err:
                log.info("event %s left out of the %d value: %s", e.id, year, err)
        return yearly_value(statements, year, self.terms.rewards.currency)
