"""An API/dashboard replica (role ``api``): the REST API and dashboard without the control loop.

Reads come from the read model the leader publishes on the bus after each cycle
(:mod:`gridflock.service.replication`), and from the store for what lives there (telemetry,
audit, API keys); a read the read model does not carry raises :class:`LeaderOnlyError` and is
forwarded. Writes are forwarded to whichever process leads, over bus request/reply
(:class:`ForwardWrites`), with the caller this replica authenticated; the leader's answer
(status, body) comes back as is. No leader within ``forward_timeout_s``: 503 with
``Retry-After``. See docs/replicas.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from http import HTTPStatus
from typing import Any

import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import Response
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gridflock import __version__
from gridflock.api.auth import key_from_headers, principal_from_request
from gridflock.api.errors import ProblemError, problem_response
from gridflock.api.runtime import EventView
from gridflock.config import Settings
from gridflock.domain.auth import Principal
from gridflock.domain.envelopes import Envelope
from gridflock.domain.errors import InvalidError, UnavailableError, clip
from gridflock.domain.events import Event, EventSource, EventStatus
from gridflock.domain.events import Scope as EventScope
from gridflock.domain.spec import FleetSpec
from gridflock.fleet import GROUP_BY
from gridflock.fleet.state import FleetState
from gridflock.mv.statement import Statement
from gridflock.mv.value import YearValue
from gridflock.service.bus import (
    KV_BUCKET,
    KV_KEY,
    LEADER_SUBJECT,
    READMODEL_SUBJECT,
    BusFormatError,
    connect,
    decode,
)
from gridflock.service.readmodel import GROUP_HISTORY_BY, HISTORY_S, group_frame, kind_frame
from gridflock.service.replication import envelope_from_json, view_from_json
from gridflock.store import Store
from gridflock.store.errors import DatabaseUnavailableError, is_outage
from gridflock.store.records import (
    AutopilotDecision,
    AutopilotProposal,
    IssuedForecast,
    SupportWindowRecord,
)

__all__ = ["ForwardWrites", "Forwarder", "LeaderOnlyError", "ReplicaRuntime", "install_replica"]

log = logging.getLogger("gridflock.replica")

_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
API_PREFIX = "/api/v1/"
#: Seconds a replica waits for the leader's answer before a 503.
FORWARD_TIMEOUT_S = 10.0
#: How long to wait before retrying when no leader answers [s] (``Retry-After``).
RETRY_AFTER_S = 2
#: A read model older than this many control intervals makes the replica ``degraded``.
STALE_INTERVALS = 5


class LeaderOnlyError(Exception):
    """A read the replica's read model does not carry: the request goes to the leader."""


class Forwarder:
    """Sends one HTTP request to the leader over the bus and returns its answer."""

    def __init__(self, replica: ReplicaRuntime, timeout_s: float = FORWARD_TIMEOUT_S) -> None:
        self.replica = replica
        self.timeout_s = timeout_s

    async def forward(
        self,
        request_path: str,
        method: str,
        query: str,
        content_type: str,
        body: bytes,
        principal: Principal | None,
    ) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body of the leader's answer (a 503 problem when none)."""
        r = self.replica
        headers = {
            "GF-Method": method,
            "GF-Path": request_path,
            "GF-Query": query,
            "Content-Type": content_type,
            "GF-Replica": r.name,
        }
        if principal is not None:
            headers["GF-Principal"] = json.dumps(
                {"key_id": principal.key_id, "name": principal.name, "role": principal.role.value}
            )
        nc = r.nc
        if nc is not None and nc.is_connected and len(body) > nc.max_payload:
            r.forwarded.labels("too_large").inc()
            return _problem(
                413,
                request_path,
                f"the request body ({len(body):,} bytes) is larger than the bus carries "
                f"({nc.max_payload:,} bytes): send it to the leader's own address, or raise "
                "max_payload in the NATS configuration",
            )
        try:
            if nc is None or not nc.is_connected:
                raise ConnectionError("the bus is not connected")
            msg = await nc.request(LEADER_SUBJECT, body, timeout=self.timeout_s, headers=headers)
        except NoRespondersError:
            r.forwarded.labels("no_leader").inc()
            return self._unavailable(
                request_path,
                "no leader is serving right now, so nothing was done; retry in a few seconds",
            )
        except Exception as e:  # timed out, or the bus is away
            r.forwarded.labels("timeout" if "imeout" in type(e).__name__ else "bus_down").inc()
            return self._unavailable(
                request_path,
                f"the leader did not answer within {self.timeout_s:g} s ({type(e).__name__}); "
                "the request may or may not have been carried out: check (e.g. list the events) "
                "before retrying",
            )
        h = msg.headers or {}
        r.forwarded.labels("answered").inc()
        r.leader_seen = h.get("GF-Leader", r.leader_seen)
        out = {k[5:]: v for k, v in h.items() if k.startswith("GF-H-")}
        out["x-gridflock-leader"] = h.get("GF-Leader", "")
        return int(h.get("GF-Status", "502")), out, msg.data

    @staticmethod
    def _unavailable(path: str, detail: str) -> tuple[int, dict[str, str], bytes]:
        status, headers, body = _problem(503, path, detail)
        return status, {**headers, "retry-after": str(RETRY_AFTER_S)}, body


def _problem(status: int, path: str, detail: str) -> tuple[int, dict[str, str], bytes]:
    """A problem document (RFC 9457) as status, headers and body."""
    slug = {413: "content-too-large", 503: "unavailable"}.get(status)
    body = {
        "type": f"https://gridflock.dev/problems/{slug}" if slug else "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": path,
    }
    return status, {"content-type": "application/problem+json"}, json.dumps(body).encode()


def _response(status: int, headers: dict[str, str], body: bytes) -> Response:
    media = headers.pop("content-type", None)
    return Response(body, status_code=status, headers=headers, media_type=media)


class ForwardWrites:
    """ASGI middleware: every state-changing request under ``/api/v1`` goes to the leader."""

    def __init__(
        self, app: ASGIApp, forwarder: Forwarder, max_body_bytes: int, max_import_bytes: int
    ) -> None:
        self.app = app
        self.forwarder = forwarder
        self.max_body_bytes = max_body_bytes
        self.max_import_bytes = max_import_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Forward a write (body read in full, caller authenticated here); pass the rest on."""
        if (
            scope["type"] != "http"
            or scope["method"] in _SAFE
            or not scope["path"].startswith(API_PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        limit = (
            self.max_import_bytes
            if scope["path"] == API_PREFIX + "fleet/import"
            else self.max_body_bytes
        )
        chunks: list[bytes] = []
        size = 0
        while True:
            message: Message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await problem_response(
                    request, 413, f"the request body is larger than {limit:,} bytes"
                )(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        try:
            principal: Principal | None = await principal_from_request(
                request, key_from_headers(request)
            )
        except ProblemError as e:
            if e.status != 401:  # CSRF refusal: answered here, as the leader would
                await problem_response(request, e.status, e.detail)(scope, receive, send)
                return
            principal = None  # the leader answers 401 as for any request without a key
        except DatabaseUnavailableError as e:
            await problem_response(request, 503, str(e), headers={"Retry-After": "5"})(
                scope, receive, send
            )
            return
        status, headers, body = await self.forwarder.forward(
            scope["path"],
            scope["method"],
            scope.get("query_string", b"").decode("latin-1"),
            request.headers.get("content-type", ""),
            b"".join(chunks),
            principal,
        )
        await _response(status, headers, body)(scope, receive, send)


async def _forward_read(request: Request, exc: Exception) -> Response:
    """Forward a read the replica cannot answer from its read model."""
    forwarder: Forwarder = request.app.state.forwarder
    key = key_from_headers(request) or request.query_params.get("api_key") or None
    try:
        principal: Principal | None = await principal_from_request(request, key)
    except ProblemError:
        principal = None
    status, headers, body = await forwarder.forward(
        request.url.path,
        request.method,
        request.scope.get("query_string", b"").decode("latin-1"),
        request.headers.get("content-type", ""),
        b"",
        principal,
    )
    return _response(status, headers, body)


def install_replica(
    app: FastAPI, replica: ReplicaRuntime, max_body_bytes: int, max_import_bytes: int
) -> None:
    """Route writes, and reads the read model lacks, to the leader.

    Bodies are bounded as the API bounds them (``max_import_bytes`` for a fleet import,
    ``max_body_bytes`` for the rest): larger ones get 413 before anything is forwarded.
    """
    forwarder = Forwarder(replica)
    app.state.forwarder = forwarder
    app.add_exception_handler(LeaderOnlyError, _forward_read)
    app.add_middleware(
        ForwardWrites,
        forwarder=forwarder,
        max_body_bytes=max_body_bytes,
        max_import_bytes=max_import_bytes,
    )


class _Envelopes:
    """The envelopes of the read model (writes go to the leader)."""

    def __init__(self, replica: ReplicaRuntime) -> None:
        self.replica = replica

    def find(self, active_at: float | None = None) -> list[Envelope]:
        out = [envelope_from_json(d) for d in self.replica.document()["envelopes"]]
        if active_at is not None:
            out = [e for e in out if e.start <= active_at < e.end]
        return out

    async def put(self, envelopes: Any, principal: Principal) -> int:
        raise LeaderOnlyError

    async def delete(self, ids: Any, principal: Principal) -> list[str]:
        raise LeaderOnlyError

    def holds(self) -> dict[str, Any]:
        """Held by the leader (its dispatcher runs the hold)."""
        raise LeaderOnlyError


class _Forecasts:
    """Forecasts are read from the leader (its memory holds the per-site issues)."""

    @property
    def groups(self) -> dict[str, list[str]]:
        """Held by the leader."""
        raise LeaderOnlyError

    @groups.setter
    def groups(self, value: dict[str, list[str]]) -> None:
        raise LeaderOnlyError

    def status(self) -> dict[str, Any]:
        raise LeaderOnlyError

    def quantities(self) -> tuple[str, ...]:
        raise LeaderOnlyError

    def latest(self, *args: Any, **kwargs: Any) -> list[IssuedForecast]:
        raise LeaderOnlyError

    def site(self, horizon: str, quantity: str, site_id: str) -> IssuedForecast | None:
        raise LeaderOnlyError

    def actuals(self, forecast: IssuedForecast) -> Any:
        raise LeaderOnlyError

    def support(self, horizon: str | None = None) -> list[SupportWindowRecord]:
        raise LeaderOnlyError

    def error_ar(self, quantity: str, horizon: str, kind: str) -> list[float] | None:
        raise LeaderOnlyError

    def request_retrain(self) -> bool:
        raise LeaderOnlyError


class ReplicaRuntime:
    """The API's ``Runtime`` over the bus's read model and the store (role ``api``)."""

    leading = False

    def __init__(self, settings: Settings, store: Store, name: str) -> None:
        self.settings = settings
        self._store = store
        self.name = name
        self.nc: Client | None = None
        self.leader_seen: str | None = None
        self._doc: dict[str, Any] | None = None
        self._received = 0.0  # monotonic time of the last document
        self._stop = asyncio.Event()
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._kinds: list[str] = []
        self._history: deque[tuple[float, list[float]]] = deque(
            maxlen=int(HISTORY_S / settings.control_interval_s) + 1
        )
        self._group_history: deque[tuple[float, dict[str, list[list[Any]]]]] = deque(
            maxlen=int(HISTORY_S / 60.0) + 1
        )
        self._since: float | None = None  # first cycle time this replica saw
        self._verified: dict[str, Principal] = {}
        self.gaps = 0
        self.lag_s: float | None = None  # arrival − the leader's sent_at, last document [s]
        self.doc_bytes = 0  # size of the last document on the bus (compressed) [bytes]
        r = self.registry = CollectorRegistry()
        self.forwarded = Counter(
            "gridflock_replica_forwarded",
            "Requests forwarded to the leader, by outcome",
            ["outcome"],
            registry=r,
        )
        self._age = Gauge(
            "gridflock_replica_readmodel_age_seconds", "Age of the read model [s]", registry=r
        )
        self._seq = Gauge("gridflock_replica_readmodel_seq", "Read-model sequence", registry=r)
        self.documents = Counter(
            "gridflock_replica_documents", "Read-model documents received", registry=r
        )

    # ------------------------------------------------------------------ bus
    async def run(self) -> None:
        """Follow the read model on the bus until :meth:`stop`."""
        assert self.settings.bus_url is not None
        self.nc = await connect(self.settings.bus_url, f"gridflock-api-{self.name}", self._catch_up)
        await self.nc.subscribe(READMODEL_SUBJECT, cb=self._on_document)
        await self._catch_up()
        try:
            await self._stop.wait()
        finally:
            with contextlib.suppress(Exception):
                await self.nc.drain()

    def stop(self) -> None:
        """Ask :meth:`run` to return."""
        self._stop.set()

    async def _catch_up(self) -> None:
        """Take the latest document kept in the bus's key-value (at start, on reconnect)."""
        if self.nc is None:
            return
        try:
            kv = await self.nc.jetstream(timeout=2).key_value(KV_BUCKET)
            entry = await kv.get(KV_KEY)
        except Exception as e:  # no leader yet, or JetStream away: wait for the next cycle
            log.info("no read model in the bus key-value yet (%r)", e)
            return
        if entry.value:
            self.take(entry.value)

    async def _on_document(self, msg: Msg) -> None:
        self.take(msg.data)

    def take(self, data: bytes) -> None:
        """Adopt a read-model document (an older one of the same leader is ignored)."""
        try:
            doc = decode(data)
        except BusFormatError as e:
            log.error("read model refused: %s", e)
            return
        old = self._doc
        if old is not None and old["leader"] == doc["leader"]:
            if doc["seq"] <= old["seq"]:
                return
            if doc["seq"] != old["seq"] + 1:
                self.gaps += 1
        self._doc = doc
        self._received = time.monotonic()
        self.lag_s = time.time() - float(doc["sent_at"])
        self.doc_bytes = len(data)
        self.leader_seen = doc["leader"]
        self.documents.inc()
        if self._since is None:
            self._since = doc["ts"]
        self._kinds = doc["kinds"]
        hist = doc.get("history")
        if hist is not None and (not self._history or hist[0] > self._history[-1][0]):
            self._history.append((hist[0], hist[1]))
        ghist = doc.get("group_history")
        if ghist is not None and (not self._group_history or ghist[0] > self._group_history[-1][0]):
            self._group_history.append((ghist[0], ghist[1]))
        self._publish(doc)

    def _publish(self, doc: dict[str, Any]) -> None:
        if not self._subscribers:
            return
        update = {
            "ts": doc["ts"],
            "fleet": {k: v for k, v in doc["fleet"].items() if k not in ("by_kind", "by_protocol")},
            "events": [
                {k: e[k] for k in ("id", "status", "target_kw", "delivered_kw", "delivered_pct")}
                for e in doc["events"]
                if e["status"] == EventStatus.ACTIVE.value
            ],
        }
        for q in list(self._subscribers):
            if q.full():
                q.get_nowait()
            q.put_nowait(update)

    def document(self) -> dict[str, Any]:
        """The latest read model (``UnavailableError`` before the first)."""
        if self._doc is None:
            raise UnavailableError(
                "this API replica has not received the read model from a leader yet; retry "
                "in a few seconds (its health says which leader it last heard)"
            )
        return self._doc

    def age_s(self) -> float | None:
        """Seconds since the last document arrived (None: none yet)."""
        return None if self._doc is None else time.monotonic() - self._received

    # ------------------------------------------------------------------ Runtime protocol
    @property
    def state(self) -> FleetState:
        """The live fleet state lives on the leader."""
        raise LeaderOnlyError

    @property
    def spec(self) -> FleetSpec:
        """The fleet as provisioned: asked of the leader (it may change by import)."""
        raise LeaderOnlyError

    @property
    def store(self) -> Store:
        """The shared database."""
        return self._store

    def now(self) -> float:
        """The wall clock (UTC epoch s)."""
        return time.time()

    @property
    def envelopes(self) -> _Envelopes:
        """The envelopes of the read model."""
        return _Envelopes(self)

    @property
    def forecasts(self) -> _Forecasts:
        """Forecasts, from the leader."""
        return _Forecasts()

    def authenticate(self, api_key: str) -> Principal | None:
        """The caller behind ``api_key`` from the store's API keys.

        During a database outage the keys confirmed since this replica started still work.
        """
        digest = hashlib.sha256(api_key.encode()).hexdigest()
        try:
            principal = self._store.authenticate(api_key)
        except Exception as e:
            if not is_outage(e):
                raise
            known = self._verified.get(digest)
            if known is not None:
                return known
            raise DatabaseUnavailableError(
                "the database is unavailable, so this API key cannot be checked; try again shortly"
            ) from e
        if principal is None:
            self._verified.pop(digest, None)
        elif len(self._verified) < 10_000:
            self._verified[digest] = principal
        return principal

    async def import_fleet(self, spec: FleetSpec, principal: Principal) -> None:
        """Forwarded (a write)."""
        raise LeaderOnlyError

    async def provision_gateway(
        self,
        gateway_id: str,
        *,
        kind: str,
        site_id: str | None,
        groups: list[str],
        principal: Principal,
    ) -> str:
        """Forwarded (a write)."""
        raise LeaderOnlyError

    def metrics(self) -> bytes:
        """The replica's own metrics: read-model age and sequence, forwarded requests."""
        age = self.age_s()
        self._age.set(float("nan") if age is None else age)
        self._seq.set(float("nan") if self._doc is None else self._doc["seq"])
        return generate_latest(self.registry)

    def health(self) -> dict[str, Any]:
        """Role, read-model age, the leader last heard, bus and the leader's own health."""
        age = self.age_s()
        interval = self.settings.control_interval_s
        bus = "connected" if self.nc is not None and self.nc.is_connected else "disconnected"
        if age is None:
            read_model = "none yet"
        elif age > STALE_INTERVALS * max(interval, 1.0):
            read_model = "stale"
        else:
            read_model = "ok"
        parts = {"bus": "ok" if bus == "connected" else "unreachable", "read_model": read_model}
        degraded = [k for k, v in parts.items() if v != "ok"]
        doc = self._doc
        return {
            "status": "degraded" if degraded else "ok",
            "degraded": degraded,
            "parts": parts,
            "role": "api",
            "name": self.name,
            "version": __version__,
            "bus": bus,
            "leader": self.leader_seen,
            "read_model_age_s": None if age is None else round(age, 3),
            "read_model_seq": None if doc is None else doc["seq"],
            "read_model_gaps": self.gaps,
            "read_model_lag_s": None if self.lag_s is None else round(self.lag_s, 4),
            "read_model_bytes": self.doc_bytes,
            "leader_health": None if doc is None else doc["health"],
        }

    def fleet_summary(self) -> dict[str, Any]:
        """The leader's fleet summary of its last cycle, with the document's sequence."""
        doc = self.document()
        return {**doc["fleet"], "seq": doc["seq"]}

    def flexibility(self, duration_h: float, by: str, scope: str = "fleet") -> pd.DataFrame:
        """The whole fleet's flexibility, from the read model; anything else is forwarded.

        For the leader's ``flex_duration_h`` and the groupings the document carries
        (``replication.FLEX_BY``).
        """
        doc = self.document()
        if scope.strip() not in ("", "fleet") or duration_h != doc["flex_duration_h"]:
            raise LeaderOnlyError
        if by not in GROUP_BY:
            raise InvalidError(f"by must be one of {', '.join(GROUP_BY)}, got {clip(by)!r}")
        if by not in doc["flexibility"]:  # by site: not carried, the leader answers
            raise LeaderOnlyError
        return pd.DataFrame(doc["flexibility"][by])

    def _covered(self, start: float) -> bool:
        """Whether this replica's histories go back to ``start`` (else the leader answers)."""
        interval = self.settings.control_interval_s
        return self._since is not None and start >= self._since - interval

    def fleet_history(self, start: float, end: float) -> pd.DataFrame:
        """Fleet power by kind from the increments received (older ranges: forwarded)."""
        self.document()
        if not self._covered(start):
            raise LeaderOnlyError
        kinds = self._kinds
        rows = [(ts, *v) for ts, v in self._history if start <= ts < end and len(v) == len(kinds)]
        return kind_frame(rows, kinds)

    def group_history(self, start: float, end: float, by: str) -> pd.DataFrame:
        """Power by group, one sample a minute (older ranges: forwarded)."""
        if by not in GROUP_HISTORY_BY:
            raise InvalidError(f"by must be one of {', '.join(GROUP_HISTORY_BY)}, got {clip(by)!r}")
        self.document()
        if not self._covered(start - 60.0):
            raise LeaderOnlyError
        return group_frame(
            [(ts, v[by][0], v[by][1]) for ts, v in self._group_history if start <= ts < end]
        )

    async def create_event(
        self,
        target_kw: float,
        start: float | None,
        duration_s: float,
        scope: EventScope,
        principal: Principal,
        source: EventSource = EventSource.OPERATOR,
        *,
        priority: int = 50,
        allow_partial: bool = False,
    ) -> Event:
        """Forwarded (a write)."""
        raise LeaderOnlyError

    def available_kw(
        self, scope: EventScope, start: float | None, duration_s: float, up: bool
    ) -> float:
        """Needs the live fleet: forwarded."""
        raise LeaderOnlyError

    async def cancel_event(self, event_id: str, principal: Principal) -> Event:
        """Forwarded (a write)."""
        raise LeaderOnlyError

    def events(self) -> list[EventView]:
        """The events of the read model, newest first."""
        return [view_from_json(d) for d in self.document()["events"]]

    def event(self, event_id: str) -> EventView:
        """One event of the read model; one it does not carry is asked of the leader."""
        for d in self.document()["events"]:
            if d["id"] == event_id:
                return view_from_json(d)
        raise LeaderOnlyError

    def event_series(self, event_id: str) -> pd.DataFrame:
        """Forwarded: the leader holds each event's samples."""
        raise LeaderOnlyError

    def event_statement(self, event_id: str, method: str | None = None) -> Statement:
        """Forwarded: settlement runs on the leader."""
        raise LeaderOnlyError

    def yearly_value(self, year: int) -> YearValue:
        """Forwarded: settlement runs on the leader."""
        raise LeaderOnlyError

    async def updates(self) -> AsyncIterator[dict[str, Any]]:
        """Live updates, one per read-model document (slow readers skip documents)."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=8)
        self._subscribers.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.discard(queue)

    def openadr_status(self) -> dict[str, Any]:
        """Forwarded."""
        raise LeaderOnlyError

    async def push_grid_settings(
        self,
        product: str | None,
        deadband_hz: float | None,
        droop: float | None,
        principal: Principal,
    ) -> dict[str, Any]:
        """Forwarded (a write)."""
        raise LeaderOnlyError

    def grid_settings(self) -> dict[str, Any]:
        """Held by the leader (its pusher keeps the gateways' answers)."""
        raise LeaderOnlyError

    def autopilot_status(self) -> dict[str, Any]:
        """The autopilot's status of the read model."""
        status: dict[str, Any] = self.document()["autopilot"]
        return status

    def autopilot_settings(self) -> dict[str, Any]:
        """Forwarded."""
        raise LeaderOnlyError

    async def set_autopilot_settings(
        self, settings: dict[str, Any], principal: Principal
    ) -> dict[str, Any]:
        """Forwarded (a write)."""
        raise LeaderOnlyError

    def autopilot_plan(self) -> tuple[float | None, pd.DataFrame]:
        """Forwarded."""
        raise LeaderOnlyError

    def autopilot_proposals(self, status: str | None) -> list[AutopilotProposal]:
        """Forwarded."""
        raise LeaderOnlyError

    async def approve_proposal(self, proposal_id: str, principal: Principal) -> AutopilotProposal:
        """Forwarded (a write)."""
        raise LeaderOnlyError

    async def veto_proposal(
        self, proposal_id: str, principal: Principal, reason: str
    ) -> AutopilotProposal:
        """Forwarded (a write)."""
        raise LeaderOnlyError

    async def autopilot_replan(self, principal: Principal) -> dict[str, Any]:
        """Forwarded (a write)."""
        raise LeaderOnlyError

    def autopilot_decisions(
        self, kind: str | None, limit: int, offset: int
    ) -> tuple[list[AutopilotDecision], int]:
        """Forwarded."""
        raise LeaderOnlyError
