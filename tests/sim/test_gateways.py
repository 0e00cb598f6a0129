"""Simulated gateways against the real local Mosquitto at 127.0.0.1:1883.

The broker is shared, so every run prefixes its device and gateway ids with a unique tag
and listens only to its own gateways; retained statuses are cleared at the end. Without
the broker these tests fail (they never skip): start it with
``mosquitto -d -c /etc/mosquitto/mosquitto.conf``.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import paho.mqtt.client as paho
import pytest

from gridflock.domain import FleetSpec
from gridflock.domain.messages import CommandBatch
from gridflock.fleet.generate import generate_fleet
from gridflock.gateways.mqtt import (
    decode_ack,
    decode_status,
    decode_telemetry,
    encode_commands,
    encode_telemetry,
)
from gridflock.gateways.mqtt.protocol import CommandAcks, cmd_topic, gateway_of, status_topic
from gridflock.sim.gateways import (
    BrokerUnreachableError,
    SimulatedGateways,
    mask_url,
    parse_broker_url,
)
from gridflock.sim.imperfections import Imperfections

HOST, PORT = "127.0.0.1", 1883
URL = f"mqtt://{HOST}:{PORT}"


def _require_broker() -> None:
    try:
        socket.create_connection((HOST, PORT), timeout=2).close()
    except OSError as e:
        pytest.fail(
            f"no MQTT broker at {HOST}:{PORT} ({e}); start it with "
            "`mosquitto -d -c /etc/mosquitto/mosquitto.conf`"
        )


def _prefixed(spec: FleetSpec, tag: str) -> FleetSpec:
    """The fleet with ``tag`` before every device and gateway id (unique on a shared broker)."""
    devices = {}
    for kind, df in spec.devices.items():
        df = df.copy()
        df["id"] = tag + df["id"].astype(str)
        df["gateway_id"] = tag + df["gateway_id"].astype(str)
        devices[kind] = df
    return replace(spec, devices=devices)


class Listener:
    """A paho client recording the messages of our gateways (thread-safe)."""

    def __init__(self, tag: str, topics: list[str]) -> None:
        self.tag = tag
        self.lock = threading.Lock()
        self.msgs: list[tuple[str, bytes, bool, float]] = []
        self.subscribed = threading.Event()
        self.c = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=f"test-{uuid.uuid4().hex[:10]}",
            protocol=paho.MQTTv5,
        )
        self.c.on_message = self._on_message
        self.c.on_subscribe = lambda *_a: self.subscribed.set()
        self.c.connect(HOST, PORT, keepalive=10)
        self.c.loop_start()
        self.c.subscribe([(t, 1) for t in topics])
        assert self.subscribed.wait(3), "no SUBACK"

    def _on_message(self, _c: object, _u: object, m: paho.MQTTMessage) -> None:
        g = gateway_of(m.topic)
        if g is not None and g.startswith(self.tag):
            with self.lock:
                self.msgs.append((m.topic, bytes(m.payload), bool(m.retain), time.time()))

    def take(self, suffix: str) -> list[tuple[str, bytes, bool, float]]:
        with self.lock:
            return [m for m in self.msgs if m[0].endswith(suffix)]

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(3)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


async def _until(what: str, check: Callable[[], object], timeout: float = 6.0) -> object:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = check()
        if got:
            return got
        await asyncio.sleep(0.05)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def test_parse_broker_url() -> None:
    assert parse_broker_url("mqtt://127.0.0.1:1883") == ("127.0.0.1", 1883, False, None, None)
    assert parse_broker_url("mqtts://u:p%40w@broker") == ("broker", 8883, True, "u", "p@w")
    assert parse_broker_url("localhost") == ("localhost", 1883, False, None, None)
    with pytest.raises(ValueError, match="mqtt://"):
        parse_broker_url("http://x")


def test_unreachable_broker_is_a_clear_error() -> None:
    with socket.socket() as s:  # a free port nobody listens on
        s.bind((HOST, 0))
        port = s.getsockname()[1]
    sim = SimulatedGateways(generate_fleet(3, 1), f"mqtt://{HOST}:{port}", step_s=1.0)
    with pytest.raises(BrokerUnreachableError, match="cannot reach the MQTT broker"):
        asyncio.run(sim.run())


def test_the_broker_password_is_never_printed() -> None:
    """8.11: neither the simulator's messages nor ``gridflock sim gateways`` show it."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        port = s.getsockname()[1]
    url = f"mqtt://gw-user:top-secret-pw@{HOST}:{port}"
    assert mask_url(url) == f"mqtt://gw-user:********@{HOST}:{port}"
    assert mask_url(f"{HOST}:{port}") == f"{HOST}:{port}"
    sim = SimulatedGateways(generate_fleet(2, 1), url, step_s=1.0)
    with pytest.raises(BrokerUnreachableError) as e:
        asyncio.run(sim.run())
    assert "top-secret-pw" not in str(e.value)
    with pytest.raises(ValueError, match="mqtt://") as e2:
        parse_broker_url("http://u:top-secret-pw@x")
    assert "top-secret-pw" not in str(e2.value)
    r = subprocess.run(
        [sys.executable, "-m", "gridflock", "sim", "gateways", "--homes", "2", "--mqtt", url],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )
    assert r.returncode != 0
    assert "cannot reach" in r.stdout + r.stderr
    assert "top-secret-pw" not in r.stdout + r.stderr
    assert "gw-user:********@" in r.stdout + r.stderr


def test_gateways_report_and_obey_commands() -> None:
    _require_broker()
    tag = f"t{uuid.uuid4().hex[:8]}-"
    spec = _prefixed(generate_fleet(20, 1), tag)
    devices = spec.all_devices()
    gw_of = dict(zip(devices["id"], devices["gateway_id"], strict=True))
    gateways = set(gw_of.values())
    sim = SimulatedGateways(
        spec, URL, step_s=1.0, connections=2, imperfections=Imperfections.ideal()
    )
    assert sim.n_connections == 2
    assert set(sim.gateways) == gateways
    lis = Listener(tag, ["gf/v1/+/telemetry", "gf/v1/+/ack", "gf/v1/+/status"])
    try:
        asyncio.run(_scenario(sim, lis, gw_of, gateways, tag))
    finally:
        lis.close()


async def _scenario(
    sim: SimulatedGateways,
    lis: Listener,
    gw_of: dict[str, str],
    gateways: set[str],
    tag: str,
) -> None:
    task = asyncio.create_task(sim.run())
    try:
        # telemetry from every gateway, decodable, all readings valid
        def reporting() -> set[str]:
            got = {gateway_of(t) for t, *_ in lis.take("/telemetry")}
            return got if got >= gateways else set()

        await _until("telemetry from every gateway", reporting, 8.0)
        for topic, payload, _, _ in lis.take("/telemetry"):
            dec = decode_telemetry(topic, payload, time.time())
            assert dec.rejected == []
            assert dec.received == len(dec.batch) > 0
            assert all(gw_of[d] == dec.gateway for d in dec.batch.device_ids)
            assert abs(float(dec.batch.ts[0]) - time.time()) < 5  # wall-clock stamps

        # retained online statuses, seen by a client that subscribes afterwards (to our
        # gateways' topics only: other runs may have left many retained statuses)
        late = Listener(tag, [status_topic(g) for g in sorted(gateways)])
        try:

            def online() -> set[str]:
                with late.lock:
                    got = {
                        gateway_of(t)
                        for t, p, retained, _ in late.msgs
                        if retained and decode_status(p).status == "online"
                    }
                return got if got >= gateways else set()

            await _until("retained online statuses", online, 4.0)
        finally:
            late.close()

        # a command for one battery: accepted, and the battery follows it
        bat = next(d for d in gw_of if d.endswith("-bat"))
        g = gw_of[bat]
        last = _latest(lis, bat)
        soc = last["soc"]
        setpoint = -1.0 if soc < 0.8 else 1.0
        now = time.time()
        batch = CommandBatch(
            np.array([f"{tag}c1"], dtype=object),
            np.array([bat], dtype=object),
            np.array([setpoint]),
            np.array([now + 60.0]),
            np.array([5], dtype=np.int64),
            now,
            "ev-test",
        )
        lis.publish(cmd_topic(g), encode_commands(batch, gw_of)[g])
        acks = await _until("command ack", lambda: _acks(lis, g), 4.0)
        assert isinstance(acks, list)
        assert [(a.id, a.status, a.reason) for a in acks] == [(f"{tag}c1", "accepted", None)]
        sent = time.time()

        def follows() -> bool:
            r = _latest(lis, bat, after=sent + 1.0)
            return r is not None and abs(r["p_kw"] - setpoint) < 0.05

        await _until(f"{bat} at {setpoint} kW", follows, 5.0)

        # a replay (same seq) and an expired command: both rejected, in order
        now = time.time()
        batch = CommandBatch(
            np.array([f"{tag}c2", f"{tag}c3"], dtype=object),
            np.array([bat, bat], dtype=object),
            np.array([0.0, np.nan]),
            np.array([now + 60.0, now - 10.0]),
            np.array([5, 6], dtype=np.int64),
            now,
        )
        lis.publish(cmd_topic(g), encode_commands(batch, gw_of)[g])

        def second() -> list[object]:
            got = _acks(lis, g)
            return got if len(got) >= 3 else []

        acks = await _until("acks of the replay and the expired command", second, 4.0)
        assert isinstance(acks, list)
        assert [(a.id, a.status, a.reason) for a in acks[1:]] == [
            (f"{tag}c2", "rejected", "replayed"),
            (f"{tag}c3", "rejected", "expired"),
        ]
        assert sim.stats.commands_accepted == 1
        assert sim.stats.commands_rejected == 2
        assert sim.stats.messages > 0
        assert sim.stats.readings > 0
    finally:
        sim.stop()
        await asyncio.wait_for(task, 10.0)

    # clean stop: retained offline for every gateway; then clear them from the shared broker
    late = Listener(tag, [status_topic(g) for g in sorted(gateways)])
    try:

        def offline() -> set[str]:
            with late.lock:
                got = {
                    gateway_of(t)
                    for t, p, retained, _ in late.msgs
                    if retained and decode_status(p).status == "offline"
                }
            return got if got >= gateways else set()

        await _until("retained offline statuses", offline, 4.0)
        for gw in gateways:
            late.publish(status_topic(gw), b"", retain=True)
    finally:
        late.close()


def _latest(lis: Listener, device: str, after: float = 0.0) -> dict[str, float] | None:
    """The last reading of ``device`` received after ``after`` [wall clock]."""
    for _, payload, _, at in reversed(lis.take("/telemetry")):
        if at < after:
            break
        for r in json.loads(payload)["readings"]:
            if r["device"] == device:
                return dict(r)
    return None


def _acks(lis: Listener, gateway: str) -> list[object]:
    out: list[object] = []
    for topic, payload, _, _ in lis.take("/ack"):
        if gateway_of(topic) == gateway:
            msg = decode_ack(payload)
            # the ack topic carries both directions: a service on the shared broker may answer
            # the gateways' telemetry there too; the command acks are the gateway's
            if isinstance(msg, CommandAcks):
                out.extend(msg.acks)
    return out


def test_step_columns_cover_the_fleet() -> None:
    """One step gives every device a reading, in gateway order, that encodes and decodes."""
    spec = generate_fleet(30, 2)
    sim = SimulatedGateways(spec, URL, step_s=5.0, imperfections=Imperfections.ideal())
    sim.rt.twin.step()
    ts, p, _soc, _base, _extras = sim._columns(sim.rt.twin.receive())
    assert np.isfinite(p).all()
    assert np.isfinite(ts).all()
    payload = encode_telemetry(sim._gw_sorted[0], sim._ids_sorted[:1], ts[:1], p[:1])
    assert decode_telemetry(sim._topics[0], payload, float(ts[0])).received == 1
