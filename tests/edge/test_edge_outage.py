"""The service's broker killed mid-event: devices revert in time, no reading is lost.

Real parts: a private Mosquitto (killed with SIGKILL, restarted on the same port), the
SunSpec Modbus server with the twin's physics, the edge gateway with its SunSpec driver,
and a paho client as the service.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests._net import Broker

from gridflock.edge.gateway import CONTROL_TICK_S, EdgeGateway

from ._site import ServiceSide, Site
from ._site import until as _wait


def test_broker_killed_mid_event_devices_revert_and_buffered_readings_all_arrive(
    tmp_path: Path,
) -> None:
    broker = Broker(tmp_path)
    broker.start()
    site = Site()
    svc = ServiceSide(broker.port, "gw-edge-1")
    cfg = site.config(broker.port, failsafe={"silence_s": 30})
    try:
        asyncio.run(_scenario(broker, site, svc, cfg))
    finally:
        svc.close()
        broker.kill()


async def _scenario(broker: Broker, site: Site, svc: ServiceSide, cfg) -> None:  # type: ignore[no-untyped-def]
    await site.server.start()
    gw = EdgeGateway(cfg)
    polled: list[tuple[str, float]] = []
    for drv in gw.drivers:  # record every reading the driver hands the gateway
        read = drv.read

        async def recording(read=read):  # type: ignore[no-untyped-def]
            got = await read()
            polled.extend((r.device_id, r.ts) for r in got)
            return got

        drv.read = recording  # type: ignore[method-assign]
    run = asyncio.create_task(gw.run())
    try:
        await _wait(lambda: len(svc.keys()) >= 3, 10, "first telemetry")
        assert svc.status
        assert svc.status[-1]["status"] == "online"
        # an event: charge the battery at 3 kW, cap PV at 1 kW, for 3 s
        now = time.time()
        until = now + 3.0
        svc.send(
            {
                "v": 1,
                "issued_at": now,
                "commands": [
                    {
                        "id": "ev/bat/1",
                        "device": "site-bat",
                        "seq": 1,
                        "p_setpoint_kw": -3.0,
                        "valid_until": until,
                        "event": "ev",
                    },
                    {
                        "id": "ev/pv/1",
                        "device": "site-pv",
                        "seq": 1,
                        "p_setpoint_kw": 1.0,
                        "valid_until": until,
                        "event": "ev",
                    },
                ],
            }
        )
        await _wait(lambda: svc.ack_of("ev/pv/1") is not None, 5, "command acks")
        assert svc.ack_of("ev/bat/1")["status"] == "accepted"
        assert svc.ack_of("ev/pv/1")["status"] == "accepted"
        # the registers took it: the twin's battery charges at 3 kW, PV is capped at 1 kW
        assert abs(site.bat.requested_kw + 3.0) < 0.01
        assert abs(site.pv.p_kw - 1.0) < 0.01
        await _wait(
            lambda: any(r["device"] == "site-bat" and r["p_kw"] < -2.9 for r in svc.readings),
            5,
            "the charging power in telemetry",
        )
        # the broker dies mid-event
        broker.kill()
        killed_at = time.time()
        assert killed_at < until
        await _wait(
            lambda: site.bat.requested_kw == site.bat.own_p_kw,
            until - time.time() + 2,
            "the battery to revert",
        )
        reverted_at = time.time()
        await _wait(lambda: site.pv.limit_pct == 100.0, 1, "PV to revert")
        # within the command lifetime (one control tick of slack)
        assert reverted_at <= until + CONTROL_TICK_S + 0.5, (reverted_at, until)
        await _wait(lambda: len(gw.buffer) >= 6, 10, "readings to pile up in the buffer")
        offline = {(r.device_id, r.ts) for r in gw.buffer.peek(10_000)}
        assert not offline & svc.keys()
        # broker back: every buffered reading arrives, oldest first, batched
        broker.start()
        await _wait(lambda: offline <= svc.keys(), 15, "the buffered readings")
        await _wait(
            lambda: [x["status"] for x in svc.status].count("online") >= 2, 5, "online again"
        )
        assert gw.uplink.connects >= 2
        assert gw.buffer.dropped == 0
        # nothing lost: every reading polled until a second ago reached the service
        cutoff = time.time() - 1.0
        before = {k for k in polled if k[1] < cutoff}
        await _wait(lambda: before <= svc.keys(), 5, "every polled reading")
        assert len(before) >= 9, len(before)
        assert len(offline) >= 6
        # time order per device in what the service received (the buffer sends oldest first)
        last: dict[str, float] = {}
        for r in list(svc.readings):
            if (r["device"], float(r["ts"])) in offline:
                assert float(r["ts"]) > last.get(r["device"], 0.0)
                last[r["device"]] = float(r["ts"])
    finally:
        gw.stop()
        await asyncio.wait_for(run, 10)
        await site.server.stop()
