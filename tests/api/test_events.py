"""Events: create, read, list, cancel, performance, commands; the contract fields."""

from __future__ import annotations

import csv
import io

import pytest

PROBLEM = "application/problem+json"
CONTRACT = {"status", "target_kw", "delivered_kw", "delivered_pct"}


def test_operator_creates_gets_and_cancels_an_event(client, runtime, keys):
    h = keys.h("operator")
    r = client.post(
        "/api/v1/events", json={"target_kw": 20.0, "duration_s": 1800, "scope": "fleet"}, headers=h
    )
    assert r.status_code == 201, r.text
    body = r.json()
    event_id = body["id"]
    assert r.headers["location"] == f"/api/v1/events/{event_id}"
    assert body.keys() >= CONTRACT
    assert body["status"] == "scheduled"
    assert body["start"] == "2026-06-01T12:00:00Z"
    assert body["end"] == "2026-06-01T12:30:00Z"
    assert body["created_by"] == "apikey:ops-desk"

    for _ in range(4):
        runtime.step(10.0)
    r = client.get(f"/api/v1/events/{event_id}", headers=keys.h("viewer"))
    assert r.status_code == 200
    ev = r.json()
    assert ev.keys() >= CONTRACT
    for name in (
        "start",
        "end",
        "scope",
        "source",
        "created_by",
        "tracking_rmse_pct",
        "time_to_90pct_s",
        "non_responders",
        "shortfall_kw",
        "commands_sent",
    ):
        assert name in ev
    assert ev["status"] == "active"
    assert ev["target_kw"] == 20.0
    assert isinstance(ev["delivered_kw"], float)
    assert isinstance(ev["delivered_pct"], float)

    r = client.post(f"/api/v1/events/{event_id}/cancel", headers=h)
    assert r.status_code == 200
    assert r.json()["status"] == "cancelled"
    r = client.post(f"/api/v1/events/{event_id}/cancel", headers=h)
    assert r.status_code == 409  # a conflict with the event's state, not invalid input
    assert r.headers["content-type"] == PROBLEM
    assert "already cancelled" in r.json()["detail"]

    runtime.writer.flush()  # the runtime writes commands and audit off the request
    r = client.get(f"/api/v1/events/{event_id}/commands?limit=5", headers=h)
    assert r.status_code == 200
    page = r.json()
    assert page["total"] > 0
    assert len(page["items"]) == min(5, page["total"])
    assert page["items"][0]["issued_at"].endswith("Z")

    r = client.get("/api/v1/audit?action=event.*", headers=h)
    assert [a["action"] for a in r.json()] == ["event.cancel", "event.create"]


def test_list_events_filters_by_status(client, runtime, keys):
    h = keys.h("operator")
    ids = []
    for k in (5.0, -5.0, 7.0):
        ids.append(client.post("/api/v1/events", json={"target_kw": k}, headers=h).json()["id"])
        runtime.step(2.0)  # the real clock moves between requests
    client.post(f"/api/v1/events/{ids[1]}/cancel", headers=h)
    r = client.get("/api/v1/events", headers=h)
    assert [e["id"] for e in r.json()["items"]] == ids[::-1]
    r = client.get("/api/v1/events?status=cancelled", headers=h)
    assert [e["id"] for e in r.json()["items"]] == [ids[1]]
    r = client.get("/api/v1/events?limit=1&offset=1", headers=h)
    assert r.json()["total"] == 3
    assert [e["id"] for e in r.json()["items"]] == [ids[1]]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"target_kw": 0}, "target_kw", "non-zero"),
        ({"target_kw": 5, "duration_s": -5}, "duration_s", "> 0"),
        ({"target_kw": 5, "scope": "county:x"}, "scope", "grid_node:ID"),
        ({"target_kw": 5, "start": "yesterday"}, "start", "datetime"),
        ({"target_kw": 5, "start": "2026-06-01T12:00:00"}, "start", "UTC offset"),
        ({}, "target_kw", "required"),
        ({"target_kw": 5, "colour": "red"}, "colour", "not permitted"),
    ],
)
def test_invalid_events_are_problems_with_field_errors(client, keys, body, field, words):
    r = client.post("/api/v1/events", json=body, headers=keys.h("operator"))
    assert r.status_code == 422
    assert r.headers["content-type"] == PROBLEM
    problem = r.json()
    assert {"type", "title", "status", "detail", "instance"} <= problem.keys()
    fields = {e["field"]: e["message"] for e in problem["errors"]}
    assert field in fields, problem
    assert words.lower() in fields[field].lower()


def test_target_kw_message_says_what_to_do(client, keys):
    r = client.post("/api/v1/events", json={"target_kw": 0}, headers=keys.h("operator"))
    msg = r.json()["errors"][0]["message"]
    assert msg == (
        "target_kw must be non-zero: positive asks the fleet for more export, negative to absorb"
    )


def test_runtime_value_error_is_422_with_its_message(client, keys):
    r = client.post(
        "/api/v1/events",
        json={"target_kw": 5, "scope": "grid_node:nowhere"},
        headers=keys.h("operator"),
    )
    assert r.status_code == 422
    assert r.headers["content-type"] == PROBLEM
    assert "unknown grid node 'nowhere'" in r.json()["detail"]


def test_unknown_event_is_404_problem(client, keys):
    for path in ("", "/performance", "/commands"):
        r = client.get(f"/api/v1/events/ev-nope{path}", headers=keys.h("viewer"))
        assert r.status_code == 404
        assert r.headers["content-type"] == PROBLEM
        assert "ev-nope" in r.json()["detail"]
    r = client.post("/api/v1/events/ev-nope/cancel", headers=keys.h("operator"))
    assert r.status_code == 404


def test_performance_as_json_and_csv(client, runtime, keys):
    h = keys.h("operator")
    event_id = client.post("/api/v1/events", json={"target_kw": 15.0}, headers=h).json()["id"]
    for _ in range(5):
        runtime.step(10.0)
    r = client.get(f"/api/v1/events/{event_id}/performance", headers=h)
    assert r.status_code == 200
    rows = r.json()
    assert rows
    assert set(rows[0]) == {"ts", "target_kw", "delivered_kw"}
    assert rows[0]["ts"].endswith("Z")

    for kwargs in ({"headers": {**h, "Accept": "text/csv"}}, {"params": {"format": "csv"}}):
        kwargs.setdefault("headers", h)
        r = client.get(f"/api/v1/events/{event_id}/performance", **kwargs)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/csv")
        table = list(csv.DictReader(io.StringIO(r.text)))
        assert len(table) == len(rows)
        assert table[0]["ts"] == rows[0]["ts"]
        assert float(table[0]["target_kw"]) == 15.0
