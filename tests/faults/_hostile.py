"""Scenario: a hostile gateway next to well-behaved ones, on the broker Gridflock configures.

The broker runs the generated configuration (one account per gateway, ACLs); the
well-behaved gateways are ``gridflock sim gateways`` with one connection each, logged in
as themselves. One gateway of the fleet is hostile instead (a plain MQTT client with its
own valid account). It tries, in turn:

- to join the service's shared telemetry subscription (``$share/gridflock/...``), which
  would take a share of every gateway's telemetry away from the service;
- to acknowledge other gateways' commands (rejecting them) on its own ack topic;
- one oversize message (10,000 readings with unknown 256-character ids, ~3 MB);
- a reading stamped 290 s in the future, then a present one;
- a flood of messages far above its rate limit.

Afterwards the well-behaved gateways' readings are counted in the store against what
they published, their command records compared with what they acknowledged, and the
broker's log tells how often the service had to connect.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tests._net import Broker

from gridflock.gateways.mqtt.link import GatewayLimits

from ._harness import (
    HOST,
    SERVICE_USER,
    PgSchema,
    ScenarioError,
    Serve,
    Sim,
    fleet,
    metric,
    post_event,
    provision,
    wait_until,
)

PASSWORD = "fault-suite-secret"
FLOOD_MESSAGES = 1_000


@dataclass
class HostileFigures:
    """What a hostile gateway achieved against the others (ideally nothing)."""

    devices: int
    good_gateways: int
    hijack_granted: bool
    """Whether the broker let it subscribe to the service's shared subscription."""
    telemetry_seen_by_hostile: int
    """Other gateways' telemetry messages it received."""
    forged_acks: int
    good_commands_changed: int
    """Well-behaved gateways' command records the forged acks changed."""
    oversize_bytes: int
    future_reading_froze_device: bool
    """A present reading after a future-stamped one was not applied."""
    flood_sent: int
    rate_limited: float
    """Messages the service refused as above the rate limit (``/metrics``)."""
    flood_allowed: float
    """The most flood messages the rate limit lets through in the time they can have taken
    to arrive (from the first one sent to the last figures read): a full burst plus the
    average rate over that time. Bounds what was accepted on a machine of any speed."""
    good_published: int
    good_stored: int
    good_lost: int
    service_connections: int
    """How many times the service connected to the broker (1: never dropped)."""
    mqtt_at_end: str
    rejected: dict[str, float] = field(default_factory=dict)
    """``gridflock_telemetry_rejected_total`` by reason at the end."""


class HostileClient:
    """A gateway's MQTT client (paho, its own thread) that records what it receives."""

    def __init__(self, port: int, gateway: str, password: str) -> None:
        import paho.mqtt.client as paho

        self.gateway = gateway
        self.messages: list[tuple[str, bytes]] = []
        self.granted: dict[str, bool] = {}
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._subs: dict[int, list[str]] = {}
        self._subacked = threading.Event()
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=f"{gateway}-{uuid.uuid4().hex[:6]}"
        )
        self.client.username_pw_set(gateway, password)
        self.client.on_connect = lambda c, u, f, rc, p: self._connected.set()
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.connect(HOST, port, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(10):
            self.close()
            raise ScenarioError(f"the hostile gateway {gateway} could not connect")

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        for topic, code in zip(self._subs.get(mid, []), codes, strict=False):
            self.granted[topic] = not code.is_failure
        self._subacked.set()

    def subscribe(self, topics: list[str]) -> dict[str, bool]:
        """Subscribe; which topics the broker granted."""
        self._subacked.clear()
        _, mid = self.client.subscribe([(t, 0) for t in topics])
        self._subs[mid] = topics
        if not self._subacked.wait(10):
            raise ScenarioError(f"no SUBACK for {topics}")
        return {t: self.granted.get(t, False) for t in topics}

    def publish(self, topic: str, payload: bytes | str, qos: int = 1) -> None:
        """Publish (QoS 1 waits for the broker's PUBACK)."""
        info = self.client.publish(topic, payload, qos=qos)
        if qos:
            info.wait_for_publish(10)

    def received_on(self, suffix: str) -> list[tuple[str, bytes]]:
        """Messages received on topics ending with ``suffix``."""
        with self._lock:
            return [(t, p) for t, p in self.messages if t.endswith(suffix)]

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self.client.loop_stop()


def flood_allowance(span_s: float) -> float:
    """Messages one gateway may get accepted within ``span_s`` under the default limits."""
    limits = GatewayLimits()  # the service runs with the defaults (Settings agrees)
    return limits.burst_s * limits.messages_per_s + limits.messages_per_s * span_s + 1


def _eventually(cond: Any, timeout: float, every: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(every)
    return bool(cond())


def _telemetry(gateway: str, readings: list[dict[str, Any]]) -> bytes:
    return json.dumps({"v": 1, "gateway": gateway, "readings": readings}).encode()


def hostile_gateway(workdir: Path, homes: int = 20, seed: int = 13) -> HostileFigures:
    """Run the attacks above against a service and well-behaved simulated gateways."""
    from gridflock.fleet.files import write_fleet

    spec: Any = fleet(homes, seed)
    dev = spec.all_devices()
    hostile = next(g for g in dev["gateway_id"] if g in set(spec.sites["id"]))
    h_devices = dev["id"][dev["gateway_id"] == hostile].astype(str).tolist()
    good = replace(
        spec,
        devices={k: df[df["gateway_id"] != hostile] for k, df in spec.devices.items()},
    )
    n_good = good.n_devices
    write_fleet(good, workdir / "good.yaml")
    gateways = sorted(set(dev["gateway_id"].astype(str)))
    with contextlib.ExitStack() as stack:
        schema = PgSchema()
        stack.callback(schema.drop)
        key = provision(schema, spec)
        broker = Broker(workdir / "broker", accounts={g: [] for g in gateways}, password=PASSWORD)
        broker.start()
        stack.callback(broker.stop)
        serve = Serve(
            workdir, key, database_url=schema.url, mqtt_url=broker.url, mqtt_password=PASSWORD
        )
        stack.callback(serve.cleanup)
        serve.start()
        serve.wait_answering()
        wait_until(lambda: serve.health()["mqtt"] == "connected", 15, "the service on MQTT")
        sim = Sim(
            workdir,
            broker.url,
            "--fleet",
            str(workdir / "good.yaml"),
            "--connections",
            "0",
            password=PASSWORD,
        )
        stack.callback(sim.kill)
        wait_until(
            lambda: serve.json("/fleet")["devices_online"] == n_good,
            30 + n_good / 50,
            f"the {n_good} well-behaved devices online",
            every=0.25,
        )

        h = HostileClient(broker.port, hostile, PASSWORD)
        stack.callback(h.close)
        own = [f"gf/v1/{hostile}/ack", f"gf/v1/{hostile}/cmd"]
        hijack = "$share/gridflock/gf/v1/+/telemetry"
        granted = h.subscribe([hijack, *own])
        h.publish(
            f"gf/v1/{hostile}/telemetry",
            _telemetry(hostile, [{"device": d, "ts": time.time(), "p_kw": 0.5} for d in h_devices]),
        )

        # the well-behaved gateways' commands, once they have acknowledged them
        event_id, _ = post_event(serve, 0.3)
        acked = (
            "SELECT c.command_id, c.device_id, c.seq, c.status, c.reason, c.acked_at "
            "FROM {s}.commands c JOIN {s}.devices d ON d.id = c.device_id "
            "WHERE c.event_id = :e AND d.gateway_id <> :h AND c.status = 'accepted'"
        )
        wait_until(
            lambda: len(schema.rows(acked, e=event_id, h=hostile)) >= 3,
            30,
            "the well-behaved gateways' acks recorded",
            every=0.5,
        )
        rows = schema.rows(acked, e=event_id, h=hostile)[:200]
        before = {r[0]: tuple(r[3:]) for r in rows}
        forged = [
            {
                "id": r[0],
                "device": r[1],
                "seq": r[2],
                "status": "rejected",
                "reason": "device_error",
            }
            for r in rows
        ]
        h.publish(
            f"gf/v1/{hostile}/ack", json.dumps({"v": 1, "type": "command_ack", "acks": forged})
        )

        now = time.time()
        big = _telemetry(
            hostile,
            [{"device": f"{i:06d}" + "x" * 250, "ts": now, "p_kw": 1.0} for i in range(10_000)],
        )
        h.publish(f"gf/v1/{hostile}/telemetry", big)

        target = h_devices[0]
        h.publish(
            f"gf/v1/{hostile}/telemetry",
            _telemetry(hostile, [{"device": target, "ts": time.time() + 290, "p_kw": 9.0}]),
        )
        time.sleep(1.2)  # the next control cycle takes it
        h.publish(
            f"gf/v1/{hostile}/telemetry",
            _telemetry(hostile, [{"device": target, "ts": time.time(), "p_kw": 1.5}]),
        )
        present = _eventually(lambda: serve.json(f"/devices/{target}").get("p_kw") == 1.5, 10)

        flood_t0 = time.monotonic()
        for i in range(FLOOD_MESSAGES):
            h.publish(
                f"gf/v1/{hostile}/telemetry",
                _telemetry(
                    hostile, [{"device": target, "ts": time.time(), "p_kw": 0.1 + i * 1e-4}]
                ),
                qos=0,
            )
        limited = "gridflock_telemetry_rejected_total"
        _eventually(lambda: metric(serve.metrics(), limited, reason="rate_limited") > 0, 10)

        published = sim.stop()
        applied = "gridflock_telemetry_readings_total"

        def settled() -> bool:
            m1 = serve.metrics()
            time.sleep(1.5)
            m2 = serve.metrics()
            h_ = serve.health()
            return bool(
                metric(m1, applied, outcome="applied") == metric(m2, applied, outcome="applied")
                and h_.get("buffered_readings", 1) == 0
            )

        wait_until(settled, 30, "the last readings to be written")
        m = serve.metrics()
        flood_span_s = time.monotonic() - flood_t0  # every flood message has arrived by now
        rejected = {
            r: metric(m, limited, reason=r)
            for r in (
                "too_large",
                "rate_limited",
                "ts_in_future",
                "unknown_device",
                "protocol_error",
            )
        }
        mqtt_end = str(serve.health()["mqtt"])
        if serve.terminate() != 0:
            raise ScenarioError(f"gridflock serve did not stop cleanly: {serve.log}")
        stored = int(
            schema.scalar(
                "SELECT count(*) FROM {s}.telemetry WHERE NOT (device_id = ANY(:h))", h=h_devices
            )
        )
        after = {
            r[0]: tuple(r[1:])
            for r in schema.rows(
                "SELECT command_id, status, reason, acked_at FROM {s}.commands "
                "WHERE command_id = ANY(:ids)",
                ids=list(before),
            )
        }
        return HostileFigures(
            devices=spec.n_devices,
            good_gateways=len(gateways) - 1,
            hijack_granted=granted[hijack],
            telemetry_seen_by_hostile=len(
                [t for t, _ in h.received_on("/telemetry") if t != f"gf/v1/{hostile}/telemetry"]
            ),
            forged_acks=len(forged),
            good_commands_changed=sum(1 for c, v in before.items() if after.get(c) != v),
            oversize_bytes=len(big),
            future_reading_froze_device=not present,
            flood_sent=FLOOD_MESSAGES,
            rate_limited=rejected["rate_limited"],
            flood_allowed=flood_allowance(flood_span_s),
            good_published=published,
            good_stored=stored,
            good_lost=published - stored,
            service_connections=broker.connections_of(SERVICE_USER),
            mqtt_at_end=mqtt_end,
            rejected=rejected,
        )
    raise AssertionError("unreachable")
