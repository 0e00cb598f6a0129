"""OpenADR 3 VEN: a thin client over the specification's REST endpoints (aiohttp).

It polls ``GET /events?programID=`` for the VEN's programs, maps each event to a
:class:`UtilityEvent` (an event gone from the VTN is a cancellation: OpenADR 3 cancels by
deleting), and after each interval of an event it took part in posts a ``POST /reports``
with the interval's fleet demand and change in usage. Authentication: a bearer token, or
OAuth2 client credentials exchanged at ``/auth/token``.

Why not ``openadr3-client`` (needs Python 3.12+), ``openadr3`` or ``toadr3``: the VEN needs
five calls, and a client built on the schema's own models (``_schema.py``) keeps the
protocol visible, typed and testable against a VTN built from the same schema.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from pydantic import ValidationError

from gridflock.openadr._model import (
    SignalInterval,
    SignalKind,
    UtilityEvent,
    UtilitySink,
    VenStatus,
)
from gridflock.openadr._schema import Event, Program, format_duration, parse_duration

__all__ = ["Ven3", "from_oadr3"]

log = logging.getLogger("gridflock.openadr")

_KINDS = {
    "SIMPLE": SignalKind.LEVEL,
    "PRICE": SignalKind.PRICE,
    "DISPATCH_SETPOINT": SignalKind.SETPOINT_KW,
    "DISPATCH_SETPOINT_RELATIVE": SignalKind.DELTA_KW,
}
_UNIT_KW = {"KW": 1.0, "W": 1e-3, "MW": 1e3}
#: Events fetched per page (the schema's maximum ``limit``).
_PAGE = 50
#: The program list is read again every this many polls.
_PROGRAMS_EVERY = 60


def from_oadr3(event: Event) -> UtilityEvent:
    """An OpenADR 3 event as a :class:`UtilityEvent`; ValueError names what is unusable."""
    if not event.id:
        raise ValueError("the event has no id")
    units = {d.payloadType: (d.units or "KW").upper() for d in event.payloadDescriptors or []}
    default = event.intervalPeriod
    out: list[SignalInterval] = []
    unsupported: set[str] = set()
    randomize = 0.0
    for iv in event.intervals:
        period = iv.intervalPeriod or default
        if period is None:
            raise ValueError(f"event {event.id}: interval {iv.id} has no intervalPeriod")
        start = period.start.timestamp() if period.start.tzinfo else math.nan
        duration = parse_duration(period.duration).total_seconds()
        if not math.isfinite(start) or duration <= 0:
            raise ValueError(
                f"event {event.id}: interval {iv.id} needs a zoned start and a positive "
                f"duration (got {period.start.isoformat()}, {period.duration})"
            )
        if period.randomizeStart:
            randomize = max(randomize, parse_duration(period.randomizeStart).total_seconds())
        for payload in iv.payloads:
            kind = _KINDS.get(payload.type)
            if kind is None:
                unsupported.add(payload.type)
                continue
            value = payload.values[0] if payload.values else None
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(
                    f"event {event.id}: {payload.type} of interval {iv.id} must be a number, "
                    f"got {value!r}"
                )
            factor = 1.0
            if kind in (SignalKind.SETPOINT_KW, SignalKind.DELTA_KW):
                unit = units.get(payload.type, "KW")
                if unit not in _UNIT_KW:
                    raise ValueError(f"event {event.id}: {payload.type} in {unit} is not power")
                factor = _UNIT_KW[unit]
            out.append(SignalInterval(kind, start, start + duration, float(value) * factor))
    stamp = event.modificationDateTime or event.createdDateTime
    return UtilityEvent(
        protocol="3",
        event_id=event.id,
        modification=stamp.isoformat() if stamp else repr(event.model_dump(mode="json")),
        intervals=tuple(sorted(out, key=lambda i: (i.kind, i.start))),
        randomize_s=randomize,
        program=event.programID,
        priority=event.priority,
        unsupported=tuple(sorted(unsupported)),
    )


@dataclass
class _Held:
    """An event the VEN took part in: its windows and the delivered samples to report."""

    program_id: str
    event: UtilityEvent
    opted_in: bool
    reported: set[int] = field(default_factory=set)
    demand: dict[int, list[float]] = field(default_factory=dict)  # window -> import kW


class Ven3:
    """An OpenADR 3 VEN polling its programs' events and posting reports until stopped."""

    def __init__(
        self,
        sink: UtilitySink,
        vtn_url: str,
        ven_name: str,
        *,
        programs: list[str] | None = None,
        token: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        poll_s: float = 10.0,
        retry_s: float = 60.0,
        clock: Callable[[], float] = time.time,
        report_delay_s: float = 5.0,
    ) -> None:
        self.sink = sink
        self.base = vtn_url.rstrip("/")
        self.ven_name = ven_name
        self.program_names = list(programs or [])
        self.status = VenStatus("3", vtn_url, ven_name)
        self.poll_s = poll_s
        self.retry_s = retry_s
        self.clock = clock
        #: An interval is reported this long after its end, once its last measurements are in.
        self.report_delay_s = report_delay_s
        self._token = token
        self._credentials = (client_id, client_secret) if client_id and client_secret else None
        self._programs: dict[str, str] = {}  # id -> name
        self._held: dict[str, _Held] = {}
        self._invalid: set[str] = set()  # events already logged as invalid
        self._missing: list[str] = []  # programs asked for that the VTN lacks
        self._polls = 0
        self._stop = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None

    # ------------------------------------------------------------------ http
    async def _request(self, method: str, path: str, **kw: Any) -> Any:
        assert self._session is not None
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        async with self._session.request(method, self.base + path, headers=headers, **kw) as r:
            if r.status in (401, 403) and self._credentials:
                self._token = None  # expired or revoked: fetch a new one at the next poll
            if r.status >= 400:
                text = (await r.text())[:300]
                raise aiohttp.ClientResponseError(
                    r.request_info, (), status=r.status, message=f"{method} {path}: {text}"
                )
            return await r.json()

    async def _authenticate(self) -> None:
        if self._token or self._credentials is None:
            return
        assert self._session is not None
        client_id, secret = self._credentials
        form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
        async with self._session.post(self.base + "/auth/token", data=form) as r:
            body = await r.json(content_type=None)
            if r.status != 200 or "access_token" not in body:
                raise aiohttp.ClientError(f"/auth/token refused the credentials: {body}")
            self._token = str(body["access_token"])

    async def _load_programs(self) -> None:
        found: dict[str, str] = {}
        skip = 0
        while True:
            page = await self._request("GET", "/programs", params={"skip": skip, "limit": _PAGE})
            for raw in page:
                try:
                    p = Program.model_validate(raw)
                except ValidationError as e:
                    log.warning("OpenADR 3: a program the VTN sent is invalid: %s", e)
                    continue
                if p.id and (not self.program_names or p.programName in self.program_names):
                    found[p.id] = p.programName
            if len(page) < _PAGE:
                break
            skip += _PAGE
        missing = sorted(set(self.program_names) - set(found.values()))
        if missing and missing != self._missing:  # said once, not at every poll
            log.warning("OpenADR 3: the VTN has no program named %s", missing)
        self._missing = missing
        self._programs = found
        self.status.programs = sorted(found.values())

    async def _events(self, program_id: str) -> list[Event]:
        out: list[Event] = []
        skip = 0
        while True:
            page = await self._request(
                "GET", "/events", params={"programID": program_id, "skip": skip, "limit": _PAGE}
            )
            for raw in page:
                try:
                    out.append(Event.model_validate(raw))
                except ValidationError as e:
                    key = str(raw.get("id") if isinstance(raw, dict) else raw)[:128]
                    if key not in self._invalid:  # say so once, not at every poll
                        self._invalid.add(key)
                        log.warning("OpenADR 3: event %s is invalid: %s", key, e.errors()[:2])
            if len(page) < _PAGE:
                return out
            skip += _PAGE

    # ------------------------------------------------------------------ one poll
    async def poll(self) -> None:
        """Fetch the events of the VEN's programs, answer the new and changed, report."""
        await self._authenticate()
        self._polls += 1
        if not self._programs or self._missing or self._polls % _PROGRAMS_EVERY == 0:
            await self._load_programs()  # programs the VTN adds later are followed too
        seen: set[str] = set()
        for program_id in list(self._programs):
            for ev in await self._events(program_id):
                if ev.programID != program_id or not ev.id:
                    continue
                seen.add(ev.id)
                self._take(ev)
        for event_id, held in list(self._held.items()):
            if event_id not in seen and not held.event.cancelled:  # deleted: cancelled
                gone = UtilityEvent(
                    "3",
                    event_id,
                    held.event.modification + "/deleted",
                    held.event.intervals,
                    cancelled=True,
                    program=held.program_id,
                )
                self.sink.handle(gone)
                held.event = gone
        self.status.registered = self.status.reachable = True
        self.status.last_poll = self.clock()
        self.status.last_error = None
        await self._report()

    def _take(self, ev: Event) -> None:
        try:
            received = from_oadr3(ev)
        except ValueError as e:
            if str(ev.id) not in self._invalid:
                self._invalid.add(str(ev.id))
                log.warning("OpenADR 3 event %s refused: %s", ev.id, e)
            return
        held = self._held.get(received.event_id)
        if held is not None and held.event.modification == received.modification:
            return  # seen as it is
        self.status.events_received += 1
        decision = self.sink.handle(received)
        if decision.opt_in:
            self.status.opt_ins += 1
        else:
            self.status.opt_outs += 1
        log.info(
            "OpenADR 3 event %s: %s (%s)", received.event_id, decision.opt_type, decision.reason
        )
        self._held[received.event_id] = _Held(ev.programID, received, decision.opt_in)

    async def _report(self) -> None:
        """Sample each held event's delivered power; post a report as each interval ends."""
        now = self.clock()
        for event_id, held in list(self._held.items()):
            if not held.opted_in or held.event.cancelled:
                continue
            windows = sorted({(i.start, i.end) for i in held.event.dispatch})
            for k, (start, end) in enumerate(windows):
                if start <= now < end:
                    held.demand.setdefault(k, []).append(self.sink.fleet_import_kw())
                elif now >= end + self.report_delay_s and k not in held.reported:
                    await self._post_report(event_id, held, k, start, end)
            if now >= held.event.end + 86_400.0:
                del self._held[event_id]  # a day after its end, forget it

    async def _post_report(
        self, event_id: str, held: _Held, k: int, start: float, end: float
    ) -> None:
        delivered = self.sink.delivered_mean_kw(event_id, start, end)
        polled = held.demand.get(k)  # none if the interval fell between two polls
        demand = max(0.0, sum(polled) / len(polled) if polled else self.sink.fleet_import_kw())
        hours = (end - start) / 3600.0
        body = {
            "programID": held.program_id,
            "eventID": event_id,
            "clientName": self.ven_name,
            "reportName": f"{event_id} interval {k}",
            "payloadDescriptors": [
                {
                    "objectType": "REPORT_PAYLOAD_DESCRIPTOR",
                    "payloadType": "DEMAND",
                    "readingType": "MEAN",
                    "units": "KW",
                },
                {
                    "objectType": "REPORT_PAYLOAD_DESCRIPTOR",
                    "payloadType": "DELTA_USAGE",
                    "readingType": "MEAN",
                    "units": "KWH",
                },
            ],
            "resources": [
                {
                    "resourceName": "AGGREGATED_REPORT",
                    "intervals": [
                        {
                            "id": k,
                            "intervalPeriod": {
                                "start": _iso(start),
                                "duration": format_duration(end - start),
                            },
                            "payloads": [
                                {"type": "DEMAND", "values": [round(demand, 3)]},
                                # less usage than the baseline is a negative change
                                {"type": "DELTA_USAGE", "values": [round(-delivered * hours, 6)]},
                            ],
                        }
                    ],
                }
            ],
        }
        try:
            await self._request("POST", "/reports", json=body)
        except aiohttp.ClientResponseError as e:
            if not 400 <= e.status < 500 or e.status in (401, 403):
                raise  # the VTN is away or the token expired: posted at a later poll
            # refused as it is: sending it again would be refused again, and must not
            # hold up the polls behind it
            log.warning("OpenADR 3: the VTN refused the report of %s: %s", event_id, e.message)
            held.reported.add(k)
            return
        held.reported.add(k)
        self.status.reports_sent += 1

    # ------------------------------------------------------------------ life
    async def run(self) -> None:
        """Poll every ``poll_s`` until :meth:`stop`; retry (doubling, at most ``retry_s``)."""
        wait = self.poll_s
        timeout = aiohttp.ClientTimeout(total=max(5.0, 2 * self.poll_s))
        async with aiohttp.ClientSession(timeout=timeout) as session:
            self._session = session
            while not self._stop.is_set():
                self.status.connect_attempts += 0 if self.status.registered else 1
                try:
                    await self.poll()
                    wait = self.poll_s
                except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as e:
                    self.status.registered = self.status.reachable = False
                    self.status.last_error = f"{type(e).__name__}: {e}"
                    log.warning("OpenADR 3 poll failed: %s", self.status.last_error)
                    wait = min(max(wait * 2, 1.0), self.retry_s)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), wait)
        self._session = None

    def stop(self) -> None:
        """Ask :meth:`run` to return."""
        self._stop.set()


def _iso(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
