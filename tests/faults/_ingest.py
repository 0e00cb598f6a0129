"""Scenarios of the ingest role: workers sharing telemetry, one killed, broker and DB restarts.

Real parts only: a private Mosquitto, a PostgreSQL schema (through a cuttable proxy when
the database is cut), ``gridflock serve --role ingest`` as subprocesses, and a publisher
that sends telemetry of the stored fleet at a steady rate with each reading stamped with
its publish time, so the readings missing from the store afterwards say *when* they were
lost. Shared by ``test_ingest.py`` (small, short) and the figures in BENCHMARKS.md.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as paho
from sqlalchemy.engine import make_url
from tests._net import Broker

from ._harness import (
    HOST,
    PG_URL,
    PgSchema,
    ScenarioError,
    Serve,
    metric,
    provision,
    wait_until,
)
from ._outage import CuttableProxy


class IngestProc(Serve):
    """``gridflock serve --role ingest`` as a subprocess (health and metrics on its port)."""

    def __init__(self, workdir: Path, n: int, **settings: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        super().__init__(
            workdir, "", role="ingest", mqtt_client_id=f"gridflock-ingest-{n}", **settings
        )

    def counts(self) -> dict[str, float]:
        """Readings accepted and written, and buffered, from ``/metrics``."""
        with contextlib.suppress(Exception):
            text = self.metrics()
            return {
                "accepted": metric(text, "gridflock_telemetry_readings_total", outcome="accepted"),
                "written": metric(text, "gridflock_store_written_rows"),
                "buffered": metric(text, "gridflock_store_buffered_rows"),
                "dropped": metric(text, "gridflock_store_dropped_rows"),
            }
        return {}


class Publisher:
    """Publishes every gateway's readings of a fleet in turn, ``rate`` messages a second.

    Each message carries all devices of one gateway stamped with one time, unique over
    the run. ``sent`` holds (ts, readings) of every message the client accepted while
    connected; while the broker is away nothing is published (a gateway would buffer).
    """

    def __init__(self, broker_port: int, gateways: dict[str, list[str]], rate: float) -> None:
        self.gateways = sorted(gateways.items())
        self.rate = rate
        self.sent: list[tuple[float, int]] = []
        self.skipped = 0
        self.acks: list[bytes] = []
        self._stop = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="gf-test-publisher")
        self.client.on_message = lambda c, u, m: self.acks.append(m.payload)
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect(HOST, broker_port, keepalive=10)
        self.client.subscribe("gf/v1/+/ack", qos=0)
        self.client.loop_start()
        self._thread: threading.Thread | None = None
        self._last_ts = 0.0

    def publish_one(self, gateway: str, devices: list[str], payload: bytes | None = None) -> bool:
        """One message of ``gateway`` (its devices' readings now, or ``payload``)."""
        from gridflock.gateways.mqtt.codec import encode_telemetry

        ts = max(round(time.time(), 3), round(self._last_ts + 0.001, 3))
        self._last_ts = ts
        if payload is None:
            n = len(devices)
            payload = encode_telemetry(gateway, devices, np.full(n, ts), np.linspace(-1, 1, n))
        if not self.client.is_connected():
            self.skipped += 1
            return False
        info = self.client.publish(f"gf/v1/{gateway}/telemetry", payload, qos=0)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            self.skipped += 1
            return False
        self.sent.append((ts, len(devices)))
        return True

    def start(self) -> None:
        """Publish in a thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        i, t0 = 0, time.monotonic()
        while not self._stop.is_set():
            gw, devices = self.gateways[i % len(self.gateways)]
            self.publish_one(gw, devices)
            i += 1
            time.sleep(max(t0 + i / self.rate - time.monotonic(), 0.0))

    def stop(self) -> None:
        """Stop publishing (the connection stays, for acks)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def close(self) -> None:
        self.stop()
        self.client.loop_stop()
        with contextlib.suppress(Exception):
            self.client.disconnect()

    @property
    def readings(self) -> int:
        """Readings published (accepted by the client while connected)."""
        return sum(n for _, n in self.sent)


@dataclass
class Rig:
    """A broker, a schema with a fleet, some ingest workers, a publisher."""

    workdir: Path
    broker: Broker
    schema: PgSchema
    workers: list[IngestProc]
    publisher: Publisher
    gateways: dict[str, list[str]]
    proxy: CuttableProxy | None = None

    def stored(self) -> int:
        return int(self.schema.scalar("SELECT count(*) FROM {s}.telemetry"))

    def stored_ts(self) -> list[float]:
        rows = self.schema.rows(
            "SELECT extract(epoch FROM ts)::float8, count(*) FROM {s}.telemetry GROUP BY 1"
        )
        return [float(t) for t, _ in rows]

    def missing(self) -> list[float]:
        """Publish times of the messages with no reading in the store."""
        have = np.sort(np.array(self.stored_ts()))
        out = []
        for ts, _ in self.publisher.sent:
            k = np.searchsorted(have, ts - 0.0005)
            if k >= len(have) or abs(have[k] - ts) > 0.0005:
                out.append(ts)
        return out


@contextlib.contextmanager
def rig(
    workdir: Path,
    *,
    workers: int = 2,
    homes: int = 30,
    seed: int = 5,
    rate: float = 100.0,
    via_proxy: bool = False,
    persistence: bool = False,
    **settings: str,
) -> Any:
    """Everything started and ready; stopped by its own pids on exit."""
    from gridflock.fleet.generate import generate_fleet

    spec = generate_fleet(homes, seed)
    devices = spec.all_devices()
    gateways: dict[str, list[str]] = {}
    for d, g in zip(devices["id"], devices["gateway_id"], strict=True):
        gateways.setdefault(str(g), []).append(str(d))
    with contextlib.ExitStack() as stack:
        schema = PgSchema("gf_ingest")
        stack.callback(schema.drop)
        provision(schema, spec)
        url, proxy = schema.url, None
        if via_proxy:
            pg = make_url(PG_URL)
            proxy = CuttableProxy((pg.host or HOST, pg.port or 5432))
            proxy.restore()
            stack.callback(proxy.cut)
            url = schema.url_via(
                pg.set(host=HOST, port=proxy.port, query={"connect_timeout": "2"}).render_as_string(
                    hide_password=False
                )
            )
        broker = Broker(workdir / "broker", persistence=persistence)
        broker.start()
        stack.callback(broker.stop)
        procs = []
        for n in range(workers):
            p = IngestProc(
                workdir / f"ingest-{n}",
                n,
                database_url=url,
                mqtt_url=broker.url,
                telemetry_flush_s="0.5",
                **settings,
            )
            stack.callback(p.cleanup)
            p.start()
            procs.append(p)
        for p in procs:
            p.wait_answering(60)
        pub = Publisher(broker.port, gateways, rate)
        stack.callback(pub.close)
        wait_until(pub.client.is_connected, 10, "the publisher on the broker")
        r = Rig(workdir, broker, schema, procs, pub, gateways, proxy)
        # every worker's subscription is in place once each has taken a reading
        first = next(iter(sorted(gateways.items())))

        def all_subscribed() -> bool:
            pub.publish_one(*first)
            time.sleep(0.05)
            return all(p.counts().get("accepted", 0) > 0 for p in procs)

        wait_until(all_subscribed, 30, "every ingest worker to take readings", every=0.2)
        settle(r)  # the last probes written too, so figures taken from here count only the run
        yield r


def settle(r: Rig, timeout: float = 20) -> None:
    """Wait until the workers have written everything they accepted."""

    def done() -> bool:
        cs = [p.counts() for p in r.workers if p.proc is not None and p.proc.poll() is None]
        return all(c and c["buffered"] == 0 and c["accepted"] == c["written"] for c in cs)

    time.sleep(1.0)  # the last messages reach a worker and its next decode
    wait_until(done, timeout, "the workers to write what they accepted", every=0.2)


# ---------------------------------------------------------------------------------------
# figures


@dataclass
class ShareFigures:
    published: int
    stored: int
    accepted_per_worker: list[int]
    written_per_worker: list[int]


def share_load(workdir: Path, messages: int = 400, rate: float = 200.0) -> ShareFigures:
    """Two workers, a known number of readings: who took what, and what was stored."""
    with rig(workdir, rate=rate) as r:
        base = [int(p.counts()["accepted"]) for p in r.workers]
        stored0 = r.stored()
        pub0 = r.publisher.readings
        gws = r.publisher.gateways
        t0 = time.monotonic()
        for i in range(messages):
            r.publisher.publish_one(*gws[i % len(gws)])
            time.sleep(max(t0 + (i + 1) / rate - time.monotonic(), 0.0))
        settle(r)
        cs = [p.counts() for p in r.workers]
        return ShareFigures(
            published=r.publisher.readings - pub0,
            stored=r.stored() - stored0,
            accepted_per_worker=[int(c["accepted"]) - b for c, b in zip(cs, base, strict=True)],
            written_per_worker=[int(c["written"]) for c in cs],
        )


@dataclass
class KillFigures:
    published: int
    stored: int
    lost_readings: int
    lost_messages: int
    lost_window_s: float
    """From the first to the last lost message's publish time [s]."""
    lost_before_kill_s: float
    """How long before the kill the first lost message was published [s]."""
    lost_after_kill_s: float
    """How long after the kill the last lost message was published [s]."""
    survivor_after_kill: int
    """Readings the surviving worker accepted after the kill."""
    rate_readings_s: float


def kill_one(
    workdir: Path, rate: float = 100.0, before_s: float = 2.0, after_s: float = 3.0, **settings: str
) -> KillFigures:
    """Two workers under a steady stream; SIGKILL one; what is lost, and when it was sent."""
    with rig(workdir, rate=rate, **settings) as r:
        r.publisher.start()
        time.sleep(before_s)
        victim, survivor = r.workers
        s0 = survivor.counts()["accepted"]
        killed_at = time.time()
        victim.kill()
        time.sleep(after_s)
        r.publisher.stop()
        settle(r)
        missing = r.missing()
        span = r.publisher.sent[-1][0] - r.publisher.sent[0][0]
        return KillFigures(
            published=r.publisher.readings,
            stored=r.stored(),
            lost_readings=r.publisher.readings - r.stored(),
            lost_messages=len(missing),
            lost_window_s=(max(missing) - min(missing)) if missing else 0.0,
            lost_before_kill_s=(killed_at - min(missing)) if missing else 0.0,
            lost_after_kill_s=(max(missing) - killed_at) if missing else 0.0,
            survivor_after_kill=int(survivor.counts()["accepted"] - s0),
            rate_readings_s=r.publisher.readings / span,
        )


@dataclass
class RestartFigures:
    published: int
    stored: int
    lost_readings: int
    down_s: float
    """How long the broker or the database was away [s]."""
    recovery_s: float
    """From its return to readings flowing into the store again (broker) or the backlog
    written (database) [s]."""
    buffered_peak: int = 0
    skipped_by_publisher: int = 0
    """Messages the publisher could not send while the broker was away."""
    lost_messages_after_return: int = 0
    lost_messages_before_stop: int = 0
    """Messages lost that were published more than 0.5 s before the broker stopped."""
    extra: dict[str, Any] = field(default_factory=dict)


def broker_restart(workdir: Path, rate: float = 100.0, down_s: float = 2.0) -> RestartFigures:
    """Workers under a steady stream; Mosquitto stopped and started again on its port."""
    with rig(workdir, rate=rate) as r:
        r.publisher.start()
        time.sleep(1.0)
        r.broker.stop()
        stopped = time.time()
        time.sleep(down_s)
        r.broker.start()
        back = time.time()
        before = r.stored()

        def flowing() -> bool:
            return r.stored() > before + 50

        wait_until(flowing, 30, "readings to reach the store again", every=0.05)
        recovery = time.time() - back
        time.sleep(1.0)
        r.publisher.stop()
        settle(r)
        missing = r.missing()
        return RestartFigures(
            published=r.publisher.readings,
            stored=r.stored(),
            lost_readings=r.publisher.readings - r.stored(),
            down_s=back - stopped,
            recovery_s=recovery,
            skipped_by_publisher=r.publisher.skipped,
            lost_messages_after_return=sum(1 for t in missing if t > back + recovery),
            lost_messages_before_stop=sum(1 for t in missing if t < stopped - 0.5),
            extra={"lost_messages": len(missing)},
        )


def database_outage(workdir: Path, rate: float = 100.0, down_s: float = 10.0) -> RestartFigures:
    """Workers under a steady stream; PostgreSQL cut for ``down_s``; backlog written after."""
    with rig(workdir, rate=rate, via_proxy=True) as r:
        assert r.proxy is not None
        r.publisher.start()
        time.sleep(1.0)
        r.proxy.cut()
        cut = time.time()
        peak = 0
        while time.time() - cut < down_s:
            peak = max(peak, int(sum(p.counts().get("buffered", 0) for p in r.workers)))
            time.sleep(0.5)
        r.proxy.restore()
        back = time.time()

        def drained() -> bool:
            return all(p.counts().get("buffered", 1) == 0 for p in r.workers)

        wait_until(drained, 30, "the backlog to be written", every=0.1)
        recovery = time.time() - back
        r.publisher.stop()
        settle(r)
        dropped = int(sum(p.counts()["dropped"] for p in r.workers))
        if dropped:
            raise ScenarioError(f"the workers dropped {dropped} readings")
        return RestartFigures(
            published=r.publisher.readings,
            stored=r.stored(),
            lost_readings=r.publisher.readings - r.stored(),
            down_s=back - cut,
            recovery_s=recovery,
            buffered_peak=peak,
        )
