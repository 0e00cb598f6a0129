"""The internal bus between roles: NATS (core subjects, JetStream key-value for the latest).

Why NATS and not Redis: docs/replicas.md. What goes over it:

- ``gridflock.readmodel``: the leader's read model after each control cycle, one versioned,
  compressed document (:func:`encode`), with a sequence number and the leader's clock;
  the latest also kept in the JetStream key-value bucket ``gridflock_readmodel`` so a
  replica that starts or reconnects answers at once instead of after the next cycle.
- ``gridflock.leader.http``: API requests a replica forwards (writes, and reads the read
  model does not carry), served only by the process that leads; request/reply, so
  "no leader" is known at once (no responders) or after a timeout.
"""

from __future__ import annotations

import asyncio
import json
import logging
import zlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import nats
from nats.aio.client import Client

__all__ = [
    "KV_BUCKET",
    "KV_KEY",
    "LEADER_SUBJECT",
    "READMODEL_SUBJECT",
    "SCHEMA_VERSION",
    "BusFormatError",
    "connect",
    "decode",
    "encode",
]

READMODEL_SUBJECT = "gridflock.readmodel"
LEADER_SUBJECT = "gridflock.leader.http"
KV_BUCKET = "gridflock_readmodel"
KV_KEY = "latest"
SCHEMA_VERSION = 1
"""Version of the read-model document; a replica refuses any other (upgrade leader first)."""

log = logging.getLogger("gridflock.bus")


class BusFormatError(ValueError):
    """A bus message that is not a read-model document this version understands."""


def _default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def encode(doc: dict[str, Any]) -> bytes:
    """``doc`` as compact JSON, deflated (a read model compresses about tenfold)."""
    return zlib.compress(json.dumps(doc, separators=(",", ":"), default=_default).encode(), 1)


def decode(data: bytes) -> dict[str, Any]:
    """A document written by :func:`encode` (``BusFormatError`` if not, or another version)."""
    try:
        doc = json.loads(zlib.decompress(data))
    except (zlib.error, ValueError) as e:
        raise BusFormatError(f"not a read-model document: {e}") from None
    if not isinstance(doc, dict) or doc.get("v") != SCHEMA_VERSION:
        got = doc.get("v") if isinstance(doc, dict) else None
        raise BusFormatError(
            f"read-model version {got!r}, this process reads {SCHEMA_VERSION}: run the same "
            "Gridflock version on the leader and the replicas"
        )
    return doc


async def connect(
    url: str,
    name: str,
    on_reconnect: Callable[[], Awaitable[None]] | None = None,
) -> Client:
    """Connect to the bus, retrying for ever (at start and after a loss) every 0.5 s.

    ``on_reconnect`` runs after each reconnection (subscriptions are restored by the
    client itself).
    """

    async def reconnected() -> None:
        log.info("bus reconnected: %s", url)
        if on_reconnect is not None:
            await on_reconnect()

    async def disconnected() -> None:
        log.warning("bus disconnected: %s (reconnecting)", url)

    async def error(e: Exception) -> None:
        log.debug("bus: %r", e)

    first = True
    while True:
        try:
            return await nats.connect(
                url,
                name=name,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                connect_timeout=2,
                ping_interval=2,
                max_outstanding_pings=2,
                reconnected_cb=reconnected,
                disconnected_cb=disconnected,
                error_cb=error,
            )
        except Exception as e:  # the bus is not up yet: keep trying, say so once
            if first:
                log.warning("bus %s unreachable (%r): retrying every 0.5 s", url, e)
                first = False
            await asyncio.sleep(0.5)
