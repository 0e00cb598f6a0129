"""The OCPP back end (CSMS): charge points connect over websockets; a DeviceLink for the service.

:class:`OcppLink` runs a websocket server that speaks OCPP 1.6J and 2.0.1 (the charge
point offers ``ocpp1.6`` and/or ``ocpp2.0.1`` as the websocket subprotocol; 2.0.1 is
preferred). Each charge point proves who it is at the handshake with HTTP Basic
authentication (security profile 2 over TLS; profile 1, without TLS, only when allowed
explicitly); the URL names it: ``wss://host:port/ocpp/<charge point id>``.

Devices are EV chargers whose ``protocol`` is ``ocpp``: their ``gateway_id`` is the charge
point id, ``ocpp_connector`` the connector (1.6) or EVSE (2.0.1). Commands become
charging profiles (a TxProfile while a transaction runs, else a TxDefaultProfile, stack
level 2, valid until the command's ``valid_until``), schedules TxDefaultProfiles of stack
level 1 with one period per change of limit; a released command clears its profile, so
the charger returns to its schedule. Every charge point is served by its own task: one
that is slow, silent or hostile holds up only itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import ssl
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import numpy as np
import ocpp.messages
from ocpp.exceptions import OCPPError
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from gridflock.domain.messages import CommandBatch, TelemetryBatch
from gridflock.domain.ports import CommandAck, GatewayStatus, LinkReport
from gridflock.domain.schedules import ScheduleBatch
from gridflock.domain.spec import FleetSpec
from gridflock.gateways.ocpp._auth import CredentialSource, parse_basic, verify_password
from gridflock.gateways.ocpp._csms import Csms16, Csms201
from gridflock.gateways.ocpp._meter import MeterError, read_sampled
from gridflock.gateways.ocpp._profiles import (
    NOMINAL_VOLTAGE_V,
    Period,
    Profile,
    Unit,
    kw_to_limit,
    parse_iso,
    profile_to_wire,
)
from gridflock.gateways.ocpp._session import Need, Place, Session, next_departure, places_of

__all__ = ["SUBPROTOCOLS", "OcppLink", "OcppSettings"]

log = logging.getLogger("gridflock.ocpp")
#: The ``ocpp`` library logs every frame at INFO; its own logger here, quiet unless asked.
wire_log = logging.getLogger("gridflock.ocpp.messages")
if wire_log.level == logging.NOTSET:
    wire_log.setLevel(logging.WARNING)

#: Subprotocols offered, in order of preference.
SUBPROTOCOLS = ("ocpp2.0.1", "ocpp1.6")
#: Profile id of an event's profile on a connector is this plus the connector id.
EVENT_PROFILE_BASE = 1000
#: Profile id of a plan's profile on a connector is this plus the connector id.
PLAN_PROFILE_BASE = 2000
#: Stack levels: an event's profile above the plan's.
EVENT_STACK, PLAN_STACK = 2, 1
#: Largest websocket frame a charge point may send [bytes] (a meter value is < 2 KB).
MAX_FRAME_BYTES = 65_536
#: Most meter values taken from one message.
MAX_METER_VALUES = 64
#: How far a reading's time may lie ahead of the service clock / behind it [s].
FUTURE_SLACK_S, PAST_LIMIT_S = 60.0, 86_400.0
#: A reading above this multiple of the charger's rating (plus 1 kW) is refused.
RATING_SLACK = 1.5


@dataclass(frozen=True)
class OcppSettings:
    """How the CSMS listens and talks to charge points."""

    host: str = "127.0.0.1"
    port: int = 0
    """0 picks a free port (see :attr:`OcppLink.port` once started)."""
    ssl: ssl.SSLContext | None = None
    """TLS of security profile 2; ``None`` only with ``allow_insecure``."""
    allow_insecure: bool = False
    """Accept plain ws:// (security profile 1: passwords travel in clear)."""
    rate_unit: Unit = "A"
    """Unit of the limits sent: A (per phase; what every 1.6 charger takes) or W."""
    voltage_v: float = NOMINAL_VOLTAGE_V
    """Phase voltage for converting kW to A and back [V]."""
    heartbeat_s: int = 300
    response_timeout_s: float = 10.0
    """A charge point that does not answer a request within this is reported expired."""
    verify_composite: bool = True
    """After an accepted profile, ask for the composite schedule and check the limit."""
    allowed_tags: frozenset[str] | None = None
    """Id tags authorised; ``None``: any tag not blocked."""
    blocked_tags: frozenset[str] = frozenset()
    path_prefix: str = "/ocpp/"
    max_messages_per_s: float = 5.0
    """Messages a charge point may send per second on average (a charger sends one every
    few seconds); frames beyond it are dropped and counted (``rate_limited``)."""
    burst_messages: float = 50.0
    """Messages a charge point may send at once (boot, status and a backlog of meter values)."""


class OcppLink:
    """Implements :class:`gridflock.domain.ports.DeviceLink` over OCPP 1.6J and 2.0.1.

    Parameters
    ----------
    spec
        The fleet: its EV chargers with ``protocol: ocpp`` are this link's devices.
    credentials
        Looks up a charge point's password hash by its id (``None`` refuses it).
    settings
        Where to listen, TLS, units and timeouts.
    clock
        Service clock [UTC epoch s].

    """

    def __init__(
        self,
        spec: FleetSpec | None,
        credentials: CredentialSource,
        settings: OcppSettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings or OcppSettings()
        if self.settings.ssl is None and not self.settings.allow_insecure:
            raise ValueError(
                "OCPP without TLS sends the charge points' passwords in clear (security "
                "profile 1): give a TLS certificate, or allow plain ws:// explicitly"
            )
        self.credentials = credentials
        self.clock = clock
        self.heartbeat_s = self.settings.heartbeat_s
        self.places: dict[str, Place] = {}
        self._device_at: dict[tuple[str, int], Place] = {}
        self.update_fleet_places(places_of(spec))
        self.sessions: dict[str, Session] = {}
        self.port = self.settings.port
        self.counts: Counter[str] = Counter()
        self._reported: Counter[str] = Counter()
        self._readings: list[tuple[str, float, float, float, float, float]] = []
        self.needs: dict[str, Need] = {}
        """Energy need and departure of each device with a car plugged in."""
        self._acks: list[CommandAck] = []
        self._statuses: list[GatewayStatus] = []
        self._expired: list[str] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = asyncio.Event()
        self._tx_ids = itertools.count(int(clock()) % 1_000_000_000 + 1)

    # ------------------------------------------------------------------ fleet
    def update_fleet(self, spec: FleetSpec) -> None:
        """Take up a new fleet: which EV chargers are reached over OCPP, and where."""
        self.update_fleet_places(places_of(spec))

    def update_fleet_places(self, places: Mapping[str, Place]) -> None:
        """Take up the OCPP devices directly (the fleet's, or a simulator's)."""
        self.places = dict(places)
        self._device_at = {(p.cp_id, p.connector): p for p in self.places.values()}

    # ------------------------------------------------------------------ server
    @property
    def connected(self) -> bool:
        """Whether the server is listening."""
        return self._server is not None and not self._stop.is_set()

    @property
    def url(self) -> str:
        """Base URL charge points connect to (append their id)."""
        scheme = "wss" if self.settings.ssl is not None else "ws"
        return f"{scheme}://{self.settings.host}:{self.port}{self.settings.path_prefix}"

    async def start(self) -> None:
        """Start listening (``OSError`` if the port is taken)."""
        if self._server is not None:
            return
        # The library checks each message against its JSON schema in a thread of the
        # default executor; for messages of at most MAX_FRAME_BYTES the hop to the thread
        # and back costs more than the check itself (measured: bench_ocpp.py), so check
        # in the event loop.
        ocpp.messages.ASYNC_VALIDATION = False
        self._loop = asyncio.get_running_loop()
        self._server = await serve(
            self._serve_charger,
            self.settings.host,
            self.settings.port,
            subprotocols=list(SUBPROTOCOLS),  # type: ignore[arg-type]
            process_request=self._check_handshake,
            ssl=self.settings.ssl,
            max_size=MAX_FRAME_BYTES,
            ping_interval=60,
            ping_timeout=60,
        )
        self.port = int(next(iter(self._server.sockets)).getsockname()[1])
        log.info("OCPP back end listening on %s", self.url)

    async def run(self) -> None:
        """Serve charge points until :meth:`stop`."""
        await self.start()
        try:
            await self._stop.wait()
        finally:
            server, self._server = self._server, None
            if server is not None:
                server.close()
                with contextlib.suppress(Exception):
                    await server.wait_closed()
            for t in list(self._tasks):
                t.cancel()

    def stop(self) -> None:
        """End :meth:`run`."""
        self._stop.set()

    def _refuse(self, connection: ServerConnection, status: int, who: str, why: str) -> Response:
        """Log and answer a refused handshake."""
        self.counts["refused"] += 1
        log.warning("refused charge point %s from %s: %s", who, _peer(connection), why)
        response = connection.respond(status, why + "\n")
        if status == HTTPStatus.UNAUTHORIZED:
            response.headers["WWW-Authenticate"] = 'Basic realm="gridflock-ocpp"'
        return response

    def _cp_id_of(self, path: str) -> str | None:
        prefix = self.settings.path_prefix
        path = path.split("?", 1)[0]
        if not path.startswith(prefix):
            return None
        cp_id = unquote(path[len(prefix) :])
        if not cp_id or "/" in cp_id or len(cp_id) > 64 or not cp_id.isprintable():
            return None
        return cp_id

    async def _check_handshake(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        """Security profile 1/2: the URL names the charge point, Basic auth proves it."""
        cp_id = self._cp_id_of(request.path)
        if cp_id is None:
            return self._refuse(
                connection,
                HTTPStatus.NOT_FOUND,
                repr(request.path[:80]),
                f"connect to {self.settings.path_prefix}<charge point id>",
            )
        creds = parse_basic(_header(request.headers, "Authorization"))
        if creds is None:
            return self._refuse(
                connection,
                HTTPStatus.UNAUTHORIZED,
                repr(cp_id),
                "no HTTP Basic credentials: set the charge point's authorization key",
            )
        user, password = creds
        if user != cp_id:
            return self._refuse(
                connection,
                HTTPStatus.UNAUTHORIZED,
                repr(cp_id),
                f"user name {user[:64]!r} is not the charge point id in the URL",
            )
        try:
            stored = await self.credentials(cp_id)
        except Exception:
            log.exception("cannot look up the credentials of charge point %r", cp_id)
            return connection.respond(
                HTTPStatus.SERVICE_UNAVAILABLE, "credentials unavailable; retry later\n"
            )
        if stored is None:
            return self._refuse(
                connection,
                HTTPStatus.UNAUTHORIZED,
                repr(cp_id),
                "unknown charge point: provision it (POST /api/v1/gateways, kind charger)",
            )
        if not verify_password(password, stored):
            return self._refuse(connection, HTTPStatus.UNAUTHORIZED, repr(cp_id), "wrong password")
        return None

    async def _serve_charger(self, ws: ServerConnection) -> None:
        """One charge point's connection: route its messages until it leaves."""
        assert ws.request is not None
        cp_id = self._cp_id_of(ws.request.path)
        version = ws.subprotocol
        if cp_id is None or version not in SUBPROTOCOLS:
            await ws.close(1002, "an OCPP subprotocol is required: ocpp1.6 or ocpp2.0.1")
            return
        cls = Csms16 if version == "ocpp1.6" else Csms201
        cp = cls(cp_id, ws, self, self.settings.response_timeout_s, wire_log)
        old = self.sessions.get(cp_id)
        if old is not None:  # the charge point reconnected: the new connection wins
            log.info("charge point %r reconnected; closing its previous connection", cp_id)
            with contextlib.suppress(Exception):
                await old.ws.close(1000, "replaced by a new connection")
        session = Session(cp_id, version, cp, ws)
        self.sessions[cp_id] = session
        self._statuses.append(GatewayStatus(cp_id, "online", self.clock()))
        self.counts["connects"] += 1
        tokens, last = self.settings.burst_messages, time.monotonic()
        try:
            async for raw in ws:
                now_m = time.monotonic()
                rate, burst = self.settings.max_messages_per_s, self.settings.burst_messages
                tokens, last = min(burst, tokens + (now_m - last) * rate), now_m
                if tokens < 1.0:  # flooding: drop the frame, keep serving the others
                    self.counts["rejected:rate_limited"] += 1
                    continue
                tokens -= 1.0
                try:
                    await cp.route_message(raw)
                except ConnectionClosed:
                    raise
                except Exception as e:  # a hostile frame must not end the others' service
                    self.counts["protocol_errors"] += 1
                    log.warning("charge point %r sent a message that failed: %s", cp_id, e)
        except ConnectionClosed:
            pass
        finally:
            if self.sessions.get(cp_id) is session:
                del self.sessions[cp_id]
                self._statuses.append(GatewayStatus(cp_id, "offline", self.clock()))

    # ------------------------------------------------------------------ Sink (from chargers)
    def now(self) -> float:
        """The service clock [UTC epoch s]."""
        return self.clock()

    def booted(self, cp_id: str, vendor: str, model: str) -> None:
        """Log the charge point's boot."""
        self.counts["boots"] += 1
        log.info("charge point %r booted (%s %s)", cp_id, vendor[:40], model[:40])

    def connector_status(self, cp_id: str, connector: int, status: str) -> None:
        """Remember the connector's state."""
        s = self.sessions.get(cp_id)
        if s is not None and len(s.status) < 64:
            s.status[connector] = status

    def authorize(self, cp_id: str, id_tag: str) -> str:
        """Local policy: a blocked tag is Blocked, one not on the allowed list Invalid."""
        st = self.settings
        if id_tag in st.blocked_tags:
            return "Blocked"
        if st.allowed_tags is not None and id_tag not in st.allowed_tags:
            return "Invalid"
        return "Accepted"

    def new_transaction_id(self, cp_id: str) -> int:
        """A fresh transaction id for OCPP 1.6."""
        return next(self._tx_ids) % 2_147_483_647

    def transaction_started(self, cp_id: str, connector: int, tx_id: str) -> None:
        """Note the running transaction; assume the fleet's typical session until told."""
        s = self.sessions.get(cp_id)
        if s is None or (connector not in s.tx and len(s.tx) >= 64):
            return
        new = s.tx.get(connector) != tx_id
        s.tx[connector] = tx_id
        place = self._device_at.get((cp_id, connector))
        if place is not None and (new or place.device_id not in self.needs):
            now = self.clock()
            self.needs[place.device_id] = Need(place.session_kwh, next_departure(place, now), now)

    def transaction_ended(self, cp_id: str, tx_id: str) -> None:
        """Forget the transaction: the car has left (or is full)."""
        s = self.sessions.get(cp_id)
        if s is not None:
            for c in [c for c, t in s.tx.items() if t == tx_id]:
                del s.tx[c]
                place = self._device_at.get((cp_id, c))
                if place is not None:
                    self.needs.pop(place.device_id, None)

    def charging_needs(
        self, cp_id: str, connector: int, e_need_kwh: float | None, departure_ts: float | None
    ) -> None:
        """The car's own figures replace the assumed ones (each where given and sane)."""
        place = self._device_at.get((cp_id, connector))
        if place is None:
            return
        now = self.clock()
        need = self.needs.setdefault(
            place.device_id, Need(place.session_kwh, next_departure(place, now), now)
        )
        if e_need_kwh is not None and 0.0 <= e_need_kwh <= 1000.0:
            need.e_need_kwh = e_need_kwh
            need.exact = True
        if departure_ts is not None and now < departure_ts < now + 7 * 86400.0:
            need.departure_ts = departure_ts

    def meter_values(self, cp_id: str, connector: int, values: Sequence[Mapping[str, Any]]) -> None:
        """Meter values into readings; each bad one refused and counted, not the rest."""
        self.counts["messages"] += 1
        place = self._device_at.get((cp_id, connector))
        if place is None:
            self.counts["rejected:unknown_device"] += len(values)
            return
        if len(values) > MAX_METER_VALUES:
            self.counts["rejected:too_many_values"] += len(values)
            return
        now = self.clock()
        volts = self.settings.voltage_v
        for mv in values:
            ts = parse_iso(mv.get("timestamp"))
            if ts is None or not now - PAST_LIMIT_S <= ts <= now + FUTURE_SLACK_S:
                self.counts["rejected:bad_ts"] += 1
                continue
            try:
                r = read_sampled(mv.get("sampled_value") or [], place.phases, volts)
            except MeterError as e:
                self.counts[f"rejected:{e.reason}"] += 1
                continue
            if math.isnan(r.p_kw) and math.isnan(r.soc):
                continue  # energy registers only: nothing the fleet state takes
            if abs(r.p_kw) > RATING_SLACK * place.p_max_kw + 1.0:
                self.counts["rejected:out_of_range"] += 1
                continue
            e_need, departure = math.nan, math.nan
            need = self.needs.get(place.device_id)
            if need is not None:
                if ts > need.last_ts:  # energy charged since the last reading [kWh]
                    charged = max(-need.last_p_kw, 0.0) * (ts - need.last_ts) / 3600.0
                    need.e_need_kwh = max(need.e_need_kwh - charged, 0.0)
                    need.last_ts = ts
                if math.isfinite(r.p_kw):
                    need.last_p_kw = r.p_kw
                e_need, departure = need.e_need_kwh, need.departure_ts
            self._readings.append((place.device_id, ts, r.p_kw, r.soc, e_need, departure))

    # ------------------------------------------------------------------ DeviceLink
    def receive(self) -> list[TelemetryBatch]:
        """The readings taken since the last call, as one batch."""
        if not self._readings:
            return []
        rows, self._readings = self._readings, []
        ids, ts, p, soc, need, dep = zip(*rows, strict=True)
        nan = np.full(len(rows), np.nan)
        return [
            TelemetryBatch(
                np.array(ids, dtype=object),
                np.array(ts, dtype=np.float64),
                np.array(p, dtype=np.float64),
                np.array(soc, dtype=np.float64),
                nan,
                {
                    "e_need_kwh": np.array(need, dtype=np.float64),
                    "departure_ts": np.array(dep, dtype=np.float64),
                },
            )
        ]

    def take_report(self) -> LinkReport:
        """Acks, statuses, expiries and counters since the last call."""
        delta = self.counts - self._reported
        self._reported = self.counts.copy()
        rejected = {
            k.split(":", 1)[1]: v for k, v in delta.items() if k.startswith("rejected:") and v
        }
        report = LinkReport(
            int(delta.get("messages", 0)), rejected, self._acks, self._statuses, self._expired
        )
        self._acks, self._statuses, self._expired = [], [], []
        return report

    def send(self, commands: CommandBatch) -> None:
        """Each command as a charging profile (or its release), one task per command."""
        now = self.clock()
        ids = commands.device_ids.tolist()
        for i, dev in enumerate(ids):
            place = self.places.get(dev)
            if place is None:
                continue  # not an OCPP device: another link's
            cid = str(commands.command_ids[i])
            session = self._session_or_reject(place, cid)
            if session is None:
                continue
            until = float(commands.valid_until[i])
            if until <= now:
                self._reject(place, cid, "expired: valid_until had passed when it was sent")
                continue
            p = float(commands.p_setpoint_kw[i])
            if math.isnan(p):
                self._spawn(self._release(session, place, cid))
                continue
            if p > 1e-6:
                self._reject(
                    place,
                    cid,
                    f"out_of_range: {p:g} kW asks the charger to feed power back; it can only "
                    "charge (setpoints are <= 0 kW)",
                )
                continue
            limit_kw = min(-p, place.p_max_kw)
            tx = session.tx.get(place.connector)
            profile = Profile(
                id=EVENT_PROFILE_BASE + place.connector,
                stack_level=EVENT_STACK,
                purpose="TxProfile" if tx is not None else "TxDefaultProfile",
                unit=self.settings.rate_unit,
                periods=(Period(0, round(self._limit(limit_kw, place), 1)),),
                start=now,
                valid_to=until,
                transaction_id=tx,
            )
            self._spawn(self._set_profile(session, place, cid, profile, verify=True))

    def send_schedules(self, schedules: ScheduleBatch) -> None:
        """Each schedule as a TxDefaultProfile of the plan's stack level, one period per change."""
        ids = schedules.device_ids.tolist()
        if not any(d in self.places for d in ids):
            return
        now = self.clock()
        step = schedules.step_s
        for i, dev in enumerate(ids):
            place = self.places.get(dev)
            if place is None:
                continue
            sid = str(schedules.schedule_ids[i])
            session = self._session_or_reject(place, sid)
            if session is None:
                continue
            if schedules.valid_until <= now:
                self._reject(place, sid, "expired: valid_until had passed when it was sent")
                continue
            p = schedules.p_kw[i]
            cap = np.full(p.shape, np.nan) if schedules.p_min_kw is None else schedules.p_min_kw[i]
            # charging magnitude per slot: the setpoint, else the import cap, else the rating
            want = np.where(np.isfinite(p), -p, np.where(np.isfinite(cap), -cap, place.p_max_kw))
            want = np.clip(want, 0.0, place.p_max_kw)
            periods: list[Period] = []
            for k, kw in enumerate(want.tolist()):
                lim = round(self._limit(kw, place), 1)
                if not periods or periods[-1].limit != lim:
                    periods.append(Period(int(k * step), lim))
            profile = Profile(
                id=PLAN_PROFILE_BASE + place.connector,
                stack_level=PLAN_STACK,
                purpose="TxDefaultProfile",
                unit=self.settings.rate_unit,
                periods=tuple(periods),
                start=schedules.start,
                valid_to=schedules.valid_until,
                duration_s=math.ceil(schedules.valid_until - schedules.start),
            )
            self._spawn(self._set_profile(session, place, sid, profile, verify=False))

    # ------------------------------------------------------------------ requests to chargers
    def _limit(self, kw: float, place: Place) -> float:
        return kw_to_limit(kw, self.settings.rate_unit, place.phases, self.settings.voltage_v)

    def _session_or_reject(self, place: Place, cid: str) -> Session | None:
        session = self.sessions.get(place.cp_id)
        if session is None:
            self._reject(
                place, cid, f"charger_offline: charge point {place.cp_id!r} is not connected"
            )
        return session

    def _reject(self, place: Place, cid: str, reason: str) -> None:
        self._acks.append(CommandAck(place.cp_id, cid, place.device_id, "rejected", reason))

    def _accept(self, place: Place, cid: str) -> None:
        self._acks.append(CommandAck(place.cp_id, cid, place.device_id, "accepted"))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` on the link's loop (from it or from another thread)."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not None:
            task = running.create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif self._loop is not None:
            asyncio.run_coroutine_threadsafe(coro, self._loop)
        else:
            coro.close()

    async def _call(self, session: Session, place: Place, cid: str, payload: Any) -> Any | None:
        """One request; on no answer the command expires, on an error it is rejected."""
        try:
            return await session.cp.call(payload, suppress=False)
        except TimeoutError:
            self.counts["expired"] += 1
            self._expired.append(cid)
        except OCPPError as e:
            self._reject(place, cid, f"call_error: the charger answered {type(e).__name__}: {e}")
        except ConnectionClosed:
            self._reject(place, cid, f"charger_offline: {place.cp_id!r} disconnected")
        except Exception as e:  # a reply the library cannot read
            log.warning("charge point %r: request failed: %s", place.cp_id, e)
            self._reject(place, cid, f"bad_reply: {str(e)[:200]}")
        return None

    async def _set_profile(
        self, session: Session, place: Place, cid: str, profile: Profile, *, verify: bool
    ) -> None:
        wire = profile_to_wire(profile, session.version)
        payload: Any
        if session.version == "ocpp1.6":
            payload = call16.SetChargingProfile(
                connector_id=place.connector, cs_charging_profiles=wire
            )
        else:
            payload = call201.SetChargingProfile(evse_id=place.connector, charging_profile=wire)
        self.counts["profiles_sent"] += 1
        res = await self._call(session, place, cid, payload)
        if res is None:
            return
        if res.status != "Accepted":
            info = getattr(res, "status_info", None) or {}
            why = f" ({info.get('reason_code')})" if info.get("reason_code") else ""
            self._reject(place, cid, f"charger_rejected: SetChargingProfile {res.status}{why}")
            return
        if verify and self.settings.verify_composite:
            problem = await self._verify(session, place, profile.periods[0].limit)
            if problem is not None:
                self._reject(place, cid, problem)
                return
        self._accept(place, cid)

    async def _verify(self, session: Session, place: Place, expected: float) -> str | None:
        """Ask for the composite schedule; why it does not keep ``expected``, or None."""
        unit = self.settings.rate_unit
        payload: Any
        if session.version == "ocpp1.6":
            payload = call16.GetCompositeSchedule(
                connector_id=place.connector, duration=60, charging_rate_unit=unit
            )
        else:
            payload = call201.GetCompositeSchedule(
                duration=60, evse_id=place.connector, charging_rate_unit=unit
            )
        try:
            res = await session.cp.call(payload, suppress=False)
        except Exception as e:  # the profile was accepted: report, do not fail the command
            self.counts["composite_unverified"] += 1
            log.info("charge point %r: no composite schedule: %s", place.cp_id, e)
            return None
        sched = getattr(res, "charging_schedule", None) or getattr(res, "schedule", None)
        if res.status != "Accepted" or not isinstance(sched, dict):
            self.counts["composite_unverified"] += 1
            return None
        periods = sched.get("charging_schedule_period") or []
        if not periods:
            return None
        try:
            got = float(periods[0]["limit"])
        except (KeyError, TypeError, ValueError):
            return "bad_reply: the composite schedule has no readable limit"
        if got > expected * 1.01 + 0.5:
            return (
                f"composite_mismatch: the charger's composite schedule allows {got:g} {unit}, "
                f"not the {expected:g} {unit} sent"
            )
        return None

    async def _release(self, session: Session, place: Place, cid: str) -> None:
        """Clear the event's profile: the charger goes back to its schedule or its own control."""
        pid = EVENT_PROFILE_BASE + place.connector
        payload: Any = (
            call16.ClearChargingProfile(id=pid)
            if session.version == "ocpp1.6"
            else call201.ClearChargingProfile(charging_profile_id=pid)
        )
        res = await self._call(session, place, cid, payload)
        if res is None:
            return
        # Unknown: there was no profile to clear, which is what a release wants
        self._accept(place, cid)


def _header(headers: Headers, name: str) -> str | None:
    try:
        return headers.get(name)
    except Exception:  # several values: refuse rather than guess
        return None


def _peer(connection: ServerConnection) -> str:
    try:
        host, port = connection.remote_address[:2]
    except Exception:
        return "?"
    return f"{host}:{port}"
