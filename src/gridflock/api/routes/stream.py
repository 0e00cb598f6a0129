"""The live stream: Server-Sent Events of the runtime's per-cycle updates."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from gridflock.api._convert import dumps
from gridflock.api.auth import key_from_headers, principal_from_request
from gridflock.api.deps import RuntimeDep

__all__ = ["router", "sse_events"]

router = APIRouter(tags=["live"])
_SSE_EXAMPLE = 'event: update\ndata: {"ts":"2026-06-01T12:00:00Z","p_kw":812.4}\n\n'


async def sse_events(
    updates: AsyncIterator[dict[str, Any]], heartbeat_s: float
) -> AsyncIterator[str]:
    """Each update as an ``event: update`` with JSON data, and heartbeats.

    A comment line goes out when the updates are quiet for ``heartbeat_s`` seconds, so
    proxies keep the connection open.
    """
    yield ": connected\n\n"
    pending: asyncio.Future[dict[str, Any]] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(updates))
            done, _ = await asyncio.wait({pending}, timeout=heartbeat_s)
            if not done:
                yield ": heartbeat\n\n"
                continue
            try:
                item = pending.result()
            except StopAsyncIteration:
                pending = None
                return
            pending = None
            yield f"event: update\ndata: {dumps(item)}\n\n"
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        closer = getattr(updates, "aclose", None)
        if closer is not None:
            with contextlib.suppress(Exception):
                await closer()


@router.get(
    "/stream",
    summary="Live updates (Server-Sent Events)",
    description=(
        "A `text/event-stream` of fleet and event updates, one `event: update` per control "
        "cycle with the update as JSON in `data`, and a `: heartbeat` comment every 15 s "
        "when quiet. Authenticate with the usual header, or, because the browser's "
        "`EventSource` cannot set headers, with `?api_key=<key>` (this endpoint only) or the "
        "dashboard's session cookie. "
        "A key in the URL can end up in proxy and server logs and browser history: "
        "prefer the header where you can, and give the dashboard a viewer key. "
        "Role: viewer."
    ),
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {
                "text/event-stream": {
                    "schema": {"type": "string"},
                    "example": _SSE_EXAMPLE,
                }
            }
        }
    },
)
async def stream(
    request: Request,
    runtime: RuntimeDep,
    api_key: Annotated[
        str | None,
        Query(description="API key, for clients that cannot set headers (EventSource)."),
    ] = None,
) -> StreamingResponse:
    """Stream ``runtime.updates()`` as SSE."""
    key = key_from_headers(request) or (api_key.strip() if api_key and api_key.strip() else None)
    await principal_from_request(request, key)  # every role may read; or the session
    heartbeat_s: float = request.app.state.stream_heartbeat_s
    return StreamingResponse(
        sse_events(runtime.updates(), heartbeat_s),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
