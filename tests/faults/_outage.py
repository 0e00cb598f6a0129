"""Scenario: PostgreSQL cut off for a while under a running service with live telemetry.

``gridflock serve`` reaches PostgreSQL through a TCP proxy that the scenario cuts (every
connection closed, new ones refused) and restores; the simulated gateways keep
reporting every second. What the API answers during the outage is recorded per
endpoint, and after it the rows in the store are counted against the readings the
gateways published.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import make_url
from tests._net import Broker, CuttableProxy

from ._harness import (
    HOST,
    PG_URL,
    PgSchema,
    ScenarioError,
    Serve,
    Sim,
    all_online,
    fleet,
    metric,
    post_event,
    provision,
    wait_until,
)


@dataclass
class OutageFigures:
    """What a database outage under load cost, and how fast the backlog was written."""

    devices: int
    outage_s: float
    """From the cut to the restore [s]."""
    answers: dict[str, list[int]] = field(default_factory=dict)
    """HTTP statuses each endpoint answered during the outage (distinct, sorted)."""
    health_database: str = ""
    """The database part of ``/health`` during the outage."""
    health_status: str = ""
    buffered_peak: int = 0
    """Most readings held in memory during the outage."""
    buffer_bound: int = 0
    """``telemetry_buffer_rows``: the stated bound within which nothing may be lost."""
    flush_s: float = 0.0
    """From the restore to the backlog written and the database part up [s]."""
    published: int = 0
    """Readings the simulated gateways published in all."""
    stored: int = 0
    """Telemetry rows in the store at the end."""
    lost: int = 0
    dropped_by_service: int = 0
    """Readings the service says it dropped (buffer overflow)."""
    event_created_during_outage_stored: bool = False
    commands_recorded: int = 0
    """Commands in the store for the event that ran through the outage."""


def database_outage(
    workdir: Path,
    homes: int = 20,
    seed: int = 11,
    outage_s: float = 10.0,
    buffer_rows: int = 100_000,
) -> OutageFigures:
    """Cut PostgreSQL for ``outage_s`` while telemetry flows and an event runs.

    ``buffer_rows`` is the service's ``telemetry_buffer_rows``: with a bound below what
    the outage brings, the readings lost must be exactly those the service counts as
    dropped.
    """
    spec = fleet(homes, seed)
    n = spec.n_devices  # type: ignore[attr-defined]
    with contextlib.ExitStack() as stack:
        schema = PgSchema()
        stack.callback(schema.drop)
        key = provision(schema, spec)
        pg = make_url(PG_URL)
        proxy = CuttableProxy((pg.host or HOST, pg.port or 5432))
        proxy.restore()
        stack.callback(proxy.cut)
        via_proxy = schema.url_via(
            pg.set(host=HOST, port=proxy.port, query={"connect_timeout": "2"}).render_as_string(
                hide_password=False
            )
        )
        broker = Broker(workdir / "broker")
        broker.start()
        stack.callback(broker.stop)
        bound = buffer_rows
        serve = Serve(
            workdir,
            key,
            database_url=via_proxy,
            mqtt_url=broker.url,
            telemetry_buffer_rows=str(bound),
        )
        stack.callback(serve.cleanup)
        serve.start()
        serve.wait_answering()
        wait_until(lambda: serve.health()["mqtt"] == "connected", 15, "the service on MQTT")
        sim = Sim(
            workdir, broker.url, "--homes", str(homes), "--seed", str(seed), "--connections", "2"
        )
        stack.callback(sim.kill)
        all_online(serve, n, 30 + n / 100)
        event_id, _ = post_event(serve, 0.3)
        count = "SELECT count(*) FROM {s}.telemetry"
        wait_until(lambda: schema.scalar(count) > n, 15, "telemetry in the store")

        f = OutageFigures(devices=n, outage_s=0.0, buffer_bound=bound)
        proxy.cut()
        cut_at = time.monotonic()
        wait_until(lambda: serve.health()["database"] != "up", 15, "the outage to show")
        answers: dict[str, set[int]] = {}

        def note(name: str, status: int) -> None:
            answers.setdefault(name, set()).add(status)

        later = datetime.fromtimestamp(time.time() + 3600, UTC).isoformat()
        r = serve.post(
            "/events", {"target_kw": 5.0, "start": later, "duration_s": 900, "allow_partial": True}
        )
        note("POST /events", r.status_code)
        created = r.json().get("id") if r.status_code == 201 else None
        while time.monotonic() - cut_at < outage_s:
            for path in ("/fleet", "/events", f"/events/{event_id}"):
                note(f"GET {path.replace(event_id, '{id}')}", serve.get(path).status_code)
            h = serve.health()
            f.health_database, f.health_status = str(h["database"]), str(h["status"])
            f.buffered_peak = max(f.buffered_peak, int(h.get("buffered_readings", 0)))
            time.sleep(0.5)
        f.answers = {k: sorted(v) for k, v in answers.items()}

        proxy.restore()
        f.outage_s = time.monotonic() - cut_at
        t0 = time.monotonic()

        def flushed() -> bool:
            h = serve.health()
            return bool(h["database"] == "up" and h.get("buffered_readings", 1) == 0)

        wait_until(flushed, 60, "the backlog to be written", every=0.05)
        f.flush_s = time.monotonic() - t0

        f.published = sim.stop()
        received = "gridflock_telemetry_readings_total"

        def settled() -> bool:  # nothing in flight: the count stands still, all written
            m1 = serve.metrics()
            time.sleep(1.5)
            m2 = serve.metrics()
            return bool(
                metric(m1, received, outcome="applied") == metric(m2, received, outcome="applied")
                and flushed()
            )

        wait_until(settled, 30, "the last readings to be written")
        f.dropped_by_service = int(serve.health().get("dropped_readings", 0))
        if serve.terminate() != 0:
            raise ScenarioError(f"gridflock serve did not stop cleanly: {serve.log}")
        f.stored = int(schema.scalar(count))
        f.lost = f.published - f.stored
        if created is not None:
            f.event_created_during_outage_stored = (
                schema.scalar("SELECT count(*) FROM {s}.events WHERE id = :e", e=created) == 1
            )
        f.commands_recorded = int(
            schema.scalar("SELECT count(*) FROM {s}.commands WHERE event_id = :e", e=event_id)
        )
        return f
    raise AssertionError("unreachable")
