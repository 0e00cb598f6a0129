"""The service's side of MQTT: telemetry in, commands out, acknowledgements both ways.

One gmqtt connection (asyncio, fast) as the service account, speaking MQTT 3.1.1: under
MQTT 5 Mosquitto grants a client only 20 QoS 1 messages in flight (``receive_maximum``),
too few for a burst of commands to thousands of gateways; 3.1.1 has no such window, and
Mosquitto serves ``$share`` subscriptions to 3.1.1 clients all the same. Telemetry comes through a
shared subscription, so several service processes can split the load; each message is
only queued as it arrives (with its arrival time), and once per control cycle
:meth:`MqttLink.receive` decodes and screens everything queued in one vectorised pass
(bad readings are answered on the gateway's ack topic with the reason, the valid rest
kept) into one batch. Commands are grouped by gateway into one message each (QoS 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

import numpy as np
from gmqtt import Client, Subscription
from gmqtt.mqtt.constants import MQTTv311

from gridflock.domain.messages import CommandBatch, TelemetryBatch
from gridflock.domain.ports import CommandAck, GatewayStatus, LinkReport
from gridflock.domain.spec import FleetSpec
from gridflock.gateways.mqtt.codec import (
    CommandAcks,
    ProtocolError,
    Rejection,
    decode_ack,
    decode_status,
    decode_telemetry_many,
    encode_commands,
    encode_telemetry_ack,
)
from gridflock.gateways.mqtt.protocol import ack_topic, gateway_of, shared_telemetry_subscription

__all__ = ["BrokerAddress", "GatewayStatus", "MqttLink"]

log = logging.getLogger("gridflock.mqtt")


@dataclass(frozen=True)
class BrokerAddress:
    """Where the broker is and how to log in."""

    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None

    @staticmethod
    def parse(url: str, username: str | None = None, password: str | None = None) -> BrokerAddress:
        """``mqtt://[user[:pass]@]host[:port]`` or ``mqtts://...`` (TLS, default port 8883)."""
        u = urlparse(url)
        if u.scheme not in ("mqtt", "mqtts") or not u.hostname:
            raise ValueError(
                f"invalid broker URL {url!r}: use mqtt://host:1883 or mqtts://host:8883"
            )
        tls = u.scheme == "mqtts"
        return BrokerAddress(
            u.hostname,
            u.port or (8883 if tls else 1883),
            tls,
            unquote(u.username) if u.username else username,
            unquote(u.password) if u.password else password,
        )


class MqttLink:
    """Implements :class:`gridflock.domain.ports.DeviceLink` over MQTT protocol v1."""

    def __init__(
        self,
        broker: BrokerAddress,
        gateway_of_device: Mapping[str, str],
        clock: Callable[[], float] = time.time,
        share: str = "gridflock",
    ) -> None:
        self.broker = broker
        self.gateway_of_device = dict(gateway_of_device)
        self.known = set(self.gateway_of_device)
        self.clock = clock
        self.share = share
        self.client = Client(f"gridflock-service-{uuid.uuid4().hex[:8]}")
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect
        if broker.username:
            self.client.set_auth_credentials(broker.username, broker.password)
        self.client.set_config({"reconnect_retries": -1, "reconnect_delay": 1})
        self._inbox: deque[tuple[str, bytes, float]] = deque()
        self._acks: deque[tuple[str, CommandAcks]] = deque()  # with the answering gateway
        self._statuses: deque[GatewayStatus] = deque()
        self.counts: Counter[str] = Counter()
        self._reported: Counter[str] = Counter()  # counts at the last take_report()
        self._connected = False
        self._stop = asyncio.Event()

    def update_fleet(self, spec: FleetSpec) -> None:
        """Take up a new fleet: which devices exist and which gateway carries each."""
        devices = spec.all_devices()
        self.gateway_of_device = dict(zip(devices["id"], devices["gateway_id"], strict=True))
        self.known = set(self.gateway_of_device)

    # ------------------------------------------------------------------ connection
    @property
    def connected(self) -> bool:
        """Whether the broker connection is up."""
        return self._connected

    async def connect(self) -> None:
        """Connect (raises ``ConnectionError`` naming the broker if it is unreachable)."""
        b = self.broker
        try:
            await self.client.connect(
                b.host,
                b.port,
                ssl=ssl.create_default_context() if b.tls else False,
                keepalive=30,
                version=MQTTv311,
            )
        except (TimeoutError, OSError) as e:
            raise ConnectionError(
                f"cannot reach the MQTT broker at {b.host}:{b.port}: {e}; is it running?"
            ) from e

    async def run(self) -> None:
        """Stay connected until cancelled (gmqtt reconnects by itself after a drop)."""
        while not self._connected and not self._stop.is_set():
            try:
                await self.connect()
            except ConnectionError as e:
                log.warning("%s; retrying in 2 s", e)
                await asyncio.sleep(2)
        try:
            await self._stop.wait()
        finally:
            with contextlib.suppress(Exception):
                await self.client.disconnect()

    def _on_connect(self, client: Client, flags: int, rc: int, properties: object) -> None:
        self._connected = True
        self.counts["connects"] += 1
        log.info("connected to the MQTT broker at %s:%d", self.broker.host, self.broker.port)
        client.subscribe(
            [
                Subscription(shared_telemetry_subscription(self.share), qos=0),
                Subscription("gf/v1/+/ack", qos=1),
                Subscription("gf/v1/+/status", qos=1),
            ]
        )

    def _on_disconnect(self, client: Client, packet: object, exc: object = None) -> None:
        if self._connected and not self._stop.is_set():
            log.warning("lost the MQTT broker connection; reconnecting")
        self._connected = False

    # ------------------------------------------------------------------ inbound
    def _on_message(
        self, client: Client, topic: str, payload: bytes, qos: int, properties: object
    ) -> int:
        if topic.endswith("/telemetry"):
            # decoded in receive(); counted now so arrivals show (a message refused whole
            # is taken back out of "messages" when decoded, as it never counted before)
            self._inbox.append((topic, payload, self.clock()))
            self.counts["messages"] += 1
            return 0
        try:
            if topic.endswith("/ack"):
                msg = decode_ack(payload)
                if isinstance(msg, CommandAcks):
                    self._acks.append((gateway_of(topic) or "", msg))
            elif topic.endswith("/status"):
                status = decode_status(payload)
                gw = gateway_of(topic)
                if gw is not None:
                    self._statuses.append(GatewayStatus(gw, status.status, self.clock()))
        except ProtocolError:
            self.counts["protocol_errors"] += 1
        return 0

    def receive(self) -> list[TelemetryBatch]:
        """Everything that arrived since the last call, decoded and screened, as one batch.

        Messages with refused readings, or refused whole, are answered on their gateway's
        ack topic (``encode_telemetry_ack``).
        """
        if not self._inbox:
            return []
        items = list(self._inbox)
        self._inbox.clear()
        decoded = decode_telemetry_many(
            [(topic, payload) for topic, payload, _ in items],
            np.fromiter((at for _, _, at in items), np.float64, len(items)),
        )
        batch = decoded.batch
        rejected = decoded.rejected
        # a gateway may only speak for the devices the fleet places behind it
        owners, gateways = self.gateway_of_device, decoded.gateways
        row_gw = [gateways[j] for j in decoded.row_message.tolist()]
        foreign = np.fromiter(
            (owners.get(d) != g for d, g in zip(batch.device_ids.tolist(), row_gw, strict=True)),
            bool,
            len(batch),
        )
        if foreign.any():
            touched = set()
            for i in np.flatnonzero(foreign).tolist():
                d, j, g = str(batch.device_ids[i]), int(decoded.row_message[i]), row_gw[i]
                where = (
                    "is not provisioned in the fleet"
                    if d not in self.known
                    else f"is behind gateway {owners[d]!r}, not {g!r}"
                )
                rejected[j].append(
                    Rejection(
                        int(decoded.row_index[i]), d, "unknown_device", f"device {d!r} {where}"
                    )
                )
                touched.add(j)
            for j in touched:
                rejected[j].sort(key=lambda r: r.index)
            keep = ~foreign
            batch = TelemetryBatch(
                batch.device_ids[keep],
                batch.ts[keep],
                batch.p_kw[keep],
                batch.soc[keep],
                batch.p_baseline_kw[keep],
                {k: v[keep] for k, v in batch.extras.items()},
            )
        self.counts["readings"] += sum(decoded.received)
        for (topic, _, _), err, gw, received, refused in zip(
            items, decoded.errors, gateways, decoded.received, rejected, strict=True
        ):
            if err is not None:
                self.counts["messages"] -= 1
                self.counts["protocol_errors"] += 1
                gw = gateway_of(topic)
                if gw is not None:
                    self._ack(gw, encode_telemetry_ack(0, [], error=str(err)))
            elif refused:
                for r in refused:
                    self.counts[f"rejected:{r.reason}"] += 1
                assert gw is not None
                self._ack(gw, encode_telemetry_ack(received, refused))
        return [batch] if len(batch) else []

    def _ack(self, gateway: str, payload: bytes) -> None:
        """Answer a gateway's telemetry on its ack topic (QoS 0: dropped while offline)."""
        if not self._connected:
            self.counts["telemetry_acks_unsent"] += 1
            return
        self.client.publish(ack_topic(gateway), payload, qos=0)

    def take_acks(self) -> list[CommandAcks]:
        """Command acknowledgements received since the last call."""
        out = [msg for _, msg in self._acks]
        self._acks.clear()
        return out

    def take_statuses(self) -> list[GatewayStatus]:
        """Gateway status announcements received since the last call."""
        out = list(self._statuses)
        self._statuses.clear()
        return out

    def take_report(self) -> LinkReport:
        """Acks, statuses and counters (increments) since the last call."""
        counts, last = self.counts, self._reported
        rejected = {
            key.split(":", 1)[1]: n - last[key]
            for key, n in counts.items()
            if key.startswith("rejected:") and n > last[key]
        }
        if counts["protocol_errors"] > last["protocol_errors"]:  # messages refused whole
            rejected["protocol_error"] = counts["protocol_errors"] - last["protocol_errors"]
        messages = max(counts["messages"] - last["messages"], 0)  # a counter never goes back
        self._reported = Counter(counts)
        self._reported["messages"] = last["messages"] + messages
        acks = [
            CommandAck(gw, a.id, a.device, a.status, a.reason)
            for gw, msg in self._acks
            for a in msg.acks
        ]
        self._acks.clear()
        return LinkReport(messages, rejected, acks, self.take_statuses())

    # ------------------------------------------------------------------ outbound
    def send(self, commands: CommandBatch) -> None:
        """One message per gateway with its devices' commands, QoS 1."""
        if not len(commands):
            return
        if not self._connected:
            self.counts["commands_unsent"] += len(commands)
            log.warning(
                "broker unreachable: %d command(s) not sent (they will be re-sent "
                "while the event lasts)",
                len(commands),
            )
            return
        for gateway, payload in encode_commands(commands, self.gateway_of_device).items():
            self.client.publish(f"gf/v1/{gateway}/cmd", payload, qos=1)
        self.counts["commands"] += len(commands)

    def stop(self) -> None:
        """End :meth:`run`."""
        self._stop.set()
