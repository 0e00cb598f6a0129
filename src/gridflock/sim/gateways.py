"""The digital twin's devices as MQTT gateways: ``gridflock sim gateways``.

A :class:`SimulatedGateways` runs the twin in real time (a summer day at the wall clock's
local time of day, readings stamped in wall-clock UTC, as :class:`RealtimeTwin` does) and
speaks protocol v1 (``docs/protocol.md``) against a broker for every gateway of the fleet:

- every twin step, one telemetry message per gateway on ``gf/v1/{G}/telemetry`` (QoS 0)
  with the readings of its devices; lost readings (the twin's dropouts and offline
  devices) are left out, and a gateway with none left sends nothing that step;
- commands on ``gf/v1/{G}/cmd`` are screened by the reference gateway rules
  (``screen_commands``: unknown device, expired, replayed), the accepted ones go to the
  twin (where latency, disobedient and offline devices still apply) and every command is
  answered by a ``command_ack`` on ``gf/v1/{G}/ack`` (QoS 1);
- a command or schedule message whose leader ``epoch`` is below the highest the gateway
  has seen is refused whole (``deposed_leader``): a deposed leader's commands never apply;
- schedules (a plan, on the same ``cmd`` topic) are screened by ``screen_schedules``
  (unknown device, expired, replayed, out of the device's range), the accepted ones go
  to the twin, which follows them until the plan's end even when the service falls
  silent, and each is acknowledged like a command;
- ``online`` is published retained on ``gf/v1/{G}/status`` at start and after each
  reconnect, ``offline`` on a clean stop.

Gateways are multiplexed over a few MQTT connections (``connections``, default 4), each
subscribed to ``gf/v1/+/cmd`` and ``gf/v1/groups/+/activate`` and ignoring the gateways it
does not host. An MQTT connection has one Last Will, so each connection's will is the
``offline`` status of its *first* gateway only: if the process dies, the other gateways
keep a stale retained ``online``. With ``connections=0`` every gateway gets its own
connection (client id and user name = gateway id, its own will): needed against a broker
with the per-gateway ACLs Gridflock generates, and meant for small fleets (a few thousand
gateways at most: one socket and keep-alive each).

The message loop is single-threaded asyncio; encoding is spread over the first half of
each step in chunks, so commands keep being answered while a large fleet reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np
import pandas as pd

from gridflock.domain.messages import CommandBatch, FloatArray, TelemetryBatch
from gridflock.domain.schedules import ScheduleBatch
from gridflock.domain.spec import FleetSpec
from gridflock.gateways.mqtt.codec import (
    DecodedSettings,
    EpochFence,
    ProtocolError,
    SettingsSeen,
    decode_activate,
    decode_cmd,
    encode_command_ack,
    encode_settings_ack,
    encode_status,
    encode_telemetry,
    screen_commands,
    screen_schedules,
    screen_settings,
)
from gridflock.gateways.mqtt.protocol import (
    Command,
    CommandAck,
    DeviceSettings,
    Schedule,
    ScheduleMessage,
    SettingsAck,
    ack_topic,
    check_id,
    cmd_topic,
    gateway_of,
    group_of,
    status_topic,
    telemetry_topic,
)
from gridflock.sim.imperfections import Imperfections
from gridflock.sim.realtime import RealtimeTwin

__all__ = [
    "BrokerUnreachableError",
    "GatewayStats",
    "SimulatedGateways",
    "mask_url",
    "parse_broker_url",
]

log = logging.getLogger(__name__)

CMD_WILDCARD = "gf/v1/+/cmd"
ACTIVATE_WILDCARD = "gf/v1/groups/+/activate"
_CHUNK = 500  # gateways encoded and published between two yields to the event loop
_SESSION_EXPIRY_S = 120  # commands published while reconnecting are kept this long
_KEEPALIVE_S = 30
_CONNECT_PARALLEL = 64


class BrokerUnreachableError(ConnectionError):
    """The broker could not be reached or refused the connection."""


@dataclass
class GatewayStats:
    """Counters of what the simulated gateways did (cumulative)."""

    steps: int = 0
    steps_skipped: int = 0
    messages: int = 0
    readings: int = 0
    bytes: int = 0
    not_connected: int = 0
    commands_received: int = 0
    commands_accepted: int = 0
    commands_rejected: int = 0
    schedules_received: int = 0
    schedules_accepted: int = 0
    schedules_rejected: int = 0
    bad_messages: int = 0
    activations: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    last_step_s: float = 0.0
    """Wall time the last step took to encode and publish [s]."""


def parse_broker_url(url: str) -> tuple[str, int, bool, str | None, str | None]:
    """``(host, port, tls, username, password)`` of ``mqtt://[user[:pw]@]host[:port]``.

    ``mqtts://`` (or ``ssl://``) means TLS, default port 8883; ``mqtt://`` (or ``tcp://``)
    plain, 1883. A bare ``host[:port]`` is taken as ``mqtt://``.
    """
    if "://" not in url:
        url = "mqtt://" + url
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("mqtt", "tcp", "mqtts", "ssl"):
        raise ValueError(f"broker URL {mask_url(url)!r}: use mqtt://host:port or mqtts://host:port")
    tls = scheme in ("mqtts", "ssl")
    if not parts.hostname:
        raise ValueError(f"broker URL {mask_url(url)!r} has no host")
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError:
        raise ValueError(
            f"broker URL {mask_url(url)!r}: the port is not a number 1-65535"
        ) from None
    user = unquote(parts.username) if parts.username else None
    pw = unquote(parts.password) if parts.password else None
    return parts.hostname, port, tls, user, pw


def mask_url(url: str) -> str:
    """``url`` with its password (if any) shown as ``********``, as ``config show`` does."""
    if "://" not in url:
        return mask_url("mqtt://" + url).removeprefix("mqtt://")
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{user}:********@{host}").geturl()


@dataclass
class _Conn:
    """One MQTT connection and the gateways it hosts."""

    index: int
    gateways: list[str]
    hosted: frozenset[str]
    client: Any = None  # gmqtt.Client (untyped library)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the first connect returned (gmqtt's connect waits for QoS 1 to drain)."""
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def connected(self) -> bool:
        return bool(self.client is not None and self.client.is_connected)


class SimulatedGateways:
    """The twin's fleet as MQTT gateways; see the module docstring.

    Parameters
    ----------
    spec : the fleet; each device's ``gateway_id`` is the gateway that reports it
    broker_url : ``mqtt://host:port`` (``mqtts://`` for TLS); credentials in the URL are
        used unless ``username``/``password`` are given
    seed : random seed of the twin (weather, loads, imperfections)
    step_s : twin step and reporting interval [s]
    connections : MQTT connections the gateways are spread over; 0 = one per gateway
        (user name = gateway id; for brokers with per-gateway ACLs, small fleets only)
    imperfections : the twin's latency, dropouts, offline and disobedient devices, noise
    username, password : broker credentials (with ``connections=0`` the user name is
        each gateway's id unless given)
    clock : wall clock [UTC epoch s]
    sim_date : the summer day the twin lives on
    tls_ca_file : CA bundle (PEM) the broker's certificate must chain to (``mqtts://``);
        the system's if not given
    tls_cert_file, tls_key_file : client certificate and key (PEM), for brokers that
        require one

    """

    def __init__(
        self,
        spec: FleetSpec,
        broker_url: str,
        *,
        seed: int = 7,
        step_s: float = 5.0,
        connections: int = 4,
        imperfections: Imperfections | None = None,
        username: str | None = None,
        password: str | None = None,
        clock: Callable[[], float] = time.time,
        sim_date: dt.date = dt.date(2026, 7, 15),
        tls_ca_file: str | None = None,
        tls_cert_file: str | None = None,
        tls_key_file: str | None = None,
        command_log: str | None = None,
    ) -> None:
        if not step_s > 0:
            raise ValueError(f"step_s must be > 0, got {step_s}")
        if connections < 0:
            raise ValueError(f"connections must be >= 0 (0 = one per gateway), got {connections}")
        self.broker_url = mask_url(broker_url)  # what messages show: never the password
        self.host, self.port, self.tls, url_user, url_pw = parse_broker_url(broker_url)
        if not self.tls and (tls_ca_file or tls_cert_file or tls_key_file):
            raise ValueError("TLS files are given but the broker URL is not mqtts://")
        self._ssl: ssl.SSLContext | bool = False
        if self.tls:
            ctx = ssl.create_default_context(cafile=tls_ca_file)
            if tls_cert_file:
                ctx.load_cert_chain(tls_cert_file, tls_key_file)
            self._ssl = ctx
        self.username = username if username is not None else url_user
        self.password = password if password is not None else url_pw
        self.clock = clock
        self.step_s = float(step_s)
        self.stats = GatewayStats()
        self.rt = RealtimeTwin(
            spec,
            seed=seed,
            step_s=step_s,
            sim_date=sim_date,
            imperfections=imperfections,
            clock=clock,
        )
        cap = self.rt.twin.cap
        self.n_devices = cap.n
        dev = spec.all_devices()
        gw_of = dict(zip(dev["id"].astype(str), dev["gateway_id"].astype(str), strict=True))
        ids = cap.device_ids
        gws = np.array([gw_of[str(d)] for d in ids.tolist()], dtype=object)
        codes, names = pd.factorize(gws)
        self.gateways: list[str] = [str(g) for g in names.tolist()]
        for g in self.gateways:
            check_id(g, "gateway")
        self.gateway_of_device = gw_of
        order = np.argsort(codes, kind="stable")
        self._order = order
        self._ids_sorted = ids[order]
        sorted_codes = codes[order]
        bounds = np.flatnonzero(np.diff(sorted_codes)) + 1
        self._starts = np.concatenate([[0], bounds]).astype(np.int64)
        self._ends = np.concatenate([bounds, [len(ids)]]).astype(np.int64)
        self._gw_sorted = [self.gateways[c] for c in sorted_codes[self._starts].tolist()]
        self._topics = [telemetry_topic(g) for g in self._gw_sorted]
        soc_rows = np.zeros(cap.n, bool)
        extra_rows = np.zeros(cap.n, bool)
        for kind, sl in cap.kind_slices.items():  # as the kinds declare
            soc_rows[sl] = kind.decl.reports_soc
            extra_rows[sl] = bool(kind.decl.extras)
        self._has_soc = self._any_per_gateway(soc_rows[order])
        self._has_extras = self._any_per_gateway(extra_rows[order])
        # connections: contiguous slices of the gateways (in sorted order)
        n_gw = len(self._gw_sorted)
        n_conn = n_gw if connections == 0 else max(1, min(connections, n_gw))
        self.per_gateway = connections == 0
        edges = np.linspace(0, n_gw, n_conn + 1).round().astype(int).tolist()
        self._conns: list[_Conn] = []
        self._conn_of = np.zeros(n_gw, dtype=np.int64)
        for i in range(n_conn):
            a, b = edges[i], edges[i + 1]
            gws_i = self._gw_sorted[a:b]
            self._conns.append(_Conn(i, gws_i, frozenset(gws_i)))
            self._conn_of[a:b] = i
        self._last_seq: dict[str, int] = {}
        self._last_schedule_seq: dict[str, int] = {}
        self._fences: dict[str, EpochFence] = {}  # gateway -> highest leader epoch seen
        self._command_log = None if command_log is None else open(command_log, "a")  # noqa: SIM115
        """Every command and schedule received, a line each: ``ts gateway device seq epoch
        kind status reason valid_until`` (epoch -1: none)."""
        self._settings_seen: dict[str, SettingsSeen] = {}
        self.pushed: dict[str, DeviceSettings] = {}
        """Grid-code settings each device runs on, as the service pushed them."""
        self._row = {str(d): i for i, d in enumerate(ids.tolist())}
        self._p_min = -np.asarray(cap.p_load_max_kw, dtype=np.float64)
        self._p_max = np.asarray(cap.p_gen_max_kw, dtype=np.float64)
        self._stop: asyncio.Event | None = None
        self._stopping = False

    # ------------------------------------------------------------------ setup
    def _any_per_gateway(self, mask: np.ndarray) -> list[bool]:
        """Per gateway (sorted order): whether ``mask`` holds for any of its devices."""
        c = np.concatenate([[0], np.cumsum(mask)])
        return ((c[self._ends] - c[self._starts]) > 0).tolist()  # type: ignore[no-any-return]

    @property
    def n_connections(self) -> int:
        """MQTT connections the gateways are spread over."""
        return len(self._conns)

    @property
    def connected(self) -> int:
        """Connections currently up."""
        return sum(c.connected for c in self._conns)

    # ------------------------------------------------------------------ lifecycle
    def stop(self) -> None:
        """Ask :meth:`run` to publish the offline statuses, disconnect and return."""
        self._stopping = True
        if self._stop is not None:
            self._stop.set()

    async def run(self) -> None:
        """Connect, then report every step until :meth:`stop` or cancellation.

        Raises
        ------
        BrokerUnreachableError
            If a connection cannot be opened or the broker refuses it.

        """
        self._stop = asyncio.Event()
        if self._stopping:
            self._stop.set()
        try:
            await self._connect_all()
            while not self._stop.is_set():
                batches = self.rt.receive()
                if batches:
                    await self._publish_step(batches)
                due = self.rt.twin.now + self.step_s + self.rt.offset_s
                wait = due - self.clock()
                if wait > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), wait)
        finally:
            await asyncio.shield(self._shutdown())

    async def _connect_all(self) -> None:
        from gmqtt import Client

        sem = asyncio.Semaphore(_CONNECT_PARALLEL)
        prefix = f"gfsim-{int(self.clock() * 1000) % 100_000_000:x}"

        async def one(c: _Conn) -> None:
            first = c.gateways[0]
            will = _message(status_topic(first), encode_status("offline"), qos=1, retain=True)
            cid = first if self.per_gateway else f"{prefix}-{c.index}-{first}"[:64]
            client = Client(cid, will_message=will, session_expiry_interval=_SESSION_EXPIRY_S)
            client.set_config({"reconnect_delay": 2})
            user = (
                self.username
                if self.username is not None
                else (first if self.per_gateway and self.password is not None else None)
            )
            if user is not None:
                client.set_auth_credentials(user, self.password)
            client.on_connect = lambda cl, flags, rc, props: self._on_connect(c)
            client.on_message = lambda cl, topic, payload, qos, props: self._on_message(
                c, topic, payload
            )
            c.client = client
            async with sem:
                try:
                    await asyncio.wait_for(
                        client.connect(
                            self.host, self.port, ssl=self._ssl, keepalive=_KEEPALIVE_S, version=5
                        ),
                        10.0,
                    )
                except (OSError, TimeoutError) as e:
                    raise BrokerUnreachableError(
                        f"cannot reach the MQTT broker at {self.broker_url}: "
                        f"{str(e) or 'timed out'}"
                    ) from None
                except Exception as e:  # gmqtt's MQTTConnectError: refused (credentials)
                    raise BrokerUnreachableError(
                        f"the MQTT broker at {self.broker_url} refused connection {cid!r}: {e}"
                    ) from None
            c.ready.set()

        await asyncio.gather(*(one(c) for c in self._conns))

    async def _shutdown(self) -> None:
        """Publish ``offline`` for every hosted gateway, let it drain, disconnect."""

        async def one(c: _Conn) -> None:
            client = c.client
            if client is None:
                return
            for t in list(c.tasks):
                t.cancel()
            try:
                if c.connected:
                    payload = encode_status("offline", self.clock())
                    for g in c.gateways:
                        await _publish_qos1(client, status_topic(g), payload, retain=True)
                    await _drain(client, 10.0)
                await asyncio.wait_for(client.disconnect(), 5.0)
            except Exception as e:  # a broken connection: nothing more to say to it
                log.warning("connection %d: disconnect failed: %s", c.index, e)

        await asyncio.gather(*(one(c) for c in self._conns))

    # ------------------------------------------------------------------ callbacks
    def _on_connect(self, c: _Conn) -> None:
        """(Re)subscribe and announce the hosted gateways online."""
        from gmqtt import Subscription

        client = c.client
        if client.subscriptions:
            for s in list(client.subscriptions):
                client.resubscribe(s)
        elif self.per_gateway:
            client.subscribe(
                [
                    Subscription(cmd_topic(c.gateways[0]), qos=1),
                    Subscription(ACTIVATE_WILDCARD, qos=1),
                ]
            )
        else:
            client.subscribe(
                [Subscription(CMD_WILDCARD, qos=1), Subscription(ACTIVATE_WILDCARD, qos=1)]
            )
        self._spawn(c, self._announce(c))

    async def _announce(self, c: _Conn) -> None:
        await c.ready.wait()
        payload = encode_status("online", self.clock())
        for g in c.gateways:
            if not c.connected:
                return
            await _publish_qos1(c.client, status_topic(g), payload, retain=True)

    def _spawn(self, c: _Conn, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        c.tasks.add(task)
        task.add_done_callback(c.tasks.discard)

    def _on_message(self, c: _Conn, topic: str, payload: bytes) -> int:
        try:
            gateway = gateway_of(topic)
            if gateway is not None and topic.endswith("/cmd"):
                if gateway in c.hosted:
                    self._on_commands(c, gateway, payload)
            elif group_of(topic) is not None and c.index == 0:  # count a broadcast once
                plan = decode_activate(payload)
                self.stats.activations += 1
                log.info(
                    "activate %s for group %s: the twin has no armed plans",
                    plan.plan,
                    group_of(topic),
                )
        except ProtocolError as e:
            self.stats.bad_messages += 1
            log.warning("%s: %s", topic, e)
        except Exception:  # never let one message kill the connection's reader
            self.stats.bad_messages += 1
            log.exception("%s: handling failed", topic)
        return 0

    def _on_commands(self, c: _Conn, gateway: str, payload: bytes) -> None:
        msg = decode_cmd(payload)
        if isinstance(msg, DecodedSettings):
            self._on_settings(c, gateway, msg)
            return
        if isinstance(msg, ScheduleMessage):
            self._on_schedules(c, gateway, msg.schedules, msg.epoch)
            return
        commands = msg.commands
        now = self.clock()
        gw_of = self.gateway_of_device
        deposed = not self._fence(gateway).admit(msg.epoch)
        acks = screen_commands(
            commands, self._last_seq, now, lambda d: gw_of.get(d) == gateway, deposed=deposed
        )
        self._log_commands(gateway, msg.epoch, "command", commands, acks)
        st = self.stats
        st.commands_received += len(acks)
        accepted = [cmd for cmd, a in zip(commands, acks, strict=True) if a.status == "accepted"]
        st.commands_accepted += len(accepted)
        st.commands_rejected += len(acks) - len(accepted)
        for a in acks:
            if a.reason is not None:
                st.reasons[a.reason] = st.reasons.get(a.reason, 0) + 1
        by_event: dict[str | None, list[int]] = {}
        for i, cmd in enumerate(accepted):
            by_event.setdefault(cmd.event, []).append(i)
        for event, idx in by_event.items():
            sel = [accepted[i] for i in idx]
            # RealtimeTwin.send shifts issued_at and valid_until onto the twin's clock;
            # issued_at is the arrival at the gateway (the twin adds its own latency)
            self.rt.send(
                CommandBatch(
                    np.array([x.id for x in sel], dtype=object),
                    np.array([x.device for x in sel], dtype=object),
                    np.array(
                        [math.nan if x.p_setpoint_kw is None else x.p_setpoint_kw for x in sel],
                        dtype=np.float64,
                    ),
                    np.array([x.valid_until for x in sel], dtype=np.float64),
                    np.array([x.seq for x in sel], dtype=np.int64),
                    now,
                    event,
                )
            )
        self._spawn(c, self._ack(c, gateway, acks))

    def _fence(self, gateway: str) -> EpochFence:
        """The highest leader epoch ``gateway`` has seen."""
        fence = self._fences.get(gateway)
        if fence is None:
            fence = self._fences[gateway] = EpochFence()
        return fence

    def _log_commands(
        self,
        gateway: str,
        epoch: int | None,
        kind: str,
        items: Sequence[Command | Schedule],
        acks: Sequence[CommandAck],
    ) -> None:
        """One line per command or schedule received, when a command log is kept."""
        f = self._command_log
        if f is None:
            return
        e, now = -1 if epoch is None else epoch, self.clock()
        f.writelines(
            f"{now:.3f} {gateway} {a.device} {a.seq} {e} {kind} {a.status} {a.reason or '-'} "
            f"{x.valid_until:.3f}\n"
            for x, a in zip(items, acks, strict=True)
        )
        f.flush()

    def _on_schedules(
        self, c: _Conn, gateway: str, schedules: Sequence[Schedule], epoch: int | None = None
    ) -> None:
        """Screen a plan's schedules, give the accepted ones to the twin, acknowledge all."""
        now = self.clock()
        gw_of, row = self.gateway_of_device, self._row

        def limits(device: str) -> tuple[float, float]:
            i = row[device]
            return float(self._p_min[i]), float(self._p_max[i])

        acks = screen_schedules(
            schedules,
            self._last_schedule_seq,
            now,
            lambda d: gw_of.get(d) == gateway,
            limits,
            deposed=not self._fence(gateway).admit(epoch),
        )
        self._log_commands(gateway, epoch, "schedule", schedules, acks)
        st = self.stats
        st.schedules_received += len(acks)
        accepted = [x for x, a in zip(schedules, acks, strict=True) if a.status == "accepted"]
        st.schedules_accepted += len(accepted)
        st.schedules_rejected += len(acks) - len(accepted)
        for a in acks:
            if a.reason is not None:
                st.reasons[a.reason] = st.reasons.get(a.reason, 0) + 1
        groups: dict[tuple[str, float, float, float, int], list[Schedule]] = {}
        for x in accepted:  # one batch per time grid
            groups.setdefault((x.plan, x.start, x.step_s, x.valid_until, len(x.p_kw)), []).append(x)
        for (plan, start, step_s, until, _), sel in groups.items():
            lo, hi = _limits(sel, "p_min_kw"), _limits(sel, "p_max_kw")
            self.rt.send_schedules(
                ScheduleBatch(
                    np.array([x.id for x in sel], dtype=object),
                    np.array([x.device for x in sel], dtype=object),
                    np.array([x.seq for x in sel], dtype=np.int64),
                    np.array(
                        [[math.nan if v is None else v for v in x.p_kw] for x in sel],
                        dtype=np.float64,
                    ),
                    start,
                    step_s,
                    until,
                    now,
                    plan,
                    lo,
                    hi,
                )
            )
        self.rt.take_report()  # the twin's own acks: the gateway answers on MQTT instead
        self._spawn(c, self._ack(c, gateway, acks))

    def _on_settings(self, c: _Conn, gateway: str, msg: DecodedSettings) -> None:
        """Adopt pushed grid-code settings: the twin's devices hold them (their droop).

        The twin's inverters run the pushed curves as given (they have no registers to
        refuse a value); ``pushed`` keeps each device's settings in force, which the
        frequency response of the twin (``sim.ffr_report``) follows.
        """
        gw_of = self.gateway_of_device
        acks = list(msg.refused)
        screened = screen_settings(
            msg.settings, self._settings_seen, self.clock(), lambda d: gw_of.get(d) == gateway
        )
        for item, ack in screened:
            if ack is None:
                fns = ("volt_var", "volt_watt", "freq_watt", "ffr")
                adopted = {f: "verified" for f in fns if getattr(item, f) is not None}
                ack = SettingsAck(
                    id=item.id, device=item.device, seq=item.seq, status="accepted", adopted=adopted
                )
                self._settings_seen[item.device] = SettingsSeen(item.id, item.seq, ack)
                self.pushed[item.device] = item
            acks.append(ack)
            self.stats.reasons[ack.reason or "settings_" + ack.status] = (
                self.stats.reasons.get(ack.reason or "settings_" + ack.status, 0) + 1
            )
        if acks:
            self._spawn(c, _publish_qos1(c.client, ack_topic(gateway), encode_settings_ack(acks)))

    async def _ack(self, c: _Conn, gateway: str, acks: Sequence[CommandAck]) -> None:
        await _publish_qos1(c.client, ack_topic(gateway), encode_command_ack(acks))

    # ------------------------------------------------------------------ telemetry
    def _columns(
        self, batches: list[TelemetryBatch]
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, dict[str, FloatArray]]:
        """The latest step's readings as whole-fleet columns in gateway order."""
        last = max(float(b.ts[0]) for b in batches if len(b))
        step = [b for b in batches if len(b) and float(b.ts[0]) == last]
        if len(step) < len(batches):
            self.stats.steps_skipped += 1
        n = self.n_devices
        ts, p, soc, base = (np.full(n, np.nan) for _ in range(4))
        extras: dict[str, FloatArray] = {}
        for b in step:
            rows = b.rows if b.rows is not None else self.rt.twin.cap.indices(b.device_ids)
            ts[rows], p[rows], soc[rows], base[rows] = b.ts, b.p_kw, b.soc, b.p_baseline_kw
            for k, v in b.extras.items():
                col = extras.setdefault(k, np.full(n, np.nan))
                col[rows] = v
        if "departure_ts" in extras:  # an epoch time: onto the wall clock too
            extras["departure_ts"] = extras["departure_ts"] + self.rt.offset_s
        o = self._order
        return ts[o], p[o], soc[o], base[o], {k: v[o] for k, v in extras.items()}

    async def _publish_step(self, batches: list[TelemetryBatch]) -> None:
        """Encode and publish one message per gateway, spread over half a step."""
        t_begin = time.monotonic()
        ts, p, soc, base, extras = self._columns(batches)
        lost = np.isnan(p)
        cum = np.concatenate([[0], np.cumsum(lost)])
        n_lost = (cum[self._ends] - cum[self._starts]).tolist()
        starts, ends = self._starts.tolist(), self._ends.tolist()
        ids, conns = self._ids_sorted, self._conns
        conn_of = self._conn_of.tolist()
        n_gw = len(starts)
        n_chunks = max(1, math.ceil(n_gw / _CHUNK))
        spread = 0.5 * self.step_s
        st = self.stats
        for k in range(n_chunks):
            target = t_begin + spread * k / n_chunks
            delay = target - time.monotonic()
            await asyncio.sleep(max(delay, 0.0))
            if self._stopping:
                return
            for j in range(k * _CHUNK, min((k + 1) * _CHUNK, n_gw)):
                a, b = starts[j], ends[j]
                if n_lost[j] == b - a:
                    continue
                conn = conns[conn_of[j]]
                if not conn.connected:
                    st.not_connected += 1
                    continue
                sel: slice | np.ndarray = slice(a, b)
                if n_lost[j]:
                    sel = np.arange(a, b)[~lost[a:b]]
                payload = encode_telemetry(
                    self._gw_sorted[j],
                    ids[sel],
                    ts[sel],
                    p[sel],
                    soc[sel] if self._has_soc[j] else None,
                    base[sel],
                    {key: v[sel] for key, v in extras.items()} if self._has_extras[j] else None,
                )
                conn.client.publish(self._topics[j], payload, qos=0)
                st.messages += 1
                st.readings += b - a - n_lost[j]
                st.bytes += len(payload)
        st.steps += 1
        st.last_step_s = time.monotonic() - t_begin


def _limits(schedules: Sequence[Schedule], name: str) -> FloatArray | None:
    """One limit of the schedules as a matrix (NaN where none), or None if none has it."""
    rows = [getattr(x, name) for x in schedules]
    if all(r is None for r in rows):
        return None
    width = len(schedules[0].p_kw)
    return np.array(
        [
            [math.nan] * width if r is None else [math.nan if v is None else v for v in r]
            for r in rows
        ],
        dtype=np.float64,
    )


def _message(topic: str, payload: bytes, *, qos: int, retain: bool) -> Any:
    from gmqtt import Message

    return Message(topic, payload, qos=qos, retain=retain)


async def _publish_qos1(client: Any, topic: str, payload: bytes, *, retain: bool = False) -> None:
    """Publish at QoS 1, waiting while the broker's in-flight window (Receive Maximum) is full."""
    for _ in range(10_000):
        try:
            client.publish(topic, payload, qos=1, retain=retain)
            return
        except OverflowError:  # all packet ids in flight: wait for PUBACKs
            await asyncio.sleep(0.001)
    log.warning("%s: not published, the broker acknowledges nothing", topic)


async def _drain(client: Any, timeout_s: float) -> None:
    """Wait until the QoS 1 messages in flight are acknowledged (or ``timeout_s``)."""
    end = time.monotonic() + timeout_s
    storage = client._persistent_storage
    while time.monotonic() < end and not storage.is_empty:
        await asyncio.sleep(0.01)
