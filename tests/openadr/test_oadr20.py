"""The OpenADR 2.0b VEN against openleadr's own VTN (``OpenADRServer``) on a free port.

The service (Runtime over the twin) registers, receives a LOAD_DISPATCH event, opts in,
the fleet delivers it, and the VTN receives TELEMETRY_USAGE reports whose delivered power
is the power the service measured; then modification, cancellation, a price signal, an
event the fleet cannot deliver, and a VTN that is away at first.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp.web_exceptions  # noqa: F401  (named in the warning filter)
import pytest
from openleadr import OpenADRServer, utils

from gridflock.domain.events import EventSource, EventStatus
from gridflock.openadr import Ven20

from ._rig import cycles, driving, free_port, rig, until

# openleadr's VTN stores itself in its aiohttp app under a plain string key
pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")
logging.getLogger("openleadr").setLevel(logging.CRITICAL)  # the VTN's own chatter


class Vtn:
    """openleadr's VTN, recording registrations, opt answers and report values."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}/OpenADR2/Simple/2.0b"
        self.opts: dict[str, str] = {}
        self.reports: dict[str, list[tuple[datetime, float]]] = {}
        self.ven_id = "ven-gf-1"
        self.server = OpenADRServer(
            vtn_id="utility-vtn",
            http_port=port,
            http_host="127.0.0.1",
            requested_poll_freq=timedelta(seconds=1),
            show_fingerprint=False,
            ven_lookup=self._lookup,
        )
        self.server.add_handler("on_create_party_registration", self._register)
        self.server.add_handler("on_register_report", self._register_report)

    def _lookup(self, ven_id: str) -> dict[str, Any]:
        return {"ven_id": self.ven_id, "ven_name": "gridflock", "registration_id": "reg-1"}

    async def _register(self, info: dict[str, Any]) -> tuple[str, str]:
        return self.ven_id, "reg-1"

    async def _register_report(
        self,
        ven_id: str,
        resource_id: str,
        measurement: str,
        unit: str,
        scale: str,
        min_sampling_interval: timedelta,
        max_sampling_interval: timedelta,
    ) -> tuple[Any, timedelta]:
        async def receive(data: list[tuple[datetime, float]]) -> None:
            self.reports.setdefault(resource_id, []).extend(data)

        return receive, min_sampling_interval

    def on_opt(self, ven_id: str, event_id: str, opt_type: str) -> None:
        self.opts[event_id] = opt_type

    def add(
        self, signal: str, stype: str, value: float, start_in_s: float, minutes: float, **kw: Any
    ) -> str:
        start = datetime.now(UTC) + timedelta(seconds=start_in_s)
        return str(
            self.server.add_event(
                ven_id=self.ven_id,
                signal_name=signal,
                signal_type=stype,
                intervals=[
                    {
                        "dtstart": start,
                        "duration": timedelta(minutes=minutes),
                        "signal_payload": value,
                    }
                ],
                callback=self.on_opt,
                **kw,
            )
        )


def with_vtn(scenario: Any, *, up: bool = True) -> Any:
    """Run ``scenario(tmp_path, vtn)`` in an event loop with the VTN on a free port.

    ``up=False``: the scenario starts the VTN itself (``await vtn.server.run()``).
    """

    def test(tmp_path: Path) -> None:
        async def main() -> None:
            vtn = Vtn(free_port())
            if up:
                await vtn.server.run()
            try:
                await scenario(tmp_path, vtn)
            finally:
                if getattr(vtn.server, "app_runner", None) is not None:
                    await vtn.server.stop()

        asyncio.run(main())

    test.__name__ = scenario.__name__
    test.__doc__ = scenario.__doc__
    return test


def _settings(url: str, **kw: Any) -> dict[str, Any]:
    return {"openadr_ven": "2.0b", "openadr_vtn_url": url, "openadr_report_s": 1.0, **kw}


async def _start(rt: Any) -> asyncio.Task[None]:
    ven = rt.openadr.ven
    assert isinstance(ven, Ven20)
    return asyncio.create_task(ven.run())


async def _stop(rt: Any, task: asyncio.Task[None]) -> None:
    rt.openadr.ven.stop()
    await asyncio.wait_for(task, 10)


async def _away_then_delivered(tmp_path: Path, vtn: Vtn) -> None:
    rt, clock = rig(tmp_path, **_settings(vtn.url, openadr_retry_s=1.0))
    flex = float(rt.fleet_summary()["flex_up_kw"])
    task = await _start(rt)
    try:
        # the VTN is away at first: the VEN tries again, the service goes on meanwhile
        await until(lambda: rt.openadr.ven.status.connect_attempts >= 2, 15, "a second try")
        assert rt.openadr.ven.status.registered is False
        assert rt.health()["parts"]["openadr"] == "unreachable"
        assert rt.openadr.ven.status.last_error
        cycles(rt, clock, 10)
        await vtn.server.run()
        await until(lambda: rt.openadr.ven.status.registered, 15, "registration")
        assert rt.health()["parts"]["openadr"] == "ok"
        assert rt.openadr.status()["ven"]["ven_id"] == vtn.ven_id
        shed = round(0.3 * flex, 1)
        oid = vtn.add("LOAD_DISPATCH", "delta", -shed, 1, 60)
        await until(lambda: vtn.opts.get(oid), 15, "the opt answer")
        assert vtn.opts[oid] == "optIn"
        taken = rt.openadr.status()["events"][0]
        assert taken["utility_event_id"] == oid
        assert taken["opt"] == "optIn"
        (gid,) = taken["event_ids"]
        ev = rt.event(gid).event
        assert ev.source is EventSource.OPENADR
        assert ev.target_kw == pytest.approx(shed)  # 'delta' -shed kW of consumption: up
        assert ev.end - ev.start == pytest.approx(3600, abs=1)

        def delivering() -> bool:
            v = rt.event(gid)
            return v.event.status is EventStatus.ACTIVE and (v.delivered_kw or 0) > 0.9 * shed

        await driving(rt, clock, delivering, 20, "the fleet to deliver")
        delivered = rt.event(gid).delivered_kw
        assert delivered is not None
        n = len(vtn.reports.get("delivered", []))
        await until(lambda: len(vtn.reports.get("delivered", [])) > n, 15, "a report")
        reported = vtn.reports["delivered"][-1][1]
        assert reported == pytest.approx(delivered, abs=1e-3)  # the fleet has not moved since
        assert vtn.reports["fleet_import"][-1][1] == pytest.approx(
            -float(rt.state.p_kw.sum()), abs=1e-3
        )

        # the same event again (a VTN re-sending it): nothing new
        assert rt.openadr.handle(rt.openadr._taken[oid].event).event_ids == (gid,)
        assert len([v for v in rt.events() if v.event.source is EventSource.OPENADR]) == 1

        # cancelled by the utility: the Gridflock event is cancelled
        vtn.server.cancel_event(vtn.ven_id, oid)
        await until(
            lambda: rt.event(gid).event.status is EventStatus.CANCELLED, 15, "the cancellation"
        )
        assert rt.openadr.status()["events"][0]["cancelled"] is True
    finally:
        await _stop(rt, task)


@with_vtn
async def test_prices_modifications_and_refusals(tmp_path: Path, vtn: Vtn) -> None:
    rt, clock = rig(tmp_path, **_settings(vtn.url))
    flex = float(rt.fleet_summary()["flex_up_kw"])
    task = await _start(rt)
    try:
        await until(lambda: rt.openadr.ven.status.registered, 15, "registration")
        price = vtn.add("ELECTRICITY_PRICE", "price", 0.55, 60, 120)
        huge = vtn.add("LOAD_DISPATCH", "delta", -1e9, 60, 30)
        short = vtn.add("LOAD_DISPATCH", "delta", -(flex * 10 + 100), 60, 30)
        far = vtn.add("LOAD_DISPATCH", "delta", -1.0, 400 * 86400, 30)
        level = vtn.add("SIMPLE", "level", 3, 1200, 30)
        await until(lambda: len(vtn.opts) == 5, 20, "five answers")
        assert vtn.opts[price] == "optIn"
        assert vtn.opts[huge] == vtn.opts[short] == vtn.opts[far] == "optOut"
        assert vtn.opts[level] == "optIn", rt.openadr._taken[level].decision.reason
        reasons = {e["utility_event_id"]: e["reason"] for e in rt.openadr.status()["events"]}
        assert "within ±10,000,000 kW" in reasons[huge]
        assert "lacks the flexibility" in reasons[short]
        assert "one year" in reasons[far]
        # the price is a price input: the autopilot's tariff carries it over its window
        prices = rt.openadr.status()["prices"]
        assert [p["price_per_kwh"] for p in prices] == [0.55]
        # SIMPLE level 3: all the fleet can hold over the window
        (gid,) = rt.openadr._taken[level].decision.event_ids
        assert rt.event(gid).event.target_kw > 0

        # a modification (the same id, a new modification number) replaces the event
        ev = rt.openadr._taken[level].event
        vtn_event = next(
            e for e in vtn.server.events[vtn.ven_id] if e.event_descriptor.event_id == level
        )
        vtn_event.event_signals[0].intervals[0]["signal_payload"] = 1
        utils.increment_event_modification_number(vtn_event)
        vtn.server.events_updated[vtn.ven_id] = True
        await until(
            lambda: rt.openadr._taken[level].event.modification != ev.modification,
            15,
            "the modification",
        )
        (new,) = rt.openadr._taken[level].decision.event_ids
        assert new != gid
        assert rt.event(gid).event.status is EventStatus.CANCELLED
        assert rt.event(new).event.target_kw == pytest.approx(
            rt.event(gid).event.target_kw / 3, rel=0.25
        )
    finally:
        await _stop(rt, task)
    cycles(rt, clock, 4)


test_a_vtn_away_at_first_then_an_event_delivered_and_reported = with_vtn(
    _away_then_delivered, up=False
)
