"""Utility events into Gridflock events and prices: the service side of the OpenADR VENs.

A utility's event (:class:`~gridflock.openadr.UtilityEvent`, either protocol) becomes one
Gridflock event per dispatch interval (``source: openadr``), created through the event
service with every check an operator's event gets; its price intervals become a price
input of the autopilot's plan. The answer follows the operator's policy: ``opt_in`` takes
every event (what the fleet cannot give is accepted as partial), ``flexibility`` opts out
of an event the fleet cannot deliver in full. A modified event replaces its Gridflock
events, a cancelled one cancels them; receiving the same version again changes nothing,
also after a restart (the utility's id and version are in each event's ``created_by``).
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

import numpy as np
import pandas as pd

from gridflock.config import Settings, mask_url
from gridflock.domain.auth import Principal, Role
from gridflock.domain.errors import ConflictError, GridflockError
from gridflock.domain.events import AdmissionError, EventSource, EventStatus, Scope
from gridflock.openadr import (
    Decision,
    SignalInterval,
    SignalKind,
    UtilityEvent,
    random_offset_s,
)
from gridflock.optimize.autopilot import Tariff
from gridflock.service.events import EventService

if TYPE_CHECKING:
    from gridflock.openadr.oadr3 import Ven3
    from gridflock.openadr.oadr20 import Ven20

__all__ = ["OpenADRService", "OptPolicy", "make_ven", "overlay_prices"]

log = logging.getLogger("gridflock.openadr")

OptPolicy = Literal["opt_in", "flexibility"]
#: Principal of the service's own actions on OpenADR events (cancellations).
OPENADR = Principal("openadr", "openadr", Role.OPERATOR)


def _name(event_id: str, modification: str = "") -> str:
    """``openadr/<id>/<version>`` with both URL-encoded: an id holding a slash stays one id."""
    return f"openadr/{quote(event_id, safe='')}/{quote(modification, safe='')}"


#: Utility events remembered (the oldest finished ones are forgotten beyond).
MAX_TAKEN = 1000


@dataclass
class _Taken:
    """A utility event as the service took it up."""

    event: UtilityEvent
    decision: Decision
    received_at: float


def overlay_prices(
    tariff: Tariff, prices: list[SignalInterval], times: pd.DatetimeIndex, tz: str
) -> Tariff:
    """``tariff`` with the utility's prices over the steps they cover (a dynamic tariff).

    Steps no price covers keep the tariff's own import price. A dynamic tariff's export
    price is its import price (see ``optimize.autopilot.Tariff``). Without a price over
    ``times`` the tariff is returned as it is.
    """
    if not prices or len(times) == 0:
        return tariff
    ts = times.as_unit("ns").asi8 / 1e9  # UTC epoch seconds, whatever the index's unit
    step = float(ts[1] - ts[0]) if len(ts) > 1 else 900.0
    covered = np.zeros(len(ts), bool)
    price = tariff.import_prices(times, tz).astype(np.float64)
    for p in sorted(prices, key=lambda p: p.start):
        inside = (ts + step > p.start) & (ts < p.end)  # the step meets the interval
        price[inside] = p.value
        covered |= inside
    if not covered.any():
        return tariff
    return replace(tariff, kind="dynamic", dynamic=pd.Series(price, index=times))


class OpenADRService:
    """Answers utility events for the VEN; shows what it took up; feeds prices to the plan."""

    def __init__(
        self,
        events: EventService,
        *,
        policy: OptPolicy = "flexibility",
        scope: Scope | None = None,
        priority: int = 60,
    ) -> None:
        self.events = events
        self.loop = events.loop
        self.policy = policy
        self.scope = scope or Scope()
        self.priority = priority
        self.ven: Ven20 | Ven3 | None = None
        self._taken: dict[str, _Taken] = {}

    # ------------------------------------------------------------------ the sink
    def handle(self, event: UtilityEvent) -> Decision:
        """Create, modify or cancel the event's Gridflock events; answer it (idempotent)."""
        now = self.loop.clock()
        taken = self._taken.get(event.event_id)
        if taken is not None and taken.event.modification == event.modification:
            return taken.decision
        try:
            if taken is None:  # after a restart its events may be resumed from the store
                same, older = self._stored_ids(event)
                if same:
                    decision = Decision(True, "taken up before a restart", same)
                    self._taken[event.event_id] = _Taken(event, decision, now)
                    return decision
                self._cancel(list(older))
            else:
                self._release(taken)
            decision = self._decide(event, now)
        except Exception as e:  # one bad event never stops the VEN or the others
            log.exception("OpenADR event %s could not be taken up", event.event_id)
            decision = Decision(False, f"internal error ({type(e).__name__}); see the log")
        self._taken[event.event_id] = _Taken(event, decision, now)
        self._forget(now)
        return decision

    def _decide(self, event: UtilityEvent, now: float) -> Decision:
        if event.cancelled:
            return Decision(True, "cancelled by the utility: its events are cancelled")
        plans, why_not = self._plans(event, now)
        if why_not:
            return Decision(False, why_not)
        created: list[str] = []
        principal = Principal("openadr", _name(event.event_id, event.modification), Role.OPERATOR)
        for start, end, target in plans:
            try:
                ev = self.events.create(
                    target,
                    start,
                    end - start,
                    self.scope,
                    principal,
                    EventSource.OPENADR,
                    priority=self.priority,
                    allow_partial=self.policy == "opt_in",
                )
            except AdmissionError as e:
                self._cancel(created)
                return Decision(
                    False,
                    f"the fleet lacks the flexibility: {abs(e.available_kw):,.1f} kW "
                    f"available, {abs(target):,.1f} kW asked",
                )
            except GridflockError as e:  # far future, too large, a conflict...
                self._cancel(created)
                return Decision(False, str(e))
            created.append(ev.id)
        if not created and not event.prices:
            skipped = ", ".join(event.unsupported) or "nothing to do (level 0 or already over)"
            return Decision(not event.unsupported, f"no dispatch: {skipped}")
        parts = [f"{len(created)} Gridflock event(s)"] if created else []
        if event.prices:
            parts.append(f"{len(event.prices)} price interval(s) for the plan")
        return Decision(True, "taken up: " + ", ".join(parts), tuple(created))

    def _plans(
        self, event: UtilityEvent, now: float
    ) -> tuple[list[tuple[float, float, float]], str | None]:
        """``(start, end, target_kw)`` per dispatch interval, or why the event is refused."""
        offset = random_offset_s(event.event_id, event.randomize_s)
        out: list[tuple[float, float, float]] = []
        state = self.loop.state
        for iv in _merged(event.dispatch):
            if not math.isfinite(iv.value):
                return [], f"a {iv.kind.value} interval has no finite value ({iv.value})"
            start, end = iv.start + offset, iv.end + offset
            if end <= now:
                continue
            if iv.kind is SignalKind.DELTA_KW:
                target = -iv.value  # less consumption is up
            elif iv.kind is SignalKind.SETPOINT_KW:
                mask = state.scope_mask(self.scope)
                importing = -float(np.nansum(state.p_kw[mask]))
                target = importing - iv.value
            else:
                if not (0 <= iv.value <= 3):
                    return [], f"SIMPLE level must be 0 to 3, got {iv.value:g}"
                if round(iv.value) == 0:
                    continue
                available = self.loop.dispatcher.available_kw(
                    self.scope, max(start, now), end, True, now
                )
                # floored to the watt: rounding up would ask for more than is there
                target = math.floor(available * round(iv.value) / 3.0 * 1000.0) / 1000.0
                if target <= 1e-6:
                    if self.policy == "flexibility":
                        return [], "the fleet lacks the flexibility: nothing to shed"
                    continue
            if abs(target) < 1e-3 or not math.isfinite(target):
                continue
            out.append((start, end, round(target, 3)))
        return out, None

    def delivered_kw(self, event_id: str | None = None) -> float:
        """Power delivered now against the utility's events (or one) [kW, + up]."""
        total = 0.0
        for key, taken in self._taken.items():
            if event_id is not None and key != event_id:
                continue
            for gid in taken.decision.event_ids:
                t = self.loop.dispatcher.trackers.get(gid) or self.loop.finished.get(gid)
                if t is not None and t.event.status is EventStatus.ACTIVE and t.samples_delivered:
                    total += float(t.samples_delivered[-1])
        return total

    def delivered_mean_kw(self, event_id: str, start: float, end: float) -> float:
        """Mean power delivered against one utility event over ``[start, end)`` [kW, + up].

        From the service's own measurement (each control cycle's sample of each of its
        Gridflock events), so a report carries what the service measured, not a sample.
        """
        taken = self._taken.get(event_id)
        if taken is None:
            return 0.0
        total = 0.0
        for gid in taken.decision.event_ids:
            t = self.loop.dispatcher.trackers.get(gid) or self.loop.finished.get(gid)
            if t is None:
                continue
            ts = np.asarray(t.samples_ts, dtype=float)
            inside = (ts >= start) & (ts < end)
            if inside.any():
                total += float(np.asarray(t.samples_delivered, dtype=float)[inside].mean())
        return total

    def fleet_import_kw(self) -> float:
        """The fleet's net import now [kW, + import]."""
        return -float(np.nansum(self.loop.state.p_kw))

    # ------------------------------------------------------------------ prices
    def prices(self) -> list[SignalInterval]:
        """The utility's price intervals of the events not cancelled."""
        return [p for t in self._taken.values() if not t.event.cancelled for p in t.event.prices]

    def tariff(self, tariff: Tariff, times: pd.DatetimeIndex, tz: str) -> Tariff:
        """The autopilot's tariff with the utility's prices over the plan's steps."""
        return overlay_prices(tariff, self.prices(), times, tz)

    # ------------------------------------------------------------------ helpers
    def _release(self, taken: _Taken) -> None:
        self._cancel(list(taken.decision.event_ids))

    def _cancel(self, ids: list[str]) -> None:
        for gid in ids:
            with contextlib.suppress(ConflictError, GridflockError):  # already over
                self.events.cancel(gid, OPENADR)

    def _stored_ids(self, event: UtilityEvent) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Gridflock events of this utility event the service holds: this version's, older.

        They carry the utility's id and version in ``created_by``, so a restart (which
        resumes them from the store) does not make the re-sent event a duplicate.
        """
        this = "apikey:" + _name(event.event_id, event.modification)
        mine = "apikey:" + _name(event.event_id)  # every version of this id
        trackers = {**self.loop.finished, **self.loop.dispatcher.trackers}
        same, older = [], []
        for gid, t in trackers.items():
            if t.event.source is not EventSource.OPENADR:
                continue
            if t.event.created_by == this:
                same.append(gid)
            elif t.event.created_by.startswith(mine):
                older.append(gid)
        return tuple(same), tuple(older)

    def _forget(self, now: float) -> None:
        if len(self._taken) <= MAX_TAKEN:
            return
        over = sorted(
            self._taken.items(), key=lambda kv: (kv[1].event.end >= now, kv[1].received_at)
        )
        for key, _ in over[: len(self._taken) - MAX_TAKEN]:
            del self._taken[key]

    def status(self) -> dict[str, Any]:
        """What the API shows: the VEN and the utility events taken up, newest first."""
        ven = self.ven.status.as_dict() if self.ven is not None else None
        if ven is not None:  # a password in the URL is for the VTN, not for viewers
            ven["vtn_url"] = mask_url(str(ven["vtn_url"]))
        items = sorted(self._taken.values(), key=lambda t: -t.received_at)
        return {
            "enabled": self.ven is not None,
            "policy": self.policy,
            "scope": str(self.scope),
            "ven": ven,
            "events": [
                {
                    "utility_event_id": t.event.event_id,
                    "protocol": t.event.protocol,
                    "program": t.event.program,
                    "modification": t.event.modification,
                    "cancelled": t.event.cancelled,
                    "opt": t.decision.opt_type,
                    "reason": t.decision.reason,
                    "event_ids": list(t.decision.event_ids),
                    "received_at": t.received_at,
                }
                for t in items[:100]
            ],
            "prices": [
                {"start": p.start, "end": p.end, "price_per_kwh": p.value}
                for p in sorted(self.prices(), key=lambda p: p.start)
            ],
        }


def _merged(intervals: tuple[SignalInterval, ...]) -> list[SignalInterval]:
    """Back-to-back intervals of the same kind and value as one (one Gridflock event)."""
    out: list[SignalInterval] = []
    for iv in sorted(intervals, key=lambda i: (i.start, i.kind)):
        last = out[-1] if out else None
        if last and last.kind is iv.kind and last.value == iv.value and last.end == iv.start:
            out[-1] = SignalInterval(iv.kind, last.start, iv.end, iv.value)
        else:
            out.append(iv)
    return out


def make_ven(settings: Settings, sink: OpenADRService) -> Ven20 | Ven3 | None:
    """The VEN the settings ask for (None: ``openadr_ven = off``)."""
    if settings.openadr_ven == "off" or not settings.openadr_vtn_url:
        return None
    if settings.openadr_ven == "2.0b":
        from gridflock.openadr.oadr20 import Ven20

        return Ven20(
            sink,
            settings.openadr_vtn_url,
            settings.openadr_ven_name,
            ven_id=settings.openadr_ven_id,
            cert=_path(settings.openadr_cert_file),
            key=_path(settings.openadr_key_file),
            ca_file=_path(settings.openadr_ca_file),
            vtn_fingerprint=settings.openadr_vtn_fingerprint,
            retry_s=settings.openadr_retry_s,
            report_interval_s=settings.openadr_report_s,
        )
    from gridflock.openadr.oadr3 import Ven3

    token, secret = settings.openadr_token, settings.openadr_client_secret
    return Ven3(
        sink,
        settings.openadr_vtn_url,
        settings.openadr_ven_name,
        programs=settings.openadr_programs,
        token=token.get_secret_value() if token else None,
        client_id=settings.openadr_client_id,
        client_secret=secret.get_secret_value() if secret else None,
        poll_s=settings.openadr_poll_s,
        retry_s=settings.openadr_retry_s,
        clock=sink.loop.clock,  # report intervals on the service's clock
        report_delay_s=2 * settings.control_interval_s,
    )


def _path(p: object) -> str | None:
    return None if p is None else str(p)
