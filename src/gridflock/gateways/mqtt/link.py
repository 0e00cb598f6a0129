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

What a gateway cannot do through this link: speak for another gateway's devices (refused
per reading), acknowledge a command that was not sent to it (refused and counted, the
command record untouched), send more than its rate (token buckets per gateway, messages
and readings; the excess refused with a reason), or make the service send an answer larger
than ``MAX_ACK_BYTES`` (answers are summarised). Messages above
``MAX_GATEWAY_MESSAGE_BYTES`` are refused whole, unparsed, with one short reason.

The client id comes from the configuration (``gridflock-service-1``): a restarted service
takes over the session of its previous run, so no dead session keeps a share of the
telemetry (gmqtt resumes sessions after a drop, and Mosquitto keeps a persistent session,
subscriptions included, across its own restarts).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import ssl
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from gmqtt import Client, Subscription
from gmqtt.mqtt.constants import MQTTv311

from gridflock.domain.messages import CommandBatch, TelemetryBatch
from gridflock.domain.ports import CommandAck, GatewayStatus, LinkReport, SettingsVerdict
from gridflock.domain.schedules import ScheduleBatch
from gridflock.domain.spec import FleetSpec
from gridflock.gateways.mqtt._address import BrokerAddress
from gridflock.gateways.mqtt._limits import TOKEN_SLACK, Bucket, GatewayLimits, SentCommand
from gridflock.gateways.mqtt.codec import (
    CommandAcks,
    ProtocolError,
    Rejection,
    decode_ack,
    decode_status,
    decode_telemetry_many,
    encode_commands,
    encode_schedules,
    encode_settings,
    encode_telemetry_ack,
)
from gridflock.gateways.mqtt.protocol import (
    MAX_GATEWAY_MESSAGE_BYTES,
    DeviceSettings,
    SettingsAcks,
    ack_topic,
    cmd_topic,
    gateway_of,
    shared_telemetry_subscription,
)
from gridflock.gateways.mqtt.protocol import CommandAck as WireAck

__all__ = ["BrokerAddress", "GatewayLimits", "GatewayStatus", "MqttLink"]

log = logging.getLogger("gridflock.mqtt")
#: How every telemetry ack the service sends begins (compact JSON, keys in this order).
_OWN_ACK = b'{"v":1,"type":"telemetry_ack"'


class MqttLink:
    """Implements :class:`gridflock.domain.ports.DeviceLink` over MQTT protocol v1.

    Parameters
    ----------
    broker
        Where and how to connect.
    gateway_of_device
        Gateway of each device id (a gateway may report only its own devices).
    clock
        Service clock [UTC epoch s].
    share
        Group of the shared telemetry subscription (ingest workers split the load).
    client_id
        MQTT client id; give each service process a stable one of its own (the
        configuration's ``mqtt_client_id``), so a restart takes over the previous
        session. ``None`` makes a random one (tests and benchmarks).
    limits
        Per-gateway rate limits; ``None`` for none.
    command_grace_s
        How long after ``valid_until`` an unacknowledged command is reported expired
        (:meth:`take_expired`) and a late acknowledgement is still taken [s].
    answer_telemetry
        Whether refused readings are answered on the gateway's ack topic. A control
        process beside ingest workers leaves the answers to them (one answer each).
    telemetry_only
        Subscribe to telemetry alone (an ingest worker): command acknowledgements and
        gateway statuses belong to the control process, which sends the commands.

    """

    def __init__(
        self,
        broker: BrokerAddress,
        gateway_of_device: Mapping[str, str],
        clock: Callable[[], float] = time.time,
        share: str = "gridflock",
        *,
        client_id: str | None = None,
        limits: GatewayLimits | None = None,
        command_grace_s: float = 10.0,
        answer_telemetry: bool = True,
        telemetry_only: bool = False,
    ) -> None:
        self.broker = broker
        self.telemetry_only = telemetry_only
        self.gateway_of_device = dict(gateway_of_device)
        self._index_devices()
        self.clock = clock
        self.share = share
        self.limits = limits
        self.command_grace_s = command_grace_s
        self.answer_telemetry = answer_telemetry
        self.shared_gateways = not answer_telemetry
        """Other control processes command these gateways too (leader and standby): acks
        of commands this one never sent are counted, not logged."""
        self.connect_timeout_s = 10.0
        self.client_id = client_id or f"gridflock-service-{uuid.uuid4().hex[:8]}"
        self.client = Client(self.client_id)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect
        if broker.username:
            self.client.set_auth_credentials(broker.username, broker.password)
        self.client.set_config({"reconnect_retries": -1, "reconnect_delay": 1})
        self._inbox: deque[tuple[str, bytes, float]] = deque()
        self._acks: deque[tuple[str, CommandAcks]] = deque()  # with the answering gateway
        self._settings_acks: deque[tuple[str, SettingsAcks]] = deque()
        self._statuses: deque[GatewayStatus] = deque()
        self._buckets: dict[str, Bucket] = {}
        self._limited: Counter[str] = Counter()  # gateway -> messages refused this cycle
        self._sent: dict[str, SentCommand] = {}  # command id -> where it went, until when
        # (valid_until, id) to prune: a heap, as schedules hold for hours and commands seconds
        self._sent_order: list[tuple[float, str]] = []
        self._expired: list[str] = []
        self.counts: Counter[str] = Counter()
        self._reported: Counter[str] = Counter()  # counts at the last take_report()
        self._connected = False
        self._stop = asyncio.Event()
        self.schedule_chunk = 2_000
        """Schedules encoded and published between two yields to the event loop."""
        self._schedules: deque[ScheduleBatch] = deque()
        self._schedule_task: asyncio.Task[None] | None = None

    def update_fleet(self, spec: FleetSpec) -> None:
        """Take up a new fleet: which devices exist and which gateway carries each."""
        devices = spec.all_devices()
        self.gateway_of_device = dict(zip(devices["id"], devices["gateway_id"], strict=True))
        self._index_devices()

    def update_gateways(self, gateway_of_device: Mapping[str, str]) -> None:
        """Take up a new fleet given as the gateway of each device (an ingest worker's view)."""
        self.gateway_of_device = dict(gateway_of_device)
        self._index_devices()

    def _index_devices(self) -> None:
        """Row of each device, and the newest reading time passed on for it (none yet)."""
        self.known = set(self.gateway_of_device)
        self._row = {d: i for i, d in enumerate(self.gateway_of_device)}
        self._last_ts = np.full(len(self._row), -np.inf)

    # ------------------------------------------------------------------ connection
    @property
    def connected(self) -> bool:
        """Whether the broker connection is up."""
        return self._connected

    async def connect(self) -> None:
        """Connect (raises ``ConnectionError`` naming the broker if it is unreachable)."""
        b = self.broker
        try:
            ctx = b.ssl_context()
        except (OSError, ssl.SSLError) as e:
            raise ConnectionError(
                f"cannot use the TLS files for the MQTT broker at {b.host}:{b.port} "
                f"(CA {b.ca_file!r}, certificate {b.cert_file!r}): {e}"
            ) from e
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                await self.client.connect(
                    b.host,
                    b.port,
                    ssl=ctx if ctx is not None else False,
                    keepalive=30,
                    version=MQTTv311,
                )
        except TimeoutError as e:
            with contextlib.suppress(Exception):
                await self.client.disconnect()
            raise ConnectionError(
                f"the MQTT broker at {b.host}:{b.port} did not answer within "
                f"{self.connect_timeout_s:g} s: check mqtt:// against mqtts:// (TLS) and "
                "whether it requires a client certificate"
            ) from e
        except OSError as e:
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
        log.info(
            "connected to the MQTT broker at %s:%d as %s",
            self.broker.host,
            self.broker.port,
            self.client_id,
        )
        telemetry = Subscription(shared_telemetry_subscription(self.share), qos=0)
        if self.telemetry_only:
            client.subscribe([telemetry])
            return
        client.subscribe(
            [
                telemetry,
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
        if len(payload) > MAX_GATEWAY_MESSAGE_BYTES:  # refused unparsed, whatever it is
            self._refuse_oversize(topic, len(payload))
            return 0
        if topic.endswith("/telemetry"):
            # decoded in receive(); counted now so arrivals show (a message refused whole
            # is taken back out of "messages" when decoded, as it never counted before)
            now = self.clock()
            if self.limits is not None and not self._take_message(topic, now):
                return 0
            self._inbox.append((topic, payload, now))
            self.counts["messages"] += 1
            return 0
        if payload.startswith(_OWN_ACK):
            return 0  # a telemetry ack: the service's own answer, echoed back by the broker
        if self.limits is not None and not self._take_message(topic, self.clock()):
            return 0  # acks and status count against the gateway's message rate too
        try:
            if topic.endswith("/ack"):
                msg = decode_ack(payload)
                if isinstance(msg, CommandAcks):
                    self._take_command_acks(topic, msg)
                elif isinstance(msg, SettingsAcks):
                    gw = gateway_of(topic)
                    if gw is not None:  # the pusher checks each against what it sent there
                        self._settings_acks.append((gw, msg))
            elif topic.endswith("/status"):
                status = decode_status(payload)
                gw = gateway_of(topic)
                if gw is not None:
                    self._statuses.append(GatewayStatus(gw, status.status, self.clock()))
        except ProtocolError:
            self.counts["protocol_errors"] += 1
        return 0

    def _refuse_oversize(self, topic: str, size: int) -> None:
        """Count a message above the size limit and tell its gateway, in one short line."""
        self.counts["rejected:too_large"] += 1
        gw = gateway_of(topic)
        if gw is not None and topic.endswith("/telemetry"):
            self._ack(
                gw,
                encode_telemetry_ack(
                    0,
                    [],
                    error=f"message is {size} bytes, more than the {MAX_GATEWAY_MESSAGE_BYTES} "
                    "allowed: split it into several messages",
                ),
            )

    def _take_message(self, topic: str, now: float) -> bool:
        """Whether the gateway of ``topic`` may send one more message now (token bucket)."""
        gw = gateway_of(topic)
        if gw is None:
            return True  # refused later as a bad topic
        limits = self.limits
        assert limits is not None
        b = self._buckets.get(gw)
        if b is None:
            b = self._buckets[gw] = Bucket(limits, now)
        else:
            b.refill(limits, now)
        if b.messages >= 1.0 - TOKEN_SLACK:
            b.messages = max(b.messages - 1.0, 0.0)
            return True
        self._limited[gw] += 1
        self.counts["rejected:rate_limited"] += 1
        return False

    def _take_command_acks(self, topic: str, msg: CommandAcks) -> None:
        """Keep the verdicts on commands sent to the gateway of ``topic``; refuse the rest.

        An ack for a command id this service never sent to that gateway (another
        gateway's, an unknown or long-expired one) is dropped and counted: it must not
        change any command record.
        """
        gw = gateway_of(topic)
        mine = []
        for a in msg.acks:
            sent = self._sent.get(a.id)
            if sent is None:
                self.counts["acks_refused:unknown_command"] += 1
            elif sent.gateway != gw or sent.device != a.device:
                self.counts["acks_refused:not_its_command"] += 1
            else:
                sent.acked = True
                mine.append(a)
        foreign = sum(1 for a in msg.acks if a.id not in self._sent)
        if self.shared_gateways and foreign == len(msg.acks):
            pass  # another control process's commands (the leader's, seen by a standby)
        elif len(mine) < len(msg.acks):
            log.warning(
                "gateway %s acknowledged %d command(s) not sent to it: ignored",
                gw,
                len(msg.acks) - len(mine),
            )
        if mine:
            kept = msg if len(mine) == len(msg.acks) else _replace_acks(msg, mine)
            self._acks.append((gw or "", kept))

    def receive(self) -> list[TelemetryBatch]:
        """Everything that arrived since the last call, decoded and screened, as one batch.

        Messages with refused readings, or refused whole, are answered on their gateway's
        ack topic (``encode_telemetry_ack``, bounded in size).
        """
        self._answer_rate_limited()
        self._prune_sent(self.clock())
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
        errors: list[str | None] = [None if e is None else str(e) for e in decoded.errors]
        received = list(decoded.received)
        if self.limits is not None:
            self._limit_readings(items, decoded.gateways, received, errors)
        # a gateway may only speak for the devices the fleet places behind it, and a
        # reading older than one already passed on for its device is stale (the fleet
        # state would drop it): both are refused and reported, not silently lost
        owners, gateways, rows_of = self.gateway_of_device, decoded.gateways, self._row
        n = len(batch)
        row_msg = decoded.row_message.tolist()
        row_gw = [gateways[j] for j in row_msg]
        devs = batch.device_ids.tolist()
        foreign = np.fromiter(
            (owners.get(d) != g for d, g in zip(devs, row_gw, strict=True)), bool, n
        )
        row = np.fromiter((rows_of.get(d, -1) for d in devs), np.int64, n)
        stale = ~foreign & (batch.ts < self._last_ts[np.maximum(row, 0)])
        refused_msg = np.fromiter((e is not None for e in errors), bool, len(errors))
        drop = foreign | stale | refused_msg[decoded.row_message]
        if drop.any():
            touched = set()
            for i in np.flatnonzero(drop & ~refused_msg[decoded.row_message]).tolist():
                d, j, g = devs[i], row_msg[i], row_gw[i]
                if stale[i]:
                    r = Rejection(
                        int(decoded.row_index[i]),
                        d,
                        "stale",
                        f"ts {batch.ts[i]!r} is older than the reading at "
                        f"{self._last_ts[row[i]]!r} already taken for device {d!r}: "
                        "send each device's readings in time order",
                    )
                else:
                    where = (
                        "is not provisioned in the fleet"
                        if d not in self.known
                        else f"is behind gateway {owners[d]!r}, not {g!r}"
                    )
                    r = Rejection(
                        int(decoded.row_index[i]), d, "unknown_device", f"device {d!r} {where}"
                    )
                rejected[j].append(r)
                touched.add(j)
            for j in touched:
                rejected[j].sort(key=lambda r: r.index)
            keep = ~drop
            batch = TelemetryBatch(
                batch.device_ids[keep],
                batch.ts[keep],
                batch.p_kw[keep],
                batch.soc[keep],
                batch.p_baseline_kw[keep],
                {k: v[keep] for k, v in batch.extras.items()},
            )
            row = row[keep]
        np.maximum.at(self._last_ts, row, batch.ts)
        self.counts["readings"] += sum(received)
        for (topic, _, _), err, gw, n, refused in zip(
            items, errors, gateways, received, rejected, strict=True
        ):
            if err is not None:
                self.counts["messages"] -= 1
                if gw is None:
                    self.counts["protocol_errors"] += 1
                gw = gateway_of(topic)
                if gw is not None:
                    self._ack(gw, encode_telemetry_ack(0, [], error=err))
            elif refused:
                for r in refused:
                    self.counts[f"rejected:{r.reason}"] += 1
                assert gw is not None
                self._ack(gw, encode_telemetry_ack(n, refused))
        return [batch] if len(batch) else []

    def _limit_readings(
        self,
        items: list[tuple[str, bytes, float]],
        gateways: list[str | None],
        received: list[int],
        errors: list[str | None],
    ) -> None:
        """Refuse whole the messages whose readings exceed their gateway's bucket."""
        limits = self.limits
        assert limits is not None
        for j, ((_, _, at), gw) in enumerate(zip(items, gateways, strict=True)):
            if gw is None or errors[j] is not None:
                continue
            b = self._buckets.get(gw)
            if b is None:
                b = self._buckets[gw] = Bucket(limits, at)
            else:
                b.refill(limits, at)
            if b.readings >= received[j] - TOKEN_SLACK:
                b.readings = max(b.readings - received[j], 0.0)
                continue
            errors[j] = (
                f"rate limit: {received[j]} readings refused; a gateway may send at most "
                f"{limits.readings_per_s:g} readings/s (bursts of {limits.burst_s:g} s): "
                "send less often or fewer readings"
            )
            self.counts["rejected:rate_limited"] += 1
            self.counts["readings_rate_limited"] += received[j]
            received[j] = 0

    def _answer_rate_limited(self) -> None:
        """One answer per gateway whose messages were refused by the rate limit this cycle."""
        if not self._limited:
            return
        limited, self._limited = self._limited, Counter()
        assert self.limits is not None
        for gw, n in limited.items():
            self._ack(
                gw,
                encode_telemetry_ack(
                    0,
                    [],
                    error=f"rate limit: {n} message(s) refused; a gateway may send at most "
                    f"{self.limits.messages_per_s:g} messages/s (bursts of "
                    f"{self.limits.burst_s:g} s): batch readings into fewer messages",
                ),
            )

    def _ack(self, gateway: str, payload: bytes) -> None:
        """Answer a gateway's telemetry on its ack topic (QoS 0: dropped while offline)."""
        if not self.answer_telemetry:
            return
        if not self._connected:
            self.counts["telemetry_acks_unsent"] += 1
            return
        self.client.publish(ack_topic(gateway), payload, qos=0)

    def take_acks(self) -> list[CommandAcks]:
        """Command acknowledgements received since the last call (only the gateways' own)."""
        out = [msg for _, msg in self._acks]
        self._acks.clear()
        return out

    def take_statuses(self) -> list[GatewayStatus]:
        """Gateway status announcements received since the last call."""
        out = list(self._statuses)
        self._statuses.clear()
        return out

    def take_expired(self) -> list[str]:
        """Ids of commands whose ``valid_until`` passed without an acknowledgement.

        A command is reported once, ``command_grace_s`` after its ``valid_until``; its
        gateway was silent (offline, or the command was lost), so the device has fallen
        back to its own control by the protocol's fail-safe rule.
        """
        self._prune_sent(self.clock())
        out, self._expired = self._expired, []
        return out

    def _prune_sent(self, now: float) -> None:
        """Forget settled commands; note the unacknowledged ones as expired."""
        order, sent = self._sent_order, self._sent
        limit = now - self.command_grace_s
        while order and order[0][0] < limit:
            valid_until, cid = heapq.heappop(order)
            entry = sent.get(cid)
            if entry is None or entry.valid_until != valid_until:
                continue  # re-sent with a later valid_until: its newer entry stays
            del sent[cid]
            if not entry.acked:
                self._expired.append(cid)
                self.counts["commands_expired"] += 1

    def take_report(self) -> LinkReport:
        """Acks, statuses and counters (increments) since the last call."""
        counts, last = self.counts, self._reported
        rejected = {
            key.split(":", 1)[1]: n - last[key]
            for key, n in counts.items()
            if key.startswith("rejected:") and n > last[key]
        }
        for key, n in counts.items():  # acks for commands not sent to their gateway
            if key.startswith("acks_refused:") and n > last[key]:
                rejected["ack_" + key.split(":", 1)[1]] = n - last[key]
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
        verdicts = [
            SettingsVerdict(
                gw, a.id, a.device, a.seq, a.status, a.reason, dict(a.adopted), a.detail
            )
            for gw, msg in self._settings_acks
            for a in msg.acks
        ]
        self._settings_acks.clear()
        return LinkReport(
            messages, rejected, acks, self.take_statuses(), self.take_expired(), verdicts
        )

    def send_settings(self, gateway: str, items: Sequence[DeviceSettings]) -> bool:
        """Grid-code settings to ``gateway`` (QoS 1); False while the broker is unreachable."""
        if not self._connected:
            self.counts["settings_unsent"] += len(items)
            return False
        for payload in encode_settings(list(items), self.clock()):
            self.client.publish(cmd_topic(gateway), payload, qos=1)
        self.counts["settings"] += len(items)
        return True

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
        self._remember(commands)
        self.counts["commands"] += len(commands)

    def send_schedules(self, schedules: ScheduleBatch) -> None:
        """A plan's schedules, grouped by gateway (one message each, or a few), QoS 1.

        More than ``schedule_chunk`` schedules are encoded and published by a task on the
        event loop, a chunk at a time and in order. Acknowledged like commands, by schedule
        id, on the gateways' ack topics. While the broker is unreachable nothing is sent
        (counted as ``schedules_unsent``); the plan executor sends again what was not
        acknowledged.
        """
        n = len(schedules)
        if not n:
            return
        if not self._connected:
            self.counts["schedules_unsent"] += n
            log.warning("broker unreachable: %d schedule(s) not sent", n)
            return
        self._remember_ids(
            schedules.schedule_ids, schedules.device_ids, np.full(n, schedules.valid_until)
        )
        self.counts["schedules"] += n
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no event loop (scripts, tests): all at once
            self._publish_schedules(schedules)
            return
        busy = self._schedule_task is not None and not self._schedule_task.done()
        if not busy and n <= self.schedule_chunk:
            self._publish_schedules(schedules)
            return
        # a whole fleet's plan takes seconds to encode: in chunks, in order, so the
        # control loop keeps running in between
        self._schedules.append(schedules)
        if not busy:
            self._schedule_task = asyncio.ensure_future(self._publish_queued())

    async def _publish_queued(self) -> None:
        """Encode and publish the queued schedule batches, a chunk at a time."""
        while self._schedules:
            batch = self._schedules.popleft()
            gw_of = self.gateway_of_device
            order = np.argsort(
                np.array([gw_of[d] for d in batch.device_ids.tolist()], dtype=object),
                kind="stable",
            )  # a gateway's schedules in as few chunks as may be
            for a in range(0, len(order), self.schedule_chunk):
                self._publish_schedules(batch.take(order[a : a + self.schedule_chunk]))
                await asyncio.sleep(0)

    def _publish_schedules(self, schedules: ScheduleBatch) -> None:
        if not self._connected:
            self.counts["schedules_unsent"] += len(schedules)
            return
        for gateway, payloads in encode_schedules(schedules, self.gateway_of_device).items():
            for payload in payloads:
                self.client.publish(f"gf/v1/{gateway}/cmd", payload, qos=1)

    def _remember(self, commands: CommandBatch) -> None:
        """Note where each command went, so only its gateway may acknowledge it."""
        self._remember_ids(commands.command_ids, commands.device_ids, commands.valid_until)

    def _remember_ids(self, ids: np.ndarray, devices: np.ndarray, valid_until: np.ndarray) -> None:
        gw_of, sent, order = self.gateway_of_device, self._sent, self._sent_order
        for cid, dev, vu in zip(
            ids.tolist(),
            devices.tolist(),
            np.asarray(valid_until, dtype=np.float64).tolist(),
            strict=True,
        ):
            sent[cid] = SentCommand(gw_of[dev], dev, vu)
            heapq.heappush(order, (vu, cid))

    def stop(self) -> None:
        """End :meth:`run`."""
        self._stop.set()


def _replace_acks(msg: CommandAcks, acks: list[WireAck]) -> CommandAcks:
    """``msg`` with only ``acks`` (already validated: no second validation)."""
    return msg.model_copy(update={"acks": acks})
