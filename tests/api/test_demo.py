"""The demo's scripted peak event, on the real runtime."""

from __future__ import annotations

import asyncio

from gridflock.cli.service import _scripted_event
from gridflock.domain.events import EventSource


def test_the_scripted_event_is_labelled_as_scheduled_not_operator(client, runtime, keys):
    runtime.step(10.0)  # the fleet has reported: its flexibility is known
    asyncio.run(_scripted_event(runtime, 0.0))
    (view,) = runtime.events()
    assert view.event.source is EventSource.SCHEDULE
    r = client.get("/api/v1/events?source=schedule", headers=keys.h("viewer"))
    assert [e["id"] for e in r.json()["items"]] == [view.event.id]
    assert (
        client.get("/api/v1/events?source=operator", headers=keys.h("viewer")).json()["items"] == []
    )
