"""Command acknowledgements from the in-process twin (the demo's devices) reach the store."""

from __future__ import annotations


def test_the_twins_acks_mark_commands_accepted(client, runtime, keys):
    h = keys.h("operator")
    r = client.post("/api/v1/events", json={"target_kw": 5.0, "duration_s": 600}, headers=h)
    assert r.status_code == 201, r.text
    event_id = r.json()["id"]
    runtime.step(6.0)  # commands out, acks back, both written
    runtime.step(2.0)
    r = client.get(f"/api/v1/events/{event_id}/commands?limit=1000", headers=h)
    items = r.json()["items"]
    # the acks of a cycle's commands are read at the start of the next cycle
    last = max(c["issued_at"] for c in items)
    answered = [c for c in items if c["issued_at"] < last]
    assert answered
    assert {c["status"] for c in answered} == {"accepted"}, answered[:3]
    assert all(c["acked_at"] for c in answered)
