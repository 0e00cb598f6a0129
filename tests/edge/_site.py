"""A test site: a SunSpec server (PV, battery, meter), an edge config, a service-side client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from tests._net import HOST, free_port

from gridflock.edge.config import EdgeConfig, parse_config
from gridflock.edge.gateway import EdgeGateway
from gridflock.sim.sunspec_server import BatteryUnit, MeterUnit, PvInverterUnit, SunSpecServer


def wait_for(cond: Any, timeout: float, what: str, every: float = 0.05) -> Any:
    """Poll ``cond`` (sync) until truthy; AssertionError naming ``what`` after ``timeout``."""
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


async def until(cond: Callable[[], Any], timeout: float, what: str) -> None:
    """Poll ``cond`` (sync) from a coroutine until truthy; AssertionError after ``timeout``."""
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


def run_with_server(
    units: dict[int, Any], body: Callable[[int], Awaitable[None]], port: int | None = None
) -> None:
    """Run ``body(port)`` in a new event loop beside a SunSpec server of ``units``."""

    async def main() -> None:
        p = port or free_port()
        srv = SunSpecServer(units, port=p)
        await srv.start()
        try:
            await body(p)
        finally:
            await srv.stop()

    asyncio.run(main())


@contextlib.contextmanager
def server_in_thread(units: dict[int, Any]) -> Iterator[int]:
    """A SunSpec server of ``units`` on a free port, in its own thread and event loop
    (for callers that block: the CLI runner, synchronous clients); yields the port."""
    port = free_port()
    server = SunSpecServer(units, port=port)
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        ready.set()
        loop.run_forever()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    assert ready.wait(10), "the SunSpec server did not start"
    try:
        yield port
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        t.join(10)
        loop.close()


class ServiceSide:
    """The service's end of protocol v1 (paho, own thread): records telemetry and acks."""

    def __init__(
        self, port: int, gateway: str, user: str | None = None, password: str | None = None
    ) -> None:
        import paho.mqtt.client as paho

        self.gateway = gateway
        self.readings: list[dict[str, Any]] = []
        self.acks: list[dict[str, Any]] = []
        self.status: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=f"svc-{uuid.uuid4().hex[:6]}",
            protocol=paho.MQTTv5,
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1)
        if user is not None:
            self.client.username_pw_set(user, password)
        self.client.connect(HOST, port, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        g = self.gateway
        client.subscribe(
            [(f"gf/v1/{g}/telemetry", 1), (f"gf/v1/{g}/ack", 1), (f"gf/v1/{g}/status", 1)]
        )

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        obj = json.loads(msg.payload)
        with self._lock:
            if msg.topic.endswith("/telemetry"):
                self.readings.extend(obj["readings"])
            elif msg.topic.endswith("/ack") and obj.get("type") == "command_ack":
                self.acks.extend(obj["acks"])
            elif msg.topic.endswith("/status"):
                self.status.append(obj)

    def send(self, obj: dict[str, Any]) -> None:
        """Publish a cmd message to the gateway (QoS 1)."""
        info = self.client.publish(f"gf/v1/{self.gateway}/cmd", json.dumps(obj), qos=1)
        info.wait_for_publish(5)

    def ack_of(self, command_id: str) -> dict[str, Any] | None:
        with self._lock:
            return next((a for a in self.acks if a["id"] == command_id), None)

    def keys(self) -> set[tuple[str, float]]:
        with self._lock:
            return {(r["device"], float(r["ts"])) for r in self.readings}

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self.client.loop_stop()


class Site:
    """A PV inverter (unit 1), a battery (unit 2) and a site meter (unit 3) on one server."""

    def __init__(self, *, pv_flavour: str = "1xx") -> None:
        self.port = free_port()
        self.pv = PvInverterUnit(5.0, irradiance=lambda t: 800.0, flavour=pv_flavour)
        self.bat = BatteryUnit(10.0, 5.0, soc=0.5, reserve=0.1)
        self.meter = MeterUnit([self.pv, self.bat], load_kw=lambda t: 0.5)
        self.server = SunSpecServer({1: self.pv, 2: self.bat, 3: self.meter}, port=self.port)

    def devices(self, poll_s: float = 1.0) -> list[dict[str, Any]]:
        base = {"protocol": "sunspec", "host": HOST, "port": self.port, "poll_interval_s": poll_s}
        return [
            {**base, "id": "site-pv", "kind": "pv", "unit": 1},
            {**base, "id": "site-bat", "kind": "battery", "unit": 2},
            {**base, "id": "site-meter", "kind": "meter", "unit": 3},
        ]

    def config(self, broker_port: int, **extra: Any) -> EdgeConfig:
        gateway = {"id": "gw-edge-1", "broker": f"mqtt://{HOST}:{broker_port}"}
        return parse_config({"gateway": gateway, "devices": self.devices(), **extra})


@contextlib.asynccontextmanager
async def gateway_on(
    site: Site, config: EdgeConfig, clock: Callable[[], float] = time.time
) -> AsyncIterator[EdgeGateway]:
    """``site``'s server running and a gateway on ``config`` with its drivers started;
    drivers closed and the server stopped on the way out."""
    await site.server.start()
    try:
        gw = EdgeGateway(config, clock=clock)
        for d in gw.drivers:
            await d.start()
        try:
            yield gw
        finally:
            for d in gw.drivers:
                await d.close()
    finally:
        await site.server.stop()
