"""Scenarios of the control leader failing: kill -9 mid-event, and a deposed leader that lives on.

Real parts only: a private Mosquitto, a PostgreSQL schema, two ``gridflock serve --role
control`` processes (one leads, the other stands by warm on its own share of the whole
telemetry), ``gridflock serve --role ingest`` workers writing the telemetry, and
``gridflock sim gateways`` logging every command it receives (``--command-log``: time,
gateway, device, seq, epoch, verdict, valid_until). Shared by ``test_failover.py`` and
``benchmarks/bench_failover.py``.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
from tests._net import Broker

from ._harness import (
    HOST,
    PgSchema,
    ScenarioError,
    Serve,
    Sim,
    all_online,
    fleet,
    on_target,
    post_event,
    provision,
    wait_until,
)
from ._ingest import IngestProc

#: How long a process may take to answer after its start [s]: the cold start needs about
#: 2 s of CPU, but on this shared 2-core machine under a load of 20 it has taken 60 s.
START_S = 180


@dataclass(frozen=True)
class Received:
    """One line of the gateways' command log."""

    ts: float
    gateway: str
    device: str
    seq: int
    epoch: int
    kind: str
    status: str
    reason: str
    valid_until: float


def read_command_log(path: Path) -> list[Received]:
    """Every command and schedule the simulated gateways received, in order."""
    out = []
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        f = line.split()
        if len(f) != 9:
            continue  # a line cut by a kill
        out.append(
            Received(float(f[0]), f[1], f[2], int(f[3]), int(f[4]), f[5], f[6], f[7], float(f[8]))
        )
    return out


def control(workdir: Path, key: str, schema: PgSchema, broker: Broker, name: str) -> Serve:
    """A ``serve --role control`` process with a client id (and share group) of its own."""
    return Serve(
        workdir,
        key,
        name=name,
        role="control",
        database_url=schema.url,
        mqtt_url=broker.url,
        mqtt_client_id=f"gridflock-{name}",
    )


def leading(serve: Serve) -> bool:
    """Whether ``serve`` says it leads (False while it does not answer)."""
    try:
        return bool(serve.health().get("leading"))
    except Exception:
        return False


def _pair(
    stack: contextlib.ExitStack, workdir: Path, key: str, schema: PgSchema, broker: Broker
) -> tuple[Serve, Serve]:
    """Start two control processes together; (leader, standby) once one leads."""
    a = control(workdir, key, schema, broker, "control-a")
    b = control(workdir, key, schema, broker, "control-b")
    stack.callback(a.cleanup)
    stack.callback(b.cleanup)
    a.start()
    b.start()
    a.wait_answering(START_S)
    b.wait_answering(START_S)
    first = wait_until(
        lambda: a if leading(a) else b if leading(b) else None, 20, "one control process to lead"
    )
    other = b if first is a else a
    if leading(other):
        raise ScenarioError("both control processes say they lead")
    return first, other


# ---------------------------------------------------------------------------------------
# 1. kill -9 of the leader mid-event


@dataclass
class FailoverFigures:
    """What a SIGKILL of the control leader mid-event cost, and how fast the standby led."""

    devices: int
    ingest_workers: int
    epoch_before: int
    epoch_after: int
    takeover_s: float
    """From the kill to the standby saying it leads [s]."""
    no_control_s: float
    """From the kill to the first command of the new leader accepted by a gateway [s]."""
    back_on_target_s: float
    """From the kill to the event delivering its target again, as the new leader sees it [s]."""
    event_status_after: str
    commands_old_epoch: int
    commands_new_epoch: int
    duplicate_seq: int
    """(device, seq) pairs a gateway received more than once (must be none)."""
    replayed_or_refused: int
    """Commands the gateways refused (replayed, deposed, expired...)."""
    coverage_gaps: int
    """Devices whose old command expired before the new leader's first one arrived."""
    commands_stored_not_received: int
    """Commands the store holds for the event that no gateway received."""
    readings_published: int
    telemetry_rows: int
    telemetry_lost: int


def kill_leader_mid_event(
    workdir: Path, homes: int = 20, seed: int = 3, ingest: int = 1
) -> FailoverFigures:
    """SIGKILL the leader while an event delivers; the standby takes over and goes on."""
    spec = fleet(homes, seed)
    n = spec.n_devices  # type: ignore[attr-defined]
    with contextlib.ExitStack() as stack:
        schema = PgSchema()
        stack.callback(schema.drop)
        key = provision(schema, spec)
        broker = Broker(workdir / "broker")
        broker.start()
        stack.callback(broker.stop)
        workers = []
        for i in range(ingest):
            w = IngestProc(workdir / f"ingest{i}", i, database_url=schema.url, mqtt_url=broker.url)
            stack.callback(w.cleanup)
            w.start()
            workers.append(w)
        sim = Sim(
            workdir, broker.url, "--homes", str(homes), "--seed", str(seed), "--connections", "2"
        )
        stack.callback(sim.kill)
        leader, standby = _pair(stack, workdir, key, schema, broker)
        for w in workers:
            w.wait_answering(START_S)
        all_online(leader, n, 120)
        all_online(standby, n, 120)  # warm: it takes the whole telemetry too
        epoch_before = int(leader.health()["epoch"])
        event_id, target = post_event(leader, 0.3)
        wait_until(lambda: on_target(leader, event_id, target), 30, "on target", 0.25)

        leader.kill()
        killed_at = time.time()
        wait_until(lambda: leading(standby), 15, "the standby to lead", 0.05)
        takeover_s = time.time() - killed_at
        epoch_after = int(standby.health()["epoch"])

        def first_new() -> float | None:
            new = [
                r.ts
                for r in read_command_log(sim.command_log)
                if r.epoch == epoch_after and r.status == "accepted"
            ]
            return min(new) if new else None

        t_new = wait_until(first_new, 15, "a command of the new leader at a gateway", 0.05)
        no_control_s = t_new - killed_at
        wait_until(lambda: on_target(standby, event_id, target), 30, "on target again", 0.25)
        back_s = time.time() - killed_at
        status = standby.json(f"/events/{event_id}")["status"]
        time.sleep(2.0)  # a few more cycles of the new leader
        if standby.terminate() != 0:
            raise ScenarioError(f"the new leader did not stop cleanly: {standby.log}")
        time.sleep(1.0)  # its last commands reach the gateways
        published = sim.stop()

        def settled() -> int | None:
            rows = int(schema.scalar("SELECT count(*) FROM {s}.telemetry"))
            return rows if rows >= published else None

        with contextlib.suppress(ScenarioError):
            wait_until(settled, 15, "the ingest workers to write every reading", 0.25)
        rows = int(schema.scalar("SELECT count(*) FROM {s}.telemetry"))

        log = [r for r in read_command_log(sim.command_log) if r.kind == "command"]
        pairs = [(r.device, r.seq) for r in log]
        stored = {
            (str(d), int(s))
            for d, s in schema.rows(
                "SELECT device_id, seq FROM {s}.commands WHERE event_id = :e", e=event_id
            )
        }
        gaps = 0
        for dev in {r.device for r in log}:
            mine = [r for r in log if r.device == dev and r.status == "accepted"]
            old = [r for r in mine if r.epoch == epoch_before and r.ts <= killed_at]
            new = [r for r in mine if r.epoch == epoch_after]
            if old and new and min(x.ts for x in new) > max(x.valid_until for x in old):
                gaps += 1
        return FailoverFigures(
            devices=n,
            ingest_workers=ingest,
            epoch_before=epoch_before,
            epoch_after=epoch_after,
            takeover_s=takeover_s,
            no_control_s=no_control_s,
            back_on_target_s=back_s,
            event_status_after=status,
            commands_old_epoch=sum(r.epoch == epoch_before for r in log),
            commands_new_epoch=sum(r.epoch == epoch_after for r in log),
            duplicate_seq=len(pairs) - len(set(pairs)),
            replayed_or_refused=sum(r.status != "accepted" for r in log),
            coverage_gaps=gaps,
            commands_stored_not_received=len(stored - set(pairs)),
            readings_published=published,
            telemetry_rows=rows,
            telemetry_lost=max(published - rows, 0),
        )
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------------------
# 2. a deposed leader that lives on


@dataclass
class DeposedFigures:
    """A leader paused, its lock session cut, then resumed: what the gateways did."""

    epoch_deposed: int
    epoch_new: int
    takeover_s: float
    """From the lock session cut to the standby leading [s]."""
    deposed_stood_down_s: float
    """From resuming the paused process to it saying it no longer leads [s]."""
    old_epoch_accepted_after_takeover: int
    """Commands of the deposed epoch a gateway accepted after the new epoch reached it."""
    old_epoch_refused: int
    """Commands of the deposed epoch refused with ``deposed_leader``."""
    in_flight_verdict: str
    """Verdict on a command of the deposed epoch delivered late (fresh seq, still valid)."""
    fenced_writes: int
    """Writes the deposed process tried and the database refused."""


def _pg_terminate_lock_session(schema: PgSchema, pid: int) -> int:
    """Cut the leader's lock session (as a network partition from PostgreSQL would)."""
    return len(
        schema.rows(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE :a",
            a=f"gridflock-leader {pid}@%",
        )
    )


def _late_command(port: int, gateway: str, device: str, epoch: int) -> int:
    """Deliver a command of ``epoch`` as a late in-flight message would arrive; its seq."""
    seq = int(time.time() * 1000) + 10_000_000  # above anything issued so far
    msg = {
        "v": 1,
        "issued_at": time.time(),
        "epoch": epoch,
        "commands": [
            {
                "id": f"late-{seq}",
                "device": device,
                "seq": seq,
                "p_setpoint_kw": 0.0,
                "valid_until": time.time() + 30,
                "event": None,
            }
        ],
    }
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="gf-test-late")
    client.connect(HOST, port, keepalive=10)
    client.loop_start()
    try:
        client.publish(f"gf/v1/{gateway}/cmd", json.dumps(msg).encode(), qos=1).wait_for_publish(5)
    finally:
        client.loop_stop()
        client.disconnect()
    return seq


def deposed_leader(workdir: Path, homes: int = 10, seed: int = 4) -> DeposedFigures:
    """Pause the leader (SIGSTOP), cut its lock session, let the standby lead, resume it."""
    spec = fleet(homes, seed)
    n = spec.n_devices  # type: ignore[attr-defined]
    with contextlib.ExitStack() as stack:
        schema = PgSchema()
        stack.callback(schema.drop)
        key = provision(schema, spec)
        broker = Broker(workdir / "broker")
        broker.start()
        stack.callback(broker.stop)
        sim = Sim(
            workdir, broker.url, "--homes", str(homes), "--seed", str(seed), "--connections", "1"
        )
        stack.callback(sim.kill)
        old, new = _pair(stack, workdir, key, schema, broker)
        all_online(old, n, 120)
        epoch_deposed = int(old.health()["epoch"])
        event_id, target = post_event(old, 0.3)
        wait_until(lambda: on_target(old, event_id, target), 30, "on target", 0.25)

        assert old.proc is not None
        old.proc.send_signal(signal.SIGSTOP)  # a long pause: GC, swap, a frozen VM
        stack.callback(
            lambda: old.proc and old.proc.poll() is None and old.proc.send_signal(signal.SIGCONT)
        )
        if _pg_terminate_lock_session(schema, old.proc.pid) != 1:
            raise ScenarioError("the paused leader's lock session was not found")
        cut_at = time.time()
        wait_until(lambda: leading(new), 15, "the standby to lead", 0.05)
        takeover_s = time.time() - cut_at
        epoch_new = int(new.health()["epoch"])
        log_new = lambda: [  # noqa: E731
            r for r in read_command_log(sim.command_log) if r.epoch == epoch_new
        ]
        wait_until(log_new, 15, "the new leader's commands at the gateways", 0.05)
        first_new = min(r.ts for r in log_new())

        old.proc.send_signal(signal.SIGCONT)
        resumed_at = time.time()
        wait_until(lambda: not leading(old), 15, "the deposed process to stand down", 0.05)
        stood_down_s = time.time() - resumed_at

        devices = spec.all_devices()  # type: ignore[attr-defined]
        gw, dev = str(devices["gateway_id"].iloc[0]), str(devices["id"].iloc[0])
        seq = _late_command(broker.port, gw, dev, epoch_deposed)

        def verdict() -> str | None:
            for r in read_command_log(sim.command_log):
                if r.seq == seq:
                    return f"{r.status}:{r.reason}"
            return None

        late = wait_until(verdict, 10, "the gateway's verdict on the late command", 0.05)
        time.sleep(1.0)
        fenced = int(old.health().get("fenced_writes", 0))
        log = read_command_log(sim.command_log)
        return DeposedFigures(
            epoch_deposed=epoch_deposed,
            epoch_new=epoch_new,
            takeover_s=takeover_s,
            deposed_stood_down_s=stood_down_s,
            old_epoch_accepted_after_takeover=sum(
                r.epoch == epoch_deposed and r.status == "accepted" and r.ts > first_new
                for r in log
            ),
            old_epoch_refused=sum(
                r.epoch == epoch_deposed and r.reason == "deposed_leader" for r in log
            ),
            in_flight_verdict=late,
            fenced_writes=fenced,
        )
    raise AssertionError("unreachable")
