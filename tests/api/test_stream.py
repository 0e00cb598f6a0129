"""The SSE framing and heartbeat of the live stream."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio

from gridflock.api.routes.stream import sse_events


async def _slow(items: list[dict], delay_s: float) -> AsyncIterator[dict]:
    for item in items:
        await anyio.sleep(delay_s)
        yield item


def test_heartbeat_when_quiet_and_updates_in_order():
    async def collect() -> list[str]:
        return [chunk async for chunk in sse_events(_slow([{"a": 1}, {"a": 2}], 0.12), 0.05)]

    chunks = anyio.run(collect)
    assert chunks[0] == ": connected\n\n"
    updates = [c for c in chunks if c.startswith("event:")]
    assert updates == ['event: update\ndata: {"a":1}\n\n', 'event: update\ndata: {"a":2}\n\n']
    assert chunks.count(": heartbeat\n\n") >= 2
    assert chunks.index(updates[0]) < chunks.index(updates[1])


def test_closing_the_stream_closes_the_updates():
    closed = []

    async def endless() -> AsyncIterator[dict]:
        try:
            while True:
                await anyio.sleep(0.01)
                yield {"x": 1}
        finally:
            closed.append(True)

    async def take_two() -> None:
        gen = sse_events(endless(), 1.0)
        got = [await anext(gen), await anext(gen)]
        await gen.aclose()
        assert got[1].startswith("event: update")

    anyio.run(take_two)
    assert closed == [True]
