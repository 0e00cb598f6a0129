"""The OpenADR 3 VEN against a VTN built from the specification's endpoints (``_vtn3.py``).

A utility event arrives, the fleet (the Runtime over the twin) delivers it, and the report
the VTN receives carries the power the service measured; then the awkward cases: another
program's event, an invalid event next to good ones, a huge target, an event far in the
future, the same event polled again and again, a modification, a deletion (OpenADR 3's
cancellation), a price, and a VTN that goes away and comes back.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gridflock.domain.events import EventSource, EventStatus
from gridflock.openadr import Ven3

from ._rig import Clock, driving, free_port, rig, until
from ._vtn3 import Vtn3

PROGRAMS = [
    {"id": "p-summer", "objectType": "PROGRAM", "programName": "dr-summer"},
    {"id": "p-other", "objectType": "PROGRAM", "programName": "other"},
]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def event(
    eid: str,
    program: str,
    start: float,
    seconds: float,
    ptype: str,
    value: float,
    *,
    version: float = 0.0,
    units: str = "KW",
) -> dict[str, Any]:
    """An event as the schema has it: one interval under the event's intervalPeriod."""
    return {
        "id": eid,
        "objectType": "EVENT",
        "programID": program,
        "eventName": f"test {eid}",
        "createdDateTime": _iso(1.7e9),
        "modificationDateTime": _iso(1.7e9 + version),
        "payloadDescriptors": [
            {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": ptype, "units": units}
        ],
        "intervalPeriod": {"start": _iso(start), "duration": f"PT{seconds:g}S"},
        "intervals": [{"id": 0, "payloads": [{"type": ptype, "values": [value]}]}],
    }


def run(scenario: Any) -> Any:
    """A test running ``scenario(tmp_path, vtn)`` with the VTN up on a free port."""

    def test(tmp_path: Path) -> None:
        async def main() -> None:
            vtn = Vtn3(free_port())
            vtn.programs = [dict(p) for p in PROGRAMS]
            await vtn.start()
            try:
                await scenario(tmp_path, vtn)
            finally:
                await vtn.stop()

        asyncio.run(main())

    test.__name__ = scenario.__name__
    test.__doc__ = scenario.__doc__
    return test


def _rig(tmp_path: Path, vtn: Vtn3, **kw: Any) -> tuple[Any, Clock]:
    return rig(
        tmp_path,
        openadr_ven="3",
        openadr_vtn_url=vtn.url,
        openadr_client_id=vtn.credentials[0],
        openadr_client_secret=vtn.credentials[1],
        openadr_programs=["dr-summer"],
        openadr_poll_s=0.05,
        openadr_retry_s=1.0,
        **kw,
    )


async def _start(rt: Any) -> asyncio.Task[None]:
    assert isinstance(rt.openadr.ven, Ven3)
    return asyncio.create_task(rt.openadr.ven.run())


async def _stop(rt: Any, task: asyncio.Task[None]) -> None:
    rt.openadr.ven.stop()
    await asyncio.wait_for(task, 10)


@run
async def test_a_utility_event_is_delivered_and_the_report_matches(
    tmp_path: Path, vtn: Vtn3
) -> None:
    rt, clock = _rig(tmp_path, vtn)
    shed = round(0.3 * float(rt.fleet_summary()["flex_up_kw"]), 1)
    start = clock.t + 7.0  # between two control cycles: no sample on the boundary
    vtn.events = [
        {"id": "bad", "programID": "p-summer", "intervals": [{"id": 0}]},  # no payloads
        event("e1", "p-summer", start, 60, "DISPATCH_SETPOINT_RELATIVE", -shed),
        event("e-other", "p-other", start, 120, "DISPATCH_SETPOINT_RELATIVE", -5.0),
    ]
    task = await _start(rt)
    try:
        await until(lambda: "e1" in rt.openadr._taken, 10, "the event")
        taken = rt.openadr._taken["e1"]
        assert taken.decision.opt_in, taken.decision.reason
        assert "e-other" not in rt.openadr._taken  # not one of this VEN's programs
        assert rt.openadr.ven.status.programs == ["dr-summer"]
        (gid,) = taken.decision.event_ids
        ev = rt.event(gid).event
        assert ev.source is EventSource.OPENADR
        assert ev.target_kw == pytest.approx(shed)  # -shed kW of consumption is up
        assert (ev.start, ev.end) == (pytest.approx(start), pytest.approx(start + 60))

        await driving(rt, clock, lambda: vtn.reports, 30, "the report")
        (report,) = vtn.reports
        assert (report["programID"], report["eventID"]) == ("p-summer", "e1")
        assert report["clientName"] == "gridflock"
        (resource,) = report["resources"]
        (interval,) = resource["intervals"]
        assert interval["intervalPeriod"] == {"start": _iso(start), "duration": "PT60S"}
        values = {p["type"]: p["values"][0] for p in interval["payloads"]}
        delivered_kw = -values["DELTA_USAGE"] / (60 / 3600)  # kWh less than the baseline
        # the oracle: the service's own measurement of the event over the interval
        tracker = rt.loop.tracker(gid)
        ts = np.asarray(tracker.samples_ts)
        measured = np.asarray(tracker.samples_delivered)[(ts >= start) & (ts < start + 60)]
        assert len(measured) >= 25  # a sample per 2 s control cycle while it was active
        assert delivered_kw == pytest.approx(float(np.mean(measured)), abs=1e-3)
        assert delivered_kw == pytest.approx(shed, rel=0.2)  # and the fleet delivered
        assert values["DEMAND"] >= 0
        await until(lambda: rt.openadr.ven.status.reports_sent == 1, 5, "the count")
    finally:
        await _stop(rt, task)


@run
async def test_awkward_events_and_a_vtn_that_goes_away(tmp_path: Path, vtn: Vtn3) -> None:
    rt, clock = _rig(tmp_path, vtn, openadr_opt="flexibility")
    now = clock.t
    vtn.events = [
        event("long", "p-summer", now + 60, 1800, "DISPATCH_SETPOINT_RELATIVE", -1.0),
        event("huge", "p-summer", now + 60, 600, "DISPATCH_SETPOINT_RELATIVE", -1e12),
        event("far", "p-summer", now + 400 * 86400, 600, "DISPATCH_SETPOINT_RELATIVE", -1.0),
        event("price", "p-summer", now + 600, 3600, "PRICE", 0.61, units="KWH"),
        event("short", "p-summer", now + 7, 20, "DISPATCH_SETPOINT_RELATIVE", -0.5),
    ]
    vtn.refuse_reports = True
    task = await _start(rt)
    try:
        await until(lambda: len(rt.openadr._taken) == 5, 10, "five events")
        # a report the VTN refuses (400) is dropped, and polling goes on
        held = rt.openadr.ven._held
        await driving(rt, clock, lambda: held["short"].reported == {0}, 10, "the report try")
        gets = vtn.event_gets
        await until(lambda: vtn.event_gets > gets + 2, 10, "polls after the refusal")
        assert vtn.reports == []
        assert rt.openadr.ven.status.reports_sent == 0
        assert rt.openadr.ven.status.last_error is None
        vtn.refuse_reports = False
        gets = vtn.event_gets
        await until(lambda: vtn.event_gets >= gets + 5, 10, "more polls")
        assert rt.openadr.ven.status.events_received == 5  # polled again: nothing new
        decisions = {k: t.decision for k, t in rt.openadr._taken.items()}
        assert decisions["long"].opt_in
        assert not decisions["huge"].opt_in
        assert "±10,000,000 kW" in decisions["huge"].reason
        assert not decisions["far"].opt_in
        assert "one year" in decisions["far"].reason
        assert decisions["price"].opt_in
        assert [p["price_per_kwh"] for p in rt.openadr.status()["prices"]] == [0.61]
        ours = [v for v in rt.events() if v.event.source is EventSource.OPENADR]
        assert len(ours) == 2  # long and short: polled again and again, nothing more

        # a modification: a new modificationDateTime and target replace the event
        (old,) = decisions["long"].event_ids
        vtn.events[0] = event(
            "long", "p-summer", now + 60, 1800, "DISPATCH_SETPOINT_RELATIVE", -2.0, version=1
        )
        await until(lambda: rt.openadr._taken["long"].decision.event_ids != (old,), 10, "edit")
        (new,) = rt.openadr._taken["long"].decision.event_ids
        assert rt.event(old).event.status is EventStatus.CANCELLED
        assert rt.event(new).event.target_kw == pytest.approx(2.0)

        # the VTN goes away: the VEN says so and retries; the service goes on
        vtn.up = False
        await until(lambda: rt.openadr.ven.status.last_error, 10, "the failure")
        assert "503" in rt.openadr.ven.status.last_error
        assert rt.openadr.ven.status.registered is False
        health = rt.health()
        assert health["parts"]["openadr"] == "unreachable"
        assert "openadr" in health["degraded"]
        await driving(rt, clock, lambda: True, 1, "a cycle")
        assert rt.event(new).event.status is EventStatus.SCHEDULED  # nothing cancelled
        vtn.up = True
        await until(lambda: rt.openadr.ven.status.registered, 10, "the VTN back")
        assert rt.health()["parts"]["openadr"] == "ok"

        # deleted from the VTN: OpenADR 3's cancellation
        vtn.events = [e for e in vtn.events if e["id"] != "long"]
        await until(lambda: rt.event(new).event.status is EventStatus.CANCELLED, 10, "cancel")
        assert rt.openadr.status()["events"][0]["utility_event_id"]
    finally:
        await _stop(rt, task)


@run
async def test_the_service_runs_the_ven_and_stops_it(tmp_path: Path, vtn: Vtn3) -> None:
    rt, clock = _rig(tmp_path, vtn)
    vtn.events = [event("e9", "p-summer", clock.t + 600, 600, "PRICE", 0.2, units="KWH")]
    service = asyncio.create_task(rt.run())  # the control loop, and the VEN beside it
    try:
        await until(lambda: "e9" in rt.openadr._taken, 10, "the VEN under the service")
        assert rt.openadr.status()["ven"]["reachable"] is True
    finally:
        rt.stop()
        await asyncio.wait_for(service, 15)
    gets = vtn.event_gets
    await asyncio.sleep(0.3)
    assert vtn.event_gets == gets  # stopped with the service


@run
async def test_only_the_leader_talks_to_the_utility(tmp_path: Path, vtn: Vtn3) -> None:
    """A hot standby neither polls nor reports; the VEN runs while the process leads."""
    rt, clock = _rig(tmp_path, vtn)
    vtn.events = [event("e7", "p-summer", clock.t + 600, 600, "PRICE", 0.2, units="KWH")]
    lead = rt.leadership
    service = asyncio.create_task(rt.run())
    try:
        await until(lambda: vtn.event_gets > 0, 10, "the leader's VEN polling the VTN")
        first = rt.openadr.ven
        lead.elected, lead.epoch = True, None  # the state of a standby: elected, no term
        await until(lambda: first is not None and first._stop.is_set(), 10, "the VEN to stop")
        await asyncio.sleep(0.5)  # a poll in flight lands
        gets = vtn.event_gets
        await asyncio.sleep(1.5)
        assert vtn.event_gets == gets  # standing by: not a request to the utility
        lead.elected = False  # leads again: a fresh VEN for the new term
        await until(lambda: vtn.event_gets > gets, 10, "a new VEN polling once leading")
        assert rt.openadr.ven is not first
    finally:
        rt.stop()
        await asyncio.wait_for(service, 15)
