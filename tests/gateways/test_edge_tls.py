"""The edge gateway on ``mqtts://``: its CA option, a client certificate, its own account.

The broker is this folder's private Mosquitto with TLS only and client certificates
required (the ``pki`` and ``tls_port`` fixtures of ``test_mqtt_tls``); the gateway logs in
as gateway ``A`` with A's secret and reads a SunSpec site of the twin.
"""

from __future__ import annotations

import asyncio
import time

from tests.edge._site import Site

from gridflock.edge.config import parse_config
from gridflock.edge.gateway import EdgeGateway

from .conftest import SECRETS
from .test_mqtt_tls import pki, tls_port  # noqa: F401  (fixtures)


def test_edge_gateway_speaks_mqtts_with_its_ca_and_account(
    tls_port: int,  # noqa: F811
    pki: dict[str, str],  # noqa: F811
) -> None:
    site = Site()
    cfg = parse_config(
        {
            "gateway": {
                "id": "A",
                "broker": f"mqtts://127.0.0.1:{tls_port}",
                "password": SECRETS["A"],
                "tls_ca": pki["ca"],
                "tls_cert": pki["client_cert"],
                "tls_key": pki["client_key"],
            },
            "devices": site.devices(),
        }
    )

    async def main() -> None:
        await site.server.start()
        gw = EdgeGateway(cfg)
        run = asyncio.create_task(gw.run())
        try:
            end = time.monotonic() + 15
            while gw.stats.readings_sent < 3:  # acknowledged by the broker over TLS
                assert time.monotonic() < end, "no telemetry acknowledged over TLS"
                await asyncio.sleep(0.05)
            assert gw.connected
            assert gw.uplink.tls
        finally:
            gw.stop()
            await asyncio.wait_for(run, 10)
            await site.server.stop()

    asyncio.run(main())
