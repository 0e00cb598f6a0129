"""Scenarios of processes dying: ``gridflock serve`` killed mid-event, the broker restarted.

Each scenario starts its own parts (a private broker, a fresh PostgreSQL schema,
``gridflock serve`` and ``gridflock sim gateways`` as subprocesses), runs the fault, and
returns its figures; the tests assert on them, ``benchmarks/bench_faults.py`` prints them
for larger fleets.
"""

from __future__ import annotations

import contextlib
import signal
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from tests._net import Broker

from ._harness import (
    Observer,
    PgSchema,
    ScenarioError,
    Serve,
    Sim,
    all_online,
    fleet,
    on_target,
    post_event,
    provision,
    rate,
    share,
    ts_of,
    wait_until,
)


def _missing(want: list[float], have: list[float], tol_s: float = 0.002) -> list[float]:
    """Times in ``want`` with none in ``have`` within ``tol_s`` (the API rounds times)."""
    return [t for t in want if not any(abs(t - h) <= tol_s for h in have)]


# ---------------------------------------------------------------------------------------
# 1. kill -9 of the service mid-event


@dataclass
class KillFigures:
    """What a SIGKILL of ``gridflock serve`` mid-event cost, and how fast it came back."""

    devices: int
    cold_start_s: float
    """From starting the first process to its API answering [s] (the machine's pace)."""
    cold_start_cpu_s: float
    """CPU time the first process used until it answered [s] (independent of the load)."""
    restart_s: float
    """From starting the new process to its API answering [s]."""
    restart_cpu_s: float
    """CPU time the new process used until it answered [s]."""
    back_on_target_s: float
    """From starting the new process to delivering the event's target again [s]."""
    event_status_after: str
    samples_stored_before: int
    samples_lost: int
    """Stored samples missing from the event's series after the restart."""
    samples_only_in_memory: int
    """Samples shown by the API just before the kill but not yet written (at risk)."""
    samples_after_restart: int
    commands_before: int
    commands_lost: int
    commands_changed: int
    """Commands whose recorded acknowledgement changed (a verdict is final)."""
    commands_after_restart: int
    telemetry_rows_before: int
    telemetry_rows_lost: int
    """Rows stored at the kill that are gone after the restart (matched by device and ts)."""


def kill_mid_event(workdir: Path, homes: int = 20, seed: int = 3) -> KillFigures:
    """SIGKILL ``gridflock serve`` while an event delivers; start it again on the same port.

    A dashboard's keep-alive connection is open at the kill, so the old port is left in
    TIME-WAIT as it is in the field; the new process must still start at once.
    """
    spec = fleet(homes, seed)
    n = spec.n_devices  # type: ignore[attr-defined]
    with contextlib.ExitStack() as stack:
        schema = PgSchema()
        stack.callback(schema.drop)
        key = provision(schema, spec)
        broker = Broker(workdir / "broker")
        broker.start()
        stack.callback(broker.stop)
        # the gateways run first, so the cold start competes with them as the restart will
        sim = Sim(
            workdir, broker.url, "--homes", str(homes), "--seed", str(seed), "--connections", "2"
        )
        stack.callback(sim.kill)
        wait_until(sim.publishing, 30 + n / 100, "the simulated gateways to publish")
        serve = Serve(workdir, key, database_url=schema.url, mqtt_url=broker.url)
        stack.callback(serve.cleanup)
        serve.start()
        cold_start_s = serve.wait_answering()
        cold_cpu_s = serve.answer_cpu_s
        wait_until(lambda: serve.health()["mqtt"] == "connected", 15, "the service on MQTT")
        all_online(serve, n, 30 + n / 100)
        event_id, target = post_event(serve, 0.3)
        stored = "SELECT count(*) FROM {s}.event_samples WHERE event_id = :e"
        wait_until(lambda: schema.scalar(stored, e=event_id) >= 3, 15, "samples stored")

        keep_alive = httpx.Client(timeout=5)  # a dashboard's open connection at the kill
        keep_alive.get(serve.base + "/api/v1/health")
        shown = serve.json(f"/events/{event_id}/performance")
        serve.kill()
        killed_at = time.time()
        keep_alive.close()

        samples = {
            r[0]
            for r in schema.rows("SELECT ts FROM {s}.event_samples WHERE event_id = :e", e=event_id)
        }
        commands = dict(
            schema.rows(
                "SELECT command_id, status FROM {s}.commands WHERE event_id = :e", e=event_id
            )
        )
        rows_before = schema.scalar("SELECT count(*) FROM {s}.telemetry")
        schema.execute("CREATE TABLE {s}.fault_snapshot AS SELECT device_id, ts FROM {s}.telemetry")
        if schema.scalar("SELECT count(*) FROM {s}.events WHERE id = :e", e=event_id) != 1:
            raise ScenarioError(f"event {event_id} was acknowledged (201) but is not stored")
        in_memory = _missing([ts_of(p["ts"]) for p in shown], [t.timestamp() for t in samples])

        serve.start()  # same port, same database
        t0 = time.monotonic()
        restart_s = serve.wait_answering(30)
        restart_cpu_s = serve.answer_cpu_s
        wait_until(lambda: on_target(serve, event_id, target), 30, "on target again", 0.25)
        back_s = time.monotonic() - t0
        status = serve.json(f"/events/{event_id}")["status"]

        def series_after() -> list[float]:
            pts = serve.json(f"/events/{event_id}/performance")
            return [ts_of(p["ts"]) for p in pts]

        wait_until(lambda: sum(t > killed_at for t in series_after()) >= 2, 15, "new samples")
        series = series_after()
        new_cmds = "SELECT count(*) FROM {s}.commands WHERE event_id = :e AND issued_at > :t"
        after_dt = datetime.fromtimestamp(killed_at, UTC)
        wait_until(lambda: schema.scalar(new_cmds, e=event_id, t=after_dt) > 0, 15, "commands")
        serve.terminate()
        commands_after = dict(
            schema.rows(
                "SELECT command_id, status FROM {s}.commands WHERE event_id = :e", e=event_id
            )
        )
        rows_lost = schema.scalar(
            "SELECT count(*) FROM {s}.fault_snapshot b LEFT JOIN {s}.telemetry t "
            "ON t.device_id = b.device_id AND t.ts = b.ts WHERE t.device_id IS NULL"
        )
        sim.kill()
        return KillFigures(
            devices=n,
            cold_start_s=cold_start_s,
            cold_start_cpu_s=cold_cpu_s,
            restart_s=restart_s,
            restart_cpu_s=restart_cpu_s,
            back_on_target_s=back_s,
            event_status_after=status,
            samples_stored_before=len(samples),
            samples_lost=len(_missing([t.timestamp() for t in samples], series)),
            samples_only_in_memory=len(in_memory),
            samples_after_restart=sum(t > killed_at for t in series),
            commands_before=len(commands),
            commands_lost=len(commands.keys() - commands_after.keys()),
            commands_changed=sum(
                1
                for c, s in commands.items()
                if s in ("accepted", "rejected") and commands_after.get(c, s) != s
            ),
            commands_after_restart=schema.scalar(new_cmds, e=event_id, t=after_dt),
            telemetry_rows_before=rows_before,
            telemetry_rows_lost=rows_lost,
        )
    raise AssertionError("unreachable")


@dataclass
class AckFigures:
    """Whether an event answered 201 survives a SIGKILL right after the answer."""

    stored_after_kill: bool
    answered_after_restart: int
    """HTTP status of ``GET /events/{id}`` after the restart."""
    status_after_restart: str | None


def kill_right_after_201(workdir: Path, homes: int = 5, seed: int = 3) -> AckFigures:
    """POST an event for later, SIGKILL the service the moment it answers 201, restart it.

    Measured by ``benchmarks/bench_faults.py`` (``ack``); not yet a test of the suite: the
    service answers 201 when the event is queued for the writer, before it is stored, so a
    crash within the write period (0.5 s here) loses an acknowledged event.
    """
    with contextlib.ExitStack() as stack:
        schema = PgSchema()
        stack.callback(schema.drop)
        key = provision(schema, fleet(homes, seed))
        serve = Serve(workdir, key, database_url=schema.url)  # no broker: no devices
        stack.callback(serve.cleanup)
        serve.start()
        serve.wait_answering()
        start = datetime.fromtimestamp(time.time() + 3600, UTC).isoformat()
        r = serve.post(
            "/events", {"target_kw": 5.0, "start": start, "duration_s": 900, "allow_partial": True}
        )
        assert serve.proc is not None
        serve.proc.send_signal(signal.SIGKILL)  # at once: no flush period can pass
        serve.proc.wait(timeout=10)
        if r.status_code != 201:
            raise ScenarioError(f"POST /events: {r.status_code} {r.text[:500]}")
        event_id = r.json()["id"]
        stored = schema.scalar("SELECT count(*) FROM {s}.events WHERE id = :e", e=event_id) == 1
        serve.start()
        serve.wait_answering()
        after = serve.get(f"/events/{event_id}")
        serve.terminate()
        return AckFigures(
            stored_after_kill=stored,
            answered_after_restart=after.status_code,
            status_after_restart=after.json().get("status") if after.status_code == 200 else None,
        )
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------------------
# 2. broker restart, then the service restarted


@dataclass
class BrokerRestartFigures:
    """Telemetry rates through a broker restart and a service restart after it."""

    devices: int
    expected_per_s: float
    """Readings the gateways send per second (every device once a second)."""
    rate_before: float
    """Readings applied per second before the broker restart."""
    rate_after_broker: float
    """... after the broker restart, the service reconnected."""
    rate_after_service: float
    """... after the service was restarted as well."""
    share_before: float
    """The service's share of the telemetry messages an independent subscriber received
    over the same window, before the broker restart (1.0: every one)."""
    share_after_broker: float
    """... after the broker restart, the service reconnected."""
    share_after_service: float
    """... after the service was restarted as well: the figure a dead session of the old
    process would halve."""
    observed_after_service: int
    """Telemetry messages the independent subscriber received in that last window."""
    broker_reconnect_s: float
    """From the broker listening again to the service's link connected [s]."""
    service_answer_s: float
    """From the new service process started to its API answering [s]."""
    service_recover_s: float
    """From the new service process started to telemetry at full rate [s]."""
    window_s: float = field(default=5.0)


def broker_then_service_restart(
    workdir: Path, homes: int = 20, seed: int = 5, window_s: float = 5.0
) -> BrokerRestartFigures:
    """Restart the broker (gracefully, with persistence) under a running service; then
    restart the service; compare the telemetry rate before and after both."""
    spec = fleet(homes, seed)
    n = spec.n_devices  # type: ignore[attr-defined]
    with contextlib.ExitStack() as stack:
        schema = PgSchema()
        stack.callback(schema.drop)
        key = provision(schema, spec)
        broker = Broker(workdir / "broker", persistence=True)
        broker.start()
        stack.callback(broker.stop)
        serve = Serve(workdir, key, database_url=schema.url, mqtt_url=broker.url)
        stack.callback(serve.cleanup)
        serve.start()
        serve.wait_answering()
        wait_until(lambda: serve.health()["mqtt"] == "connected", 15, "the service on MQTT")
        sim = Sim(
            workdir, broker.url, "--homes", str(homes), "--seed", str(seed), "--connections", "2"
        )
        stack.callback(sim.kill)
        observer = Observer(broker.url)
        stack.callback(observer.stop)
        all_online(serve, n, 30 + n / 100)
        before = rate(serve, window_s)
        share_before, _ = share(serve, observer, window_s)

        broker.stop()
        wait_until(lambda: serve.health()["mqtt"] == "disconnected", 15, "the link to notice")
        broker.start()
        t0 = time.monotonic()
        wait_until(lambda: serve.health()["mqtt"] == "connected", 30, "the link back", 0.05)
        reconnect_s = time.monotonic() - t0
        wait_until(lambda: rate(serve, 2.0) >= 0.75 * before, 30, "telemetry after the broker")
        after_broker = rate(serve, window_s)
        share_after_broker, _ = share(serve, observer, window_s)

        if serve.terminate() != 0:
            raise ScenarioError(f"gridflock serve did not stop cleanly: {serve.log}")
        serve.start()
        t0 = time.monotonic()
        answer_s = serve.wait_answering()
        wait_until(lambda: serve.health()["mqtt"] == "connected", 15, "the new service on MQTT")
        deadline = t0 + 20
        while rate(serve, 1.0) < 0.75 * before and time.monotonic() < deadline:
            pass
        recover_s = time.monotonic() - t0
        after_service = rate(serve, window_s)
        share_after_service, observed = share(serve, observer, window_s)
        serve.terminate()
        sim.kill()
        return BrokerRestartFigures(
            devices=n,
            expected_per_s=float(n),
            rate_before=before,
            rate_after_broker=after_broker,
            rate_after_service=after_service,
            share_before=share_before,
            share_after_broker=share_after_broker,
            share_after_service=share_after_service,
            observed_after_service=observed,
            broker_reconnect_s=reconnect_s,
            service_answer_s=answer_s,
            service_recover_s=recover_s,
            window_s=window_s,
        )
    raise AssertionError("unreachable")
