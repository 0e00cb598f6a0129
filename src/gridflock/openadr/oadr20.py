"""OpenADR 2.0b VEN over ``openleadr``: register, poll, answer events, report power.

``openleadr.OpenADRClient`` speaks the protocol (XML, schema validation, signatures,
polling, report scheduling at the VTN's requested granularity). This module adds what a
service needs around it: events translated to :class:`UtilityEvent` and answered by the
sink's decision, a TELEMETRY_USAGE report of delivered and fleet power, and a VEN that
keeps trying while the VTN is away (openleadr's own ``run`` gives up after one failed
registration).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from openleadr import OpenADRClient, enums, objects

from gridflock.openadr._model import (
    SignalInterval,
    SignalKind,
    UtilityEvent,
    UtilitySink,
    VenStatus,
)

__all__ = ["Ven20", "from_oadr20"]

log = logging.getLogger("gridflock.openadr")

#: Report resource ids of the TELEMETRY_USAGE report.
DELIVERED = "delivered"
FLEET = "fleet_import"


def _ts(value: Any) -> float:
    if not isinstance(value, datetime):
        raise ValueError(f"expected a date-time, got {value!r}")
    if value.tzinfo is None:
        raise ValueError(f"date-time {value.isoformat()} has no time zone")
    return value.timestamp()


def _seconds(value: Any) -> float:
    if isinstance(value, timedelta):
        return value.total_seconds()
    return 0.0


def _kind(name: str, signal_type: str) -> SignalKind | None:
    """The meaning of a 2.0b signal (None: not one Gridflock acts on)."""
    if name == "ELECTRICITY_PRICE" and signal_type == "price":
        return SignalKind.PRICE
    if name == "LOAD_DISPATCH" and signal_type == "delta":
        return SignalKind.DELTA_KW
    if name == "LOAD_DISPATCH" and signal_type == "setpoint":
        return SignalKind.SETPOINT_KW
    if name == "SIMPLE" and signal_type == "level":
        return SignalKind.LEVEL
    return None


def _scale(signal: Mapping[str, Any]) -> float:
    """The kW per unit of a LOAD_DISPATCH payload (W, kW, MW by the measurement's SI scale)."""
    m = signal.get("measurement") or {}
    scale = {"none": 1e-3, "k": 1.0, "M": 1e3}.get(str(m.get("scale") or "k"), 1.0)
    return 1e-3 if str(m.get("unit") or "") == "W" and scale == 1e-3 else scale


def from_oadr20(event: Mapping[str, Any]) -> UtilityEvent:
    """An openleadr event dict (as ``on_event`` receives it) as a :class:`UtilityEvent`.

    Raises ``ValueError`` (naming the field) on an event without a usable id or times.
    """
    desc = event.get("event_descriptor") or {}
    event_id = str(desc.get("event_id") or "")
    if not event_id:
        raise ValueError("the event has no event_descriptor.event_id")
    period = event.get("active_period") or {}
    tolerance = period.get("tolerance") or {}
    startafter = (tolerance.get("tolerate") or tolerance).get("startafter")
    signals = event.get("event_signals") or []
    if isinstance(signals, Mapping):
        signals = signals.get("event_signals") or []
    intervals: list[SignalInterval] = []
    unsupported: list[str] = []
    for signal in signals:
        name, stype = str(signal.get("signal_name")), str(signal.get("signal_type"))
        kind = _kind(name, stype)
        if kind is None:
            unsupported.append(f"{name}/{stype}")
            continue
        factor = _scale(signal) if kind in (SignalKind.DELTA_KW, SignalKind.SETPOINT_KW) else 1.0
        for iv in signal.get("intervals") or []:
            start = _ts(iv.get("dtstart"))
            duration = _seconds(iv.get("duration"))
            value = float(iv.get("signal_payload"))
            if duration <= 0 or not math.isfinite(value):
                raise ValueError(
                    f"event {event_id}: interval {iv.get('uid')} needs a positive duration and "
                    f"a finite payload (got {duration} s, {value})"
                )
            intervals.append(SignalInterval(kind, start, start + duration, value * factor))
    status = str(desc.get("event_status") or "")
    return UtilityEvent(
        protocol="2.0b",
        event_id=event_id,
        modification=str(desc.get("modification_number") or 0),
        intervals=tuple(sorted(intervals, key=lambda i: (i.kind, i.start))),
        cancelled=status == "cancelled",
        randomize_s=_seconds(startafter),
        program=str(desc.get("market_context") or ""),
        priority=desc.get("priority"),
        unsupported=tuple(unsupported),
    )


class Ven20:
    """An OpenADR 2.0b VEN that registers, polls, answers and reports until stopped.

    ``client_factory`` builds the ``OpenADRClient`` (tests hand in certificates or a
    short report interval); ``retry_s`` bounds the wait between registration attempts
    (doubling from 1 s). A failure of one attempt is logged and retried; nothing it does
    stops the rest of the service.
    """

    def __init__(
        self,
        sink: UtilitySink,
        vtn_url: str,
        ven_name: str,
        *,
        ven_id: str | None = None,
        cert: str | None = None,
        key: str | None = None,
        ca_file: str | None = None,
        vtn_fingerprint: str | None = None,
        retry_s: float = 60.0,
        report_interval_s: float = 10.0,
        client_factory: Callable[..., OpenADRClient] = OpenADRClient,
    ) -> None:
        self.sink = sink
        self.status = VenStatus("2.0b", vtn_url, ven_name)
        self.retry_s = retry_s
        self.report_interval_s = report_interval_s
        self._args: dict[str, Any] = {
            "ven_name": ven_name,
            "vtn_url": vtn_url,
            "ven_id": ven_id,
            "cert": cert,
            "key": key,
            "ca_file": ca_file,
            "vtn_fingerprint": vtn_fingerprint,
            "show_fingerprint": False,
            "disable_signature": not (cert and key),
        }
        self._factory = client_factory
        self.client: OpenADRClient | None = None
        self._unanswered = 0
        self._stop = asyncio.Event()

    # ------------------------------------------------------------------ client
    def _make_client(self) -> OpenADRClient:
        client = self._factory(**self._args)
        client.add_handler("on_event", self._on_event)
        client.add_handler("on_update_event", self._on_event)
        rate = timedelta(seconds=self.report_interval_s)
        sampling = objects.SamplingRate(min_period=rate, max_period=rate * 360, on_change=False)
        for resource, fn in ((DELIVERED, self._delivered), (FLEET, self._fleet)):
            client.add_report(
                callback=fn,
                resource_id=resource,
                measurement="REAL_POWER",
                report_name=enums.REPORT_NAME.TELEMETRY_USAGE,
                report_specifier_id="gridflock-power",
                r_id=resource,
                report_duration=timedelta(hours=1),
                sampling_rate=sampling,
                scale="k",
                unit="W",
            )
        client.add_hook("before_send_xml", self._sending)
        client.add_hook("after_receive_xml", self._polled)
        return client

    def _sending(self, _xml: str) -> None:
        self._unanswered += 1
        if self._unanswered > 2:  # three requests in a row without an answer
            self.status.reachable = False

    def _polled(self, _xml: str) -> None:
        self._unanswered = 0
        self.status.reachable = True
        self.status.last_poll = time.time()

    async def _on_event(self, event: dict[str, Any]) -> str:
        self.status.events_received += 1
        try:
            received = from_oadr20(event)
        except (ValueError, TypeError) as e:
            log.warning("OpenADR 2.0b event refused: %s", e)
            self.status.opt_outs += 1
            return "optOut"
        decision = self.sink.handle(received)
        if decision.opt_in:
            self.status.opt_ins += 1
        else:
            self.status.opt_outs += 1
        log.info(
            "OpenADR 2.0b event %s: %s (%s)", received.event_id, decision.opt_type, decision.reason
        )
        return decision.opt_type

    def _delivered(self) -> float:
        self.status.reports_sent += 1
        return round(self.sink.delivered_kw(), 3)

    def _fleet(self) -> float:
        return round(self.sink.fleet_import_kw(), 3)

    # ------------------------------------------------------------------ life
    async def run(self) -> None:
        """Register (retrying while the VTN is away), then poll until :meth:`stop`."""
        wait = 1.0
        while not self._stop.is_set():
            self.status.connect_attempts += 1
            client = self._make_client()
            self.client = client
            try:
                await client.run()
            except Exception as e:  # a VTN that answers nonsense must not stop the service
                self.status.last_error = f"{type(e).__name__}: {e}"
                log.warning("OpenADR 2.0b registration failed: %s", self.status.last_error)
            if client.registration_id:
                self.status.registered = True
                self.status.ven_id = client.ven_id
                self.status.last_error = None
                log.info(
                    "OpenADR 2.0b VEN registered with %s as %s", self.status.vtn_url, client.ven_id
                )
                await self._stop.wait()
                break
            self.status.last_error = self.status.last_error or "the VTN gave no registration"
            await self._close(client)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), wait)
            wait = min(wait * 2, self.retry_s)
        if self.client is not None:
            await self._close(self.client)

    async def _close(self, client: OpenADRClient) -> None:
        with contextlib.suppress(Exception):
            if client.scheduler.running:
                client.scheduler.shutdown(wait=False)
            if client.report_queue_task:
                client.report_queue_task.cancel()
            if client.client_session is not None and not client.client_session.closed:
                await client.client_session.close()

    def stop(self) -> None:
        """Ask :meth:`run` to close the client and return."""
        self._stop.set()
