"""The leader's side of the bus: publish the read model, serve the requests replicas forward.

Only while ``runtime.leading``: a hot standby neither publishes nor answers, so a replica's
forwarded write reaches whichever process leads (``docs/replicas.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.kv import KeyValue
from starlette.types import ASGIApp, Message

from gridflock.api.auth import FORWARDED_PRINCIPAL
from gridflock.domain.auth import Principal, Role
from gridflock.service.bus import (
    KV_BUCKET,
    KV_KEY,
    LEADER_SUBJECT,
    READMODEL_SUBJECT,
    connect,
    encode,
)
from gridflock.service.replication import leader_document
from gridflock.service.runtime import Runtime

__all__ = ["PRINCIPAL_SCOPE_KEY", "LeaderBus", "call_app", "principal_from_header"]

log = logging.getLogger("gridflock.bus")

#: ASGI scope key of the principal a replica authenticated (set only for bus requests,
#: never from HTTP: ``api.auth`` trusts it because no client can put it there).
PRINCIPAL_SCOPE_KEY = FORWARDED_PRINCIPAL

#: Response headers a forwarded answer carries back (the body and status always).
REPLY_HEADERS = ("content-type", "location", "retry-after", "www-authenticate", "x-error-id")


async def call_app(
    app: ASGIApp,
    method: str,
    path: str,
    query: str,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    principal: Principal | None,
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Run one HTTP request through ``app`` in this process; status, headers, body."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("bus", 0),
        "server": ("leader", 0),
    }
    if principal is not None:
        scope[PRINCIPAL_SCOPE_KEY] = principal
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # a streaming endpoint waits for a disconnect
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    status = 500
    out_headers: list[tuple[str, str]] = []
    chunks: list[bytes] = []

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            for k, v in message.get("headers", []):
                name = k.decode("latin-1").lower()
                if name in REPLY_HEADERS:
                    out_headers.append((name, v.decode("latin-1")))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, out_headers, b"".join(chunks)


def principal_from_header(text: str | None) -> Principal | None:
    """The principal a replica put in ``GF-Principal`` (JSON), or None."""
    if not text:
        return None
    d = json.loads(text)
    return Principal(key_id=d["key_id"], name=d["name"], role=Role(d["role"]))


class LeaderBus:
    """Publishes the read model each cycle and answers forwarded requests, while leading."""

    def __init__(self, url: str, runtime: Runtime, app: ASGIApp, name: str) -> None:
        self.url = url
        self.runtime = runtime
        self.app = app
        self.name = name
        self.seq = 0
        self.nc: Client | None = None
        self._kv: KeyValue | None = None
        self._pending: bytes | None = None
        self._ready = asyncio.Event()
        self._serving: Subscription | None = None
        self._stop = asyncio.Event()
        self.published = 0
        self.failures = 0
        runtime.loop.observers.append(self._after_cycle)

    @property
    def leading(self) -> bool:
        """Whether this process leads (the runtime's flag; True when it runs every role)."""
        return bool(getattr(self.runtime, "leading", True))

    def _after_cycle(self, now: float) -> None:
        """Build this cycle's document (in the loop, consistent with the cycle)."""
        if not self.leading or self.nc is None or not self.nc.is_connected:
            return
        try:
            self.seq += 1
            self._pending = encode(leader_document(self.runtime, self.seq, self.name, now))
        except Exception:
            self.failures += 1
            log.exception("read-model document %d could not be built; skipped", self.seq)
            return
        self._ready.set()

    async def run(self) -> None:
        """Connect, then publish and serve until :meth:`stop`."""
        self.nc = await connect(self.url, f"gridflock-leader-{self.name}", self._reconnected)
        await self._open_kv()
        publisher = asyncio.create_task(self._publish_loop())
        try:
            while not self._stop.is_set():
                await self._follow_leadership()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 0.25)
        finally:
            publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await publisher
            with contextlib.suppress(Exception):
                await self.nc.drain()

    def stop(self) -> None:
        """Ask :meth:`run` to return."""
        self._stop.set()

    async def _reconnected(self) -> None:
        if self._kv is None:
            await self._open_kv()

    async def _open_kv(self) -> None:
        assert self.nc is not None
        try:
            js = self.nc.jetstream(timeout=2)
            self._kv = await js.create_key_value(bucket=KV_BUCKET, history=1)
        except Exception as e:  # JetStream off or away: replicas wait for the next cycle
            self._kv = None
            log.warning("bus key-value %s unavailable (%r): publishing without it", KV_BUCKET, e)

    async def _follow_leadership(self) -> None:
        """Serve the leader subject exactly while leading."""
        assert self.nc is not None
        if self.leading and self._serving is None:
            self._serving = await self.nc.subscribe(LEADER_SUBJECT, cb=self._serve_request)
            log.info("serving forwarded requests on %s", LEADER_SUBJECT)
        elif not self.leading and self._serving is not None:
            with contextlib.suppress(Exception):
                await self._serving.unsubscribe()
            self._serving = None
            log.info("no longer leading: stopped serving %s", LEADER_SUBJECT)

    async def _publish_loop(self) -> None:
        assert self.nc is not None
        while True:
            await self._ready.wait()
            self._ready.clear()
            data, self._pending = self._pending, None
            if data is None or not self.leading:
                continue
            try:
                await self.nc.publish(READMODEL_SUBJECT, data)
                self.published += 1
            except Exception as e:  # the bus is away: the next cycle's document replaces it
                self.failures += 1
                log.debug("read model not published: %r", e)
                continue
            if self._kv is not None:
                try:
                    await asyncio.wait_for(self._kv.put(KV_KEY, data), 1.0)
                except Exception as e:
                    log.debug("read model not kept in key-value: %r", e)

    async def _serve_request(self, msg: Msg) -> None:
        """Run a forwarded request through the app and reply with status, headers, body."""
        h = msg.headers or {}
        try:
            principal = principal_from_header(h.get("GF-Principal"))
            headers = [(b"content-type", h.get("Content-Type", "").encode("latin-1"))]
            if h.get("GF-Replica"):
                headers.append((b"x-forwarded-by", h["GF-Replica"].encode("latin-1")))
            status, out, body = await call_app(
                self.app,
                h.get("GF-Method", "GET"),
                h.get("GF-Path", "/"),
                h.get("GF-Query", ""),
                headers,
                msg.data,
                principal,
            )
        except Exception:
            log.exception("forwarded request failed")
            status, out, body = 500, [("content-type", "text/plain")], b"internal error"
        if self.nc is not None and len(body) > self.nc.max_payload:
            log.warning(
                "answer to a forwarded %s %s too large for the bus",
                h.get("GF-Method"),
                h.get("GF-Path"),
            )
            status, out = 502, [("content-type", "application/problem+json")]
            body = json.dumps(
                {
                    "type": "about:blank",
                    "title": "Bad Gateway",
                    "status": 502,
                    "detail": f"the leader's answer ({len(body):,} bytes) is larger than the "
                    f"bus carries ({self.nc.max_payload:,} bytes): ask for a smaller page, or "
                    "the leader's own address",
                    "instance": h.get("GF-Path", "/"),
                }
            ).encode()
        reply = {"GF-Status": str(status), "GF-Leader": self.name}
        for k, v in out:
            reply[f"GF-H-{k}"] = v
        if msg.reply and self.nc is not None:
            with contextlib.suppress(Exception):  # the replica gave up: nothing to answer
                await self.nc.publish(msg.reply, body, headers=reply)
