"""Settlement in the service: statements and the year's value from the store's meter data.

Each site's net power per interval is read from stored telemetry (device readings
averaged per interval in SQL, summed per site), with the history the baselines need
before the event; then :func:`gridflock.mv.settlement.settle_meter` does the rest, the
same code ``gridflock simulate`` runs on the twin. A finished event's statement is
**issued** ``settlement_issue_after_s`` after its end (its meter data in): kept in the
database as made (``settlements``) and served from there from then on, so what was
issued does not change; before that a statement is provisional and says so.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from gridflock.config import Settings
from gridflock.domain.errors import ConflictError
from gridflock.domain.events import Event, EventStatus
from gridflock.domain.kinds import DeviceKind
from gridflock.domain.messages import FloatArray
from gridflock.domain.spec import FleetSpec
from gridflock.mv.meter import Calendar
from gridflock.mv.peaker import EmissionFactors, read_marginal_emissions
from gridflock.mv.settlement import (
    FLEX_LOAD_KINDS,
    GENERATION_KINDS,
    DeviceSites,
    event_days,
    settle_meter,
)
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
class MeterPower:
    """Sites' net, battery, generation (PV + wind) and controllable-load power per interval.

    Rows are sites; ``load_kw`` sums the EV chargers, heat pumps and water heaters;
    ``battery_soc_kwh`` is the energy in each site's batteries at each interval's start
    [kWh] (0 at sites without a battery, NaN where a battery reported no SOC).
    """

    times: pd.DatetimeIndex
    net_kw: FloatArray
    battery_kw: FloatArray
    gen_kw: FloatArray
    load_kw: FloatArray
    battery_soc_kwh: FloatArray | None = None


def read_site_soc(
    store: Store, fleet: DeviceSites, times: pd.DatetimeIndex, step_s: int
) -> FloatArray:
    """Energy stored in each site's batteries at each of ``times`` [kWh] (sites x times).

    A battery's energy at ``times[t]`` is its last state of charge reported in the interval
    before (``[times[t] - step, times[t])``, from :meth:`Store.query_telemetry_resampled`)
    times its usable capacity from the registry; a site's is the sum over its batteries,
    NaN where one of them reported none there, 0 at a site without a battery.
    """
    n = len(times)
    out = np.zeros((fleet.n_sites, n))
    bat = np.flatnonzero(fleet.battery & (fleet.site_idx >= 0))
    if not n or not len(bat):
        return out
    ids = fleet.device_ids[bat].tolist()
    begin = times[0] - pd.Timedelta(seconds=step_s)
    df = store.query_telemetry_resampled(
        ids, begin.to_pydatetime(), times[-1].to_pydatetime(), step_s
    )
    soc = np.full((len(bat), n), np.nan)
    if len(df):
        d = pd.Categorical(df["device_id"], categories=ids).codes
        since = (df["ts"] - begin) // pd.Timedelta(seconds=1)
        t = since.to_numpy(dtype=np.int64) // step_s  # bucket t holds the SOC at times[t]
        ok = (d >= 0) & (t >= 0) & (t < n)
        soc[d[ok], t[ok]] = df["soc"].to_numpy(dtype=np.float64)[ok]
    energy = soc * fleet.battery_e_kwh[bat][:, None]
    np.add.at(out, fleet.site_idx[bat], energy)  # NaN propagates: a gap stays a gap
    return out


def read_site_power(
    store: Store, fleet: DeviceSites, start: float, end: float, step_s: int
) -> MeterPower:
    """Each site's mean net, battery, PV + wind and controllable-load power per interval.

    Over ``[start, end)`` in ``step_s`` steps; the generation is what the MGO baselines
    add back, the controllable loads what their standard-profile scale leaves out, the
    batteries' stored energy at each interval's start (:func:`read_site_soc`) what the
    replay baseline starts from.

    From :meth:`Store.site_power` (``start`` floored to the step; NaN where a device of
    the site has no reading in the interval), in the fleet's site order.
    """
    t0 = float(np.floor(start / step_s) * step_s)
    n = max(int(np.ceil((end - t0) / step_s)), 0)
    times = pd.date_range(pd.Timestamp(t0, unit="s", tz="UTC"), periods=n, freq=f"{step_s}s")
    shape = (fleet.n_sites, n)
    if not n or not fleet.n_sites:
        zero = np.zeros(shape)
        return MeterPower(times, np.full(shape, np.nan), zero, zero, zero)
    stored = store.site_power(
        times[0].to_pydatetime(),
        (times[-1] + pd.Timedelta(seconds=step_s)).to_pydatetime(),
        step_s,
        site_ids=fleet.site_ids.tolist(),
    )
    battery = stored.by_kind_kw.get(DeviceKind.BATTERY.value, np.zeros(shape))
    gen = np.zeros(shape)
    for kind in GENERATION_KINDS:
        gen = gen + stored.by_kind_kw.get(kind, np.zeros(shape))
    load = np.zeros(shape)
    for kind in FLEX_LOAD_KINDS:
        load = load + stored.by_kind_kw.get(kind, np.zeros(shape))
    soc = read_site_soc(store, fleet, times, step_s)
    return MeterPower(times, stored.net_kw, battery, gen, load, soc)


class SettlementService:
    """Statements of events and the value of a year, on the store's meter data."""

    def __init__(
        self, settings: Settings, store: Store, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.terms = settlement_terms(settings)
        self._cache: OrderedDict[tuple[str, str], Statement] = OrderedDict()
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
        key = (event.id, method or "")
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        kept = self.store.load_statement(*key)
        if kept is not None:
            st = Statement.from_dict(kept)
            self._remember(key, st)
            return st
        now = self.clock()
        st = self._compute(spec, event, method, now)
        if self._issuable(event, now):
            issued = dt.datetime.fromtimestamp(now, dt.UTC)
            st = replace(st, issued_at=issued.isoformat().replace("+00:00", "Z"))
            try:
                self.store.save_statement(event.id, key[1], st.as_dict(), now)
            except Exception as e:  # not kept now: made again (and kept) next time
                log.warning("statement of event %s not kept: %s", event.id, e)
            self._remember(key, st)
        return st

    def _issuable(self, event: Event, now: float) -> bool:
        """Whether ``event``'s statement is final: over, and its meter data in."""
        return event.status.final and now >= event.end + self.settings.settlement_issue_after_s

    def _remember(self, key: tuple[str, str], st: Statement) -> None:
        with self._lock:
            self._cache[key] = st
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)

    def _compute(self, spec: FleetSpec, event: Event, method: str | None, now: float) -> Statement:
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
        elif not self._issuable(event, now):
            notes.append(
                "provisional: issued once the meter data is in, "
                f"{s.settlement_issue_after_s / 60:g} min after the event's end"
            )
        try:
            return settle_meter(
                event,
                spec,
                power.times,
                power.net_kw,
                battery_kw=power.battery_kw,
                gen_kw=power.gen_kw,
                load_kw=power.load_kw,
                battery_soc_kwh=power.battery_soc_kwh,
                calendar=calendar,
                method=method,
                terms=self.terms,
                notes=notes,
                placebo_days=s.settlement_placebo_days,
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
        kept = self.store.load_statements([e.id for e in done], "")
        statements = [Statement.from_dict(kept[e.id]) for e in done if e.id in kept]
        for event in done:
            if event.id in kept:
                continue
            try:
                statements.append(self.statement(spec, event))
            except ConflictError as err:
                log.info("event %s left out of the %d value: %s", event.id, year, err)
        return yearly_value(statements, year, self.terms.rewards.currency)
