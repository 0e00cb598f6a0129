"""The ingest role: telemetry from the broker into the store, nothing else.

An ingest worker (``gridflock serve --role ingest``) joins the shared telemetry
subscription of its group (``$share/gridflock-ingest/gf/v1/+/telemetry``): the broker
hands each message to one worker of the group, so adding workers splits the load. Each
worker decodes and screens what arrived once per ``telemetry_flush_s`` with the MQTT
link's own checks (bad readings refused with their reasons on the gateway's ack topic,
devices not behind the sending gateway refused, per-gateway rate limits) and queues the
valid readings for the :class:`~gridflock.service.writer.StoreWriter` (batched COPY,
buffered through database outages, refused rows kept as dead letters).

It knows the fleet only as the gateway of each device, read from the store at start and
again every ``fleet_check_s`` (a fleet imported through the control process reaches it
within that). It runs no control loop, sends no commands, and takes no command
acknowledgements or gateway statuses (the control process subscribes to those). Its own
small HTTP server answers ``/health`` (also at ``/api/v1/health``) and ``/metrics``.

The control process subscribes to telemetry in a group of its own, so it sees the whole
stream for the fleet state while the ingest workers share the writing.

Sessions are clean (``clean_session``): when a worker dies, the broker drops its
subscription as soon as it sees the connection closed, and the other workers of the
group get the whole stream from then on. What the dead worker had received but not yet
written (at most one decode period plus its unwritten buffer) is lost; readings are
QoS 0, so the broker keeps no copy (see docs/scaling.md for the measured figures).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from gridflock import __version__
from gridflock.config import Settings
from gridflock.domain.messages import TelemetryBatch
from gridflock.domain.ports import LinkReport
from gridflock.service.metrics import ServiceMetrics
from gridflock.service.writer import StoreWriter
from gridflock.store import Store

__all__ = ["INGEST_SHARE", "IngestLink", "IngestWorker", "ingest_app", "run_ingest"]

log = logging.getLogger("gridflock.ingest")

#: Shared-subscription group of the ingest workers (the control process is in another).
INGEST_SHARE = "gridflock-ingest"
#: Seconds between reads of the fleet (device → gateway) from the store.
FLEET_CHECK_S = 30.0
#: Seconds between retries while the fleet cannot be read at start.
FLEET_RETRY_S = 2.0


class IngestLink(Protocol):
    """What an ingest worker needs of a device link (the MQTT link has it all)."""

    @property
    def connected(self) -> bool:
        """Whether the broker connection is up."""
        ...

    def update_gateways(self, gateway_of_device: dict[str, str]) -> None:
        """Take up the fleet as the gateway of each device."""
        ...

    def receive(self) -> list[TelemetryBatch]:
        """Everything that arrived, decoded and screened."""
        ...

    def take_report(self) -> LinkReport:
        """Counters since the last report."""
        ...

    async def run(self) -> None:
        """Stay connected until stopped."""
        ...

    def stop(self) -> None:
        """End :meth:`run`."""
        ...


class IngestWorker:
    """Screens the telemetry its link receives and writes it through a store writer.

    Parameters
    ----------
    settings
        ``telemetry_flush_s`` (decode and write period), ``telemetry_buffer_rows``.
    store
        Where readings go and where the fleet is read from.
    link
        The broker connection, subscribed to telemetry only.
    fleet_check_s
        Seconds between reads of the fleet from the store.

    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        link: IngestLink,
        *,
        fleet_check_s: float = FLEET_CHECK_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.link = link
        self.fleet_check_s = fleet_check_s
        self.clock = clock
        self.writer = StoreWriter(store, settings.telemetry_buffer_rows)
        self.metrics = ServiceMetrics()
        self.devices = 0
        self.fleet_loaded = False
        self.readings_accepted = 0
        self._gateways: dict[str, str] = {}
        self._stopping = asyncio.Event()
        self._writing = False

    # ------------------------------------------------------------------ the fleet
    def load_fleet(self) -> bool:
        """Read the fleet from the store (blocking); True if it changed.

        A database away leaves the fleet as it was (and returns False).
        """
        try:
            gateways = self.store.device_gateways()
        except Exception as e:  # an outage: keep the fleet known so far
            log.warning("cannot read the fleet from the database: %s", e)
            return False
        self.fleet_loaded = True
        if gateways == self._gateways:
            return False
        self._gateways = gateways
        self.link.update_gateways(gateways)
        self.devices = len(gateways)
        self.metrics.devices_total.set(self.devices)
        log.info("fleet: %d devices", self.devices)
        return True

    # ------------------------------------------------------------------ one step
    def step(self) -> int:
        """Decode and screen what arrived, queue it for the store; returns readings queued."""
        queued = 0
        for batch in self.link.receive():
            self.writer.telemetry(batch)
            queued += len(batch)
        self.readings_accepted += queued
        m = self.metrics
        m.readings.labels("accepted").inc(queued)
        report = self.link.take_report()
        m.messages.inc(report.messages)
        for reason, n in report.rejected.items():
            if n:
                m.rejected.labels(reason).inc(n)
        return queued

    # ------------------------------------------------------------------ running
    async def run(self) -> None:
        """Read the fleet, then decode and write every ``telemetry_flush_s`` until :meth:`stop`.

        Nothing is decoded before the fleet is known (every reading would be refused as
        from an unknown device); what arrives meanwhile waits in the link's queue.
        """
        while not await asyncio.to_thread(self.load_fleet) and not self.fleet_loaded:
            if self._stopping.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), FLEET_RETRY_S)
        self._writing = True
        writer = asyncio.create_task(self._write_loop(), name="writer")
        fleet = asyncio.create_task(self._fleet_loop(), name="fleet")
        interval = self.settings.telemetry_flush_s
        try:
            while not self._stopping.is_set():
                self.step()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), interval)
        finally:
            fleet.cancel()
            self._writing = False
            with contextlib.suppress(asyncio.CancelledError):
                await fleet
            await writer

    async def drain(self) -> None:
        """After the broker connection is closed: take what is queued and write it all."""
        self.step()
        await asyncio.to_thread(self.writer.flush)

    def stop(self) -> None:
        """Ask :meth:`run` to return."""
        self._stopping.set()

    async def _write_loop(self) -> None:
        while self._writing:
            await asyncio.to_thread(self.writer.flush)
            for _ in range(max(int(self.settings.telemetry_flush_s / 0.1), 1)):
                if not self._writing:
                    return
                await asyncio.sleep(0.1)

    async def _fleet_loop(self) -> None:
        while True:
            await asyncio.sleep(self.fleet_check_s)
            await asyncio.to_thread(self.load_fleet)

    # ------------------------------------------------------------------ health, metrics
    def health(self) -> dict[str, Any]:
        """The worker's state; degraded while the database or the broker is away."""
        db_up = self.writer.stats.database_up
        parts = {
            "broker": "ok" if self.link.connected else "unreachable",
            "writes": "ok" if db_up else "buffering",
            "fleet": "ok" if self.fleet_loaded else "unknown",
        }
        degraded = [k for k, v in parts.items() if v != "ok"]
        s = self.writer.stats
        return {
            "status": "degraded" if degraded else "ok",
            "role": "ingest",
            "degraded": degraded,
            "parts": parts,
            "version": __version__,
            "database": "up" if db_up else "down",
            "mqtt": "connected" if self.link.connected else "disconnected",
            "devices_total": self.devices,
            "readings_accepted": self.readings_accepted,
            "readings_written": s.rows_written,
            "buffered_readings": self.writer.buffered_rows,
            "dropped_readings": s.rows_dropped,
            "quarantined_readings": s.quarantined_rows,
        }

    def metrics_text(self) -> bytes:
        """Prometheus exposition."""
        m, s = self.metrics, self.writer.stats
        m.buffered_rows.set(self.writer.buffered_rows)
        m.dropped_rows.set(s.rows_dropped)
        m.written_rows.set(s.rows_written)
        m.quarantined.labels("ops").set(s.quarantined_ops)
        m.quarantined.labels("readings").set(s.quarantined_rows)
        m.database_up.set(1 if s.database_up else 0)
        m.mqtt_connected.set(1 if self.link.connected else 0)
        return m.exposition()


def ingest_app(worker: IngestWorker) -> Any:
    """The worker's HTTP app: ``/health`` (and ``/api/v1/health``) and ``/metrics``, no key."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, Response

    app = FastAPI(title="Gridflock ingest", docs_url=None, redoc_url=None, openapi_url=None)

    async def health() -> JSONResponse:
        h = worker.health()
        return JSONResponse(h, status_code=200 if h["status"] == "ok" else 503)

    async def metrics() -> Response:
        return Response(worker.metrics_text(), media_type="text/plain; version=0.0.4")

    app.add_api_route("/health", health, methods=["GET"])
    app.add_api_route("/api/v1/health", health, methods=["GET"])
    app.add_api_route("/metrics", metrics, methods=["GET"])
    return app


async def run_ingest(settings: Settings, worker: IngestWorker) -> None:
    """Serve until SIGINT/SIGTERM, then stop in order.

    The broker connection is closed first (the broker stops handing this worker
    messages), then what was received is decoded and written, so a graceful stop loses
    nothing the worker had received.
    """
    from gridflock.service._serving import http_server, stop_on_signals

    server = http_server(ingest_app(worker), settings, lifespan="off")
    stop = stop_on_signals()
    link = worker.link
    tasks = {
        asyncio.create_task(server.serve(), name="http"),
        asyncio.create_task(link.run(), name="mqtt"),
        asyncio.create_task(worker.run(), name="ingest"),
    }
    waiter = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    log.info("stopping: closing the broker connection, then writing what was received")
    link.stop()
    worker.stop()
    server.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)
    await worker.drain()
    waiter.cancel()
    s = worker.writer.stats
    log.info(
        "stopped: %d readings written, %d left unwritten",
        s.rows_written,
        worker.writer.buffered_rows,
    )
    for t in done:  # surface a crash of any part
        if t is not waiter and not t.cancelled() and t.exception() is not None:
            raise t.exception()  # type: ignore[misc]
