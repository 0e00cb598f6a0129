"""The twin's simulated gateways adopt pushed droop settings, and the twin's FFR follows them.

Against the real local Mosquitto at 127.0.0.1:1883 (shared: ids carry a unique tag; the
test fails, never skips, without it). The service's own ``MqttLink`` and ``SettingsPusher``
push Dynamic Containment with chosen contracted kW; the gateways answer, hold the items,
and the frequency response run with them delivers exactly those kW.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pandas as pd
import pytest

from gridflock.fleet.generate import generate_fleet
from gridflock.gateways.mqtt.link import BrokerAddress, MqttLink
from gridflock.gridcode import kind_responses
from gridflock.service.gridcode import SettingsPusher
from gridflock.sim.ffr_report import NAMED_EVENTS, run_frequency_event
from gridflock.sim.gateways import SimulatedGateways
from gridflock.sim.imperfections import Imperfections

from .test_gateways import URL, _prefixed, _require_broker, _until


def test_pushed_droop_is_adopted_and_drives_the_twins_frequency_response() -> None:
    _require_broker()
    tag = f"s{uuid.uuid4().hex[:8]}-"
    spec = _prefixed(generate_fleet(8, 3), tag)
    devices = spec.all_devices()
    gw_of = dict(zip(devices["id"], devices["gateway_id"], strict=True))
    sim = SimulatedGateways(
        spec, URL, step_s=1.0, connections=1, imperfections=Imperfections.ideal()
    )
    link = MqttLink(BrokerAddress.parse(URL), gw_of, share=tag.rstrip("-"))
    pusher = SettingsPusher(link, time.time, resend_s=2.0)
    contracted = {str(d): (1.5, 0.5) for d in devices["id"]}

    async def main() -> None:
        tasks = [asyncio.create_task(sim.run()), asyncio.create_task(link.run())]
        try:
            await _until("the link connected", lambda: link.connected, 10.0)
            await _until("gateways connected", lambda: sim.connected == sim.n_connections, 10.0)
            out = pusher.push(spec, product="GB-DC", capacity=contracted)
            assert out["devices"] == len(devices)  # every device: the product reaches all kinds

            def answered() -> bool:
                pusher.take_report(link.take_report(), time.time())
                return all(r.status != "pending" for r in pusher.records.values())

            await _until("every answer", answered, 20.0)
        finally:
            sim.stop()
            link.stop()
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 15)

    asyncio.run(main())
    assert {r.status for r in pusher.records.values()} == {"accepted"}
    assert set(sim.pushed) == set(gw_of)
    assert all(it.ffr is not None and it.ffr.product == "GB-DC" for it in sim.pushed.values())

    # the twin's response to a 49.5 Hz step follows the pushed droop and contracted kW
    start = pd.Timestamp("2026-07-15 18:00", tz="Europe/Berlin").tz_convert("UTC")
    rep = run_frequency_event(spec, NAMED_EVENTS["step"], start, seed=3, pushed=sim.pushed)
    dc = next(c for c in rep.cases if c.product.code == "GB-DC")
    known = [k for k in devices["kind"] if k in kind_responses()]  # kinds with a droop model
    assert dc.required_kw == pytest.approx(1.5 * len(known))
    other = next(c for c in rep.cases if c.product.code == "AU-VFFCAS")
    assert other.required_kw == pytest.approx(rep.capacity_up_kw)  # not pushed: the capacity
