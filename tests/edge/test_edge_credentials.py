"""The edge gateway on a broker with Gridflock's per-gateway accounts and ACLs.

The broker configuration is the one ``gridflock broker acl`` writes (Mosquitto's dynamic
security plugin): the gateway logs in with its own id and secret and stays within its
topics; a wrong secret gets it nothing, and it keeps trying without giving up.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests._net import Broker
from tests.faults._harness import SERVICE_USER

from gridflock.edge.gateway import EdgeGateway

from ._site import ServiceSide, Site, until

SECRET = "edge-secret-1"


def test_gateway_logs_in_with_its_own_secret_and_a_wrong_one_gets_nothing(tmp_path: Path) -> None:
    broker = Broker(
        tmp_path / "broker", accounts={"gw-edge-1": [], "gw-other": []}, password=SECRET
    )
    broker.start()
    svc = ServiceSide(broker.port, "gw-edge-1", SERVICE_USER, SECRET)
    site = Site()

    async def main() -> None:
        await site.server.start()
        good = EdgeGateway(
            site.config(
                broker.port,
                gateway={
                    "id": "gw-edge-1",
                    "password": SECRET,
                    "broker": f"mqtt://127.0.0.1:{broker.port}",
                },
            )
        )
        bad = EdgeGateway(
            site.config(
                broker.port,
                gateway={
                    "id": "gw-edge-1",
                    "password": "wrong",
                    "broker": f"mqtt://127.0.0.1:{broker.port}",
                },
            )
        )
        bad_run = asyncio.create_task(bad.run())
        await asyncio.sleep(1.5)
        assert not bad.connected
        assert bad.stats.readings_polled > 0  # it polls and buffers all the same
        assert svc.keys() == set()
        bad.stop()
        await asyncio.wait_for(bad_run, 10)

        run = asyncio.create_task(good.run())
        try:
            await until(lambda: len(svc.keys()) >= 3, 10, "telemetry under the gateway's account")
            now = time.time()
            svc.send(
                {
                    "v": 1,
                    "issued_at": now,
                    "commands": [
                        {
                            "id": "k1",
                            "device": "site-bat",
                            "seq": 1,
                            "p_setpoint_kw": 1.5,
                            "valid_until": now + 20,
                            "event": None,
                        }
                    ],
                }
            )
            await until(lambda: svc.ack_of("k1") is not None, 5, "the command ack")
            assert svc.ack_of("k1")["status"] == "accepted"
            assert abs(site.bat.requested_kw - 1.5) < 0.01
        finally:
            good.stop()
            await asyncio.wait_for(run, 10)
            await site.server.stop()

    try:
        asyncio.run(main())
    finally:
        svc.close()
        broker.stop()
