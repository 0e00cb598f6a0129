"""The service's MQTT link against a real Mosquitto with the generated configuration.

A hostile gateway in the service's share group, a broker restart followed by a service
restart, oversize messages, forged command acks, floods above the rate limit and future
readings: each next to a well-behaved gateway whose data must stay intact.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import paho.mqtt.client as paho
import pytest

from gridflock.domain.messages import CommandBatch
from gridflock.gateways.mqtt import (
    CommandAck,
    TelemetryAck,
    ack_topic,
    encode_command_ack,
    encode_telemetry,
    shared_telemetry_subscription,
    telemetry_topic,
)
from gridflock.gateways.mqtt.link import BrokerAddress, GatewayLimits, MqttLink
from gridflock.gateways.mqtt.protocol import (
    MAX_ACK_BYTES,
    MAX_ACK_REJECTIONS,
    MAX_CLOCK_SKEW_S,
    MAX_GATEWAY_MESSAGE_BYTES,
    MAX_ID_LEN,
)

HOST = "127.0.0.1"
SECRETS = {"A": "secret-of-A", "B": "secret-of-B", "H": "secret-of-H", "svc": "service-secret"}
PrivateBroker = Any  # conftest.PrivateBroker (conftest is not importable by name)
TIMEOUT = 10.0
#: Devices behind each gateway of the test brokers.
DEVICES = {f"{g}-d{i}": g for g in ("A", "B", "H") for i in range(5)}


class Gateway:
    """A gateway as paho sees it (its own thread): publishes and records its ack topic."""

    def __init__(self, port: int, user: str, subscribe: str | None = None, **tls: Any) -> None:
        self.user = user
        self.acks: list[dict[str, Any]] = []
        self.suback: list[Any] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._connected = threading.Event()
        self.connack: Any = None
        self.c = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=f"{user}-{uuid.uuid4().hex[:6]}",
            protocol=paho.MQTTv5,
        )
        self.c.username_pw_set(user, SECRETS[user])
        if tls:
            self.c.tls_set(**tls)
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.c.connect(HOST, port, keepalive=30)
        self.c.loop_start()
        assert self._connected.wait(TIMEOUT), f"{user}: no CONNACK"
        if self.connack.is_failure:
            return
        topics = [ack_topic(user)] + ([subscribe] if subscribe else [])
        self.c.subscribe([(t, 1) for t in topics])
        assert self._subscribed.wait(TIMEOUT), f"{user}: no SUBACK"

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        self.connack = rc
        self._connected.set()

    def _on_subscribe(self, _c: Any, _u: Any, _mid: Any, codes: Any, _p: Any) -> None:
        self.suback = list(codes)
        self._subscribed.set()

    def _on_message(self, _c: Any, _u: Any, m: Any) -> None:
        if m.topic == ack_topic(self.user):
            with self._lock:
                self.acks.append(json.loads(m.payload))

    def telemetry_acks(self) -> list[dict[str, Any]]:
        with self._lock:
            return [a for a in self.acks if a.get("type") == "telemetry_ack"]

    def publish(self, topic: str, payload: bytes) -> None:
        self.c.publish(topic, payload, qos=1).wait_for_publish(TIMEOUT)

    def report(self, device: str, ts: float, p_kw: float = 1.0) -> None:
        self.publish(
            telemetry_topic(self.user), encode_telemetry(self.user, [device], [ts], [p_kw])
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.c.disconnect()
        self.c.loop_stop()


async def until(cond: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    """Poll ``cond`` on the event loop until truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}", pytrace=False)
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def service(port: int, url: str | None = None, **kw: Any) -> AsyncIterator[MqttLink]:
    """A running :class:`MqttLink` as the service account, connected and subscribed."""
    link = MqttLink(
        BrokerAddress.parse(
            url or f"mqtt://{HOST}:{port}",
            "svc",
            SECRETS["svc"],
            **{k: kw.pop(k) for k in ("ca_file", "cert_file", "key_file") if k in kw},
        ),
        DEVICES,
        **kw,
    )
    task = asyncio.create_task(link.run())
    try:
        await until(lambda: link.connected, "the service to connect")
        await asyncio.sleep(0.2)  # its SUBSCRIBE is answered before anyone publishes
        yield link
    finally:
        link.stop()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await task


class Collector:
    """Everything a link received, polled like the control loop does."""

    def __init__(self, link: MqttLink) -> None:
        self.link = link
        self.devices: list[str] = []

    def poll(self) -> int:
        for b in self.link.receive():
            self.devices += b.device_ids.tolist()
        return len(self.devices)


def run(coro: Any) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))


# ---------------------------------------------------------------------------------------


def test_a_gateway_in_the_share_group_takes_no_telemetry(broker: int) -> None:
    """8.2: a gateway subscribing to the service's share group gets no share of it."""
    n = 200

    async def scenario() -> None:
        async with service(broker) as link:
            hostile = [
                await asyncio.to_thread(Gateway, broker, "H", shared_telemetry_subscription())
                for _ in range(3)
            ]
            honest = await asyncio.to_thread(Gateway, broker, "A")
            try:
                for h in hostile:
                    assert h.suback[-1].is_failure, "the broker let a gateway join the share"
                now = time.time()
                for i in range(n):
                    await asyncio.to_thread(honest.report, f"A-d{i % 5}", now + i * 1e-3)
                got = Collector(link)
                await until(lambda: got.poll() >= n, f"{n} readings")
                await asyncio.sleep(0.3)
                assert got.poll() == n  # 100 %, none twice
            finally:
                for g in [*hostile, honest]:
                    g.close()

    run(scenario())


def test_a_restarted_service_gets_all_telemetry_after_a_broker_restart(
    make_broker: Callable[..., PrivateBroker],
) -> None:
    """8.3: broker restart, then service restart: the full rate, not half of it."""
    b = make_broker(persistence=True)
    n = 40

    async def scenario() -> None:
        first = MqttLink(
            BrokerAddress.parse(f"mqtt://{HOST}:{b.port}", "svc", SECRETS["svc"]),
            DEVICES,
            client_id="gridflock-service-1",
        )
        task = asyncio.create_task(first.run())
        await until(lambda: first.connected, "the first service run to connect")
        await asyncio.to_thread(b.stop)  # saves sessions, subscriptions included
        await asyncio.to_thread(b.start)
        await until(lambda: first.counts["connects"] >= 2, "the service to reconnect", 20)
        await asyncio.sleep(0.3)
        # the service process dies (no DISCONNECT); its session stays on the broker
        first.client._connection._transport.abort()
        first.stop()
        task.cancel()
        async with service(b.port, client_id="gridflock-service-1") as second:
            gw = await asyncio.to_thread(Gateway, b.port, "A")
            try:
                now = time.time()
                for i in range(n):
                    await asyncio.to_thread(gw.report, f"A-d{i % 5}", now + i * 1e-3)
                got = Collector(second)
                await until(lambda: got.poll() >= n, f"all {n} readings")
            finally:
                gw.close()

    run(scenario())


def test_oversize_and_hostile_messages_get_bounded_answers(broker: int) -> None:
    """8.4: a 3 MB message is refused whole; 6,000 bad 256-character ids get a short ack."""

    async def scenario() -> None:
        async with service(broker) as link:
            h = await asyncio.to_thread(Gateway, broker, "H")
            a = await asyncio.to_thread(Gateway, broker, "A")
            try:
                now = time.time()
                big = encode_telemetry(
                    "H",
                    [f"x{i:0255d}" for i in range(10_000)],
                    np.full(10_000, now),
                    np.ones(10_000),
                )
                assert 3e6 < len(big) < 4e6
                await asyncio.to_thread(h.publish, telemetry_topic("H"), big)
                m = 6_000
                many = encode_telemetry(
                    "H", [f"y{i:0255d}" for i in range(m)], np.full(m, now), np.ones(m)
                )
                assert len(many) < MAX_GATEWAY_MESSAGE_BYTES
                await asyncio.to_thread(h.publish, telemetry_topic("H"), many)
                await asyncio.to_thread(a.report, "A-d0", now)
                got = Collector(link)
                await until(lambda: got.poll() >= 1 and len(h.telemetry_acks()) >= 2, "acks")
                too_big, summary = h.telemetry_acks()[:2]
                for ack in (too_big, summary):
                    TelemetryAck.model_validate(ack)
                    assert len(json.dumps(ack, separators=(",", ":"))) <= MAX_ACK_BYTES
                assert too_big["accepted"] == 0
                assert "more than the" in too_big["error"]
                assert len(too_big["error"]) < 200
                assert summary["received"] == m
                assert summary["rejected_total"] == m
                assert summary["reasons"] == {"unknown_device": m}
                assert len(summary["rejected"]) == MAX_ACK_REJECTIONS
                assert all(len(r["device"]) <= MAX_ID_LEN + 3 for r in summary["rejected"])
                assert got.devices == ["A-d0"]
                assert link.connected
                assert link.counts["connects"] == 1  # the broker never dropped the service
                assert link.counts["rejected:too_large"] == 1
            finally:
                h.close()
                a.close()

    run(scenario())


def _commands(devices: list[str], valid_until: float) -> CommandBatch:
    n = len(devices)
    return CommandBatch(
        np.array([f"c-{d}" for d in devices], dtype=object),
        np.array(devices, dtype=object),
        np.full(n, 1.0),
        np.full(n, valid_until),
        np.arange(1, n + 1),
        time.time(),
        "ev-1",
    )


def test_a_gateway_can_ack_only_its_own_commands(broker: int) -> None:
    """8.5: acks for another gateway's command ids are refused and counted."""

    async def scenario() -> None:
        async with service(broker) as link:
            a = await asyncio.to_thread(Gateway, broker, "A")
            h = await asyncio.to_thread(Gateway, broker, "H")
            try:
                link.send(_commands(["A-d0", "A-d1", "H-d0"], time.time() + 30))

                def ack(gw: str, cid: str, dev: str) -> bytes:
                    return encode_command_ack(
                        [CommandAck(id=cid, device=dev, seq=1, status="rejected", reason="x")]
                    )

                forged = [("c-A-d0", "A-d0"), ("c-A-d1", "H-d0"), ("c-nope", "H-d0")]
                for cid, dev in forged:
                    await asyncio.to_thread(h.publish, ack_topic("H"), ack("H", cid, dev))
                await asyncio.to_thread(a.publish, ack_topic("A"), ack("A", "c-A-d1", "A-d1"))
                taken: list[str] = []

                def poll() -> int:
                    taken.extend(x.id for m in link.take_acks() for x in m.acks)
                    return len(taken)

                await until(lambda: poll() >= 1, "A's own ack")
                await until(
                    lambda: (
                        sum(v for k, v in link.counts.items() if k.startswith("acks_refused")) >= 3
                    ),
                    "the forged acks to be refused",
                )
                poll()
                assert taken == ["c-A-d1"]
                assert link.counts["acks_refused:not_its_command"] == 2
                assert link.counts["acks_refused:unknown_command"] == 1
            finally:
                a.close()
                h.close()

    run(scenario())


def test_rate_limit_refuses_a_flood_and_spares_the_others(broker: int) -> None:
    """8.11: a gateway above its rate is refused with a reason; the others are untouched."""
    limits = GatewayLimits(messages_per_s=1.0, readings_per_s=100.0, burst_s=5.0)
    clock = [time.time()]  # frozen: no tokens come back during the test

    async def scenario() -> None:
        async with service(broker, limits=limits, clock=lambda: clock[0]) as link:
            h = await asyncio.to_thread(Gateway, broker, "H")
            a = await asyncio.to_thread(Gateway, broker, "A")
            try:
                now = clock[0]
                for i in range(30):
                    await asyncio.to_thread(h.report, f"H-d{i % 5}", now - i)
                for i in range(3):
                    await asyncio.to_thread(a.report, f"A-d{i}", now)
                got = Collector(link)
                await until(lambda: got.poll() >= 8, "5 of H's and 3 of A's readings")
                await until(lambda: h.telemetry_acks(), "H's rate-limit answer")
                await asyncio.sleep(0.3)
                got.poll()
                assert sorted(d for d in got.devices if d.startswith("A")) == [
                    "A-d0",
                    "A-d1",
                    "A-d2",
                ]
                assert sum(d.startswith("H") for d in got.devices) == 5  # its burst
                assert link.counts["rejected:rate_limited"] == 25
                (answer,) = h.telemetry_acks()  # one answer for the lot, not one each
                assert "rate limit: 25 message(s) refused" in answer["error"]
                assert not a.telemetry_acks()
            finally:
                h.close()
                a.close()

    run(scenario())


def test_a_flood_of_acks_counts_against_the_rate_limit(broker: int) -> None:
    """Command acks and statuses are messages too: a flood of them is cut at the limit."""
    limits = GatewayLimits(messages_per_s=1.0, readings_per_s=100.0, burst_s=5.0)
    clock = [time.time()]

    async def scenario() -> None:
        async with service(broker, limits=limits, clock=lambda: clock[0]) as link:
            h = await asyncio.to_thread(Gateway, broker, "H")
            try:
                forged = encode_command_ack(
                    [CommandAck(id="c-x", device="H-d0", seq=1, status="accepted")]
                )
                for _ in range(30):
                    await asyncio.to_thread(h.publish, ack_topic("H"), forged)
                await until(
                    lambda: (
                        link.counts["acks_refused:unknown_command"]
                        + link.counts["rejected:rate_limited"]
                        >= 30
                    ),
                    "every ack decoded or cut",
                )
                assert link.counts["acks_refused:unknown_command"] == 5  # the burst only
                assert link.counts["rejected:rate_limited"] == 25
                link.receive()  # the cycle answers the gateway once
                await until(lambda: h.telemetry_acks(), "the rate-limit answer")
                assert "25 message(s) refused" in h.telemetry_acks()[0]["error"]
            finally:
                h.close()

    run(scenario())


def test_future_and_stale_readings_are_refused_with_a_reason(broker: int) -> None:
    """8.11: readings beyond the clock-skew bound, or older than one taken, are reported."""

    async def scenario() -> None:
        async with service(broker) as link:
            a = await asyncio.to_thread(Gateway, broker, "A")
            try:
                now = time.time()
                body = encode_telemetry(
                    "A",
                    ["A-d0", "A-d1", "A-d2"],
                    [now + 290, now + MAX_CLOCK_SKEW_S / 2, now],
                    [9.0, 1.0, 1.0],
                )
                await asyncio.to_thread(a.publish, telemetry_topic("A"), body)
                got = Collector(link)
                await until(lambda: got.poll() >= 2 and a.telemetry_acks(), "readings and ack")
                assert sorted(got.devices) == ["A-d1", "A-d2"]
                (ack,) = a.telemetry_acks()
                assert ack["reasons"] == {"ts_in_future": 1}
                assert ack["rejected"][0]["index"] == 0
                assert "ahead of the service clock" in ack["rejected"][0]["message"]
                # A-d1 holds a reading 15 s ahead: an older one is stale, and said so
                late = encode_telemetry("A", ["A-d1", "A-d2"], [now + 1, now + 2], [2.0, 2.0])
                await asyncio.to_thread(a.publish, telemetry_topic("A"), late)
                await until(lambda: got.poll() >= 3 and len(a.telemetry_acks()) >= 2, "stale")
                assert got.devices[2:] == ["A-d2"]
                stale = a.telemetry_acks()[1]
                assert (stale["accepted"], stale["reasons"]) == (1, {"stale": 1})
                assert stale["rejected"][0]["device"] == "A-d1"
                assert "time order" in stale["rejected"][0]["message"]
            finally:
                a.close()

    run(scenario())


def test_commands_nobody_acknowledged_are_reported_expired(broker: int) -> None:
    """8.11: a silent gateway's commands are reported expired once their lifetime is over."""
    clock = [time.time()]

    async def scenario() -> None:
        async with service(broker, clock=lambda: clock[0], command_grace_s=5.0) as link:
            a = await asyncio.to_thread(Gateway, broker, "A")
            try:
                link.send(_commands(["A-d0", "B-d0"], clock[0] + 30))
                await asyncio.to_thread(
                    a.publish,
                    ack_topic("A"),
                    encode_command_ack(
                        [CommandAck(id="c-A-d0", device="A-d0", seq=1, status="accepted")]
                    ),
                )
                await until(lambda: link.take_acks(), "A's ack")
                clock[0] += 34
                assert link.take_expired() == []  # within the grace
                clock[0] += 2
                assert link.take_report().expired == ["c-B-d0"]  # B never answered
                assert link.take_report().expired == []  # reported once
            finally:
                a.close()

    run(scenario())


def test_a_deleted_gateway_can_no_longer_connect(
    make_broker: Callable[..., PrivateBroker],
) -> None:
    """8.11: regenerated without a gateway, the broker refuses its credentials."""
    b = make_broker()
    ok = Gateway(b.port, "B")
    assert not ok.connack.is_failure
    ok.close()
    b.stop()
    # regenerate as `gridflock broker acl` does after the gateway's record is deleted
    from gridflock.gateways.mqtt import GatewayCredential, hash_password, write_broker_config

    write_broker_config(
        b.paths.conf.parent,
        [GatewayCredential("A", hash_password(SECRETS["A"]), ["north"])],
        "svc",
        hash_password(SECRETS["svc"]),
        port=b.port,
        persistence=False,
        run_as_user="root",
    )
    b.start()
    gone = Gateway(b.port, "B")
    try:
        assert gone.connack.is_failure
    finally:
        gone.close()
    kept = Gateway(b.port, "A")
    kept.close()
    assert not kept.connack.is_failure


def test_the_service_takes_its_client_id_tls_and_limits_from_the_settings(tmp_path: Any) -> None:
    from gridflock.cli.service import _mqtt_link
    from gridflock.config import Settings
    from gridflock.fleet.generate import generate_fleet

    ca = tmp_path / "ca.crt"
    settings = Settings(
        mqtt_url="mqtts://broker.example:8883",
        mqtt_client_id="gridflock-ingest-2",
        mqtt_tls_ca_file=str(ca),
        gateway_max_messages_per_s=3,
    )
    link = _mqtt_link(settings, generate_fleet(2, 1))
    assert isinstance(link, MqttLink)
    assert link.client_id == "gridflock-ingest-2"
    assert link.broker.ca_file == str(ca)
    assert link.broker.tls
    assert link.limits is not None
    assert link.limits.messages_per_s == 3
    assert Settings().mqtt_client_id == "gridflock-service-1"  # stable by default
    with pytest.raises(ValueError, match="mqtt_client_id"):
        Settings(mqtt_client_id="has/slash")


def test_simulated_gateways_work_within_the_generated_acls(tmp_path: Any) -> None:
    """Each simulated gateway on its own account: reports, gets its commands, acks them."""
    import os
    import subprocess

    from gridflock.fleet.generate import generate_fleet
    from gridflock.gateways.mqtt import GatewayCredential, hash_password, write_broker_config
    from gridflock.sim.gateways import SimulatedGateways
    from gridflock.sim.imperfections import Imperfections

    with socket.socket() as s:
        s.bind((HOST, 0))
        port = s.getsockname()[1]
    spec = generate_fleet(4, 2)
    dev = spec.all_devices()
    gw_of = dict(zip(dev["id"].astype(str), dev["gateway_id"].astype(str), strict=True))
    shared = hash_password("gw-secret")  # one password for every simulated gateway
    paths = write_broker_config(
        tmp_path / "broker",
        [GatewayCredential(g, shared) for g in sorted(set(gw_of.values()))],
        "svc",
        hash_password(SECRETS["svc"]),
        port=port,
        persistence=False,
        run_as_user="root" if os.geteuid() == 0 else None,
    )
    log = (tmp_path / "mosquitto.log").open("wb")
    proc = subprocess.Popen(["mosquitto", "-c", str(paths.conf)], stdout=log, stderr=log)

    async def scenario() -> None:
        await until(lambda: _listening(port), "the broker")
        link = MqttLink(BrokerAddress.parse(f"mqtt://{HOST}:{port}", "svc", SECRETS["svc"]), gw_of)
        task = asyncio.create_task(link.run())
        sim = SimulatedGateways(
            spec,
            f"mqtt://{HOST}:{port}",
            step_s=1.0,
            connections=0,
            password="gw-secret",
            imperfections=Imperfections.ideal(),
        )
        sim_task = asyncio.create_task(sim.run())
        try:
            got = Collector(link)
            await until(lambda: got.poll() and set(got.devices) >= set(gw_of), "every device")
            assert not link.counts["protocol_errors"]
            battery = next(d for d in gw_of if d.endswith("-bat"))
            link.send(_commands([battery], time.time() + 30))
            acks: list[Any] = []
            await until(lambda: acks.extend(link.take_acks()) or acks, "the battery's ack")
            assert [(a.id, a.status) for m in acks for a in m.acks] == [
                (f"c-{battery}", "accepted")
            ]
            assert not any(k.startswith("acks_refused") for k in link.counts)
        finally:
            sim.stop()
            link.stop()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(10):
                    await asyncio.gather(sim_task, task)

    try:
        run(scenario())
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def _listening(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=0.2).close()
    except OSError:
        return False
    return True
