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
    for k in (5.0, 3.0, 7.0):
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


def test_too_large_a_target_is_refused_with_the_kw_available(client, runtime, keys):
    h = keys.h("operator")
    body = {"target_kw": 50_000.0, "duration_s": 1800, "scope": "fleet"}
    r = client.post("/api/v1/events", json=body, headers=h)
    assert r.status_code == 422
    assert r.headers["content-type"] == PROBLEM
    problem = r.json()
    available = problem["available_kw"]
    assert 0 < available < 50_000
    assert f"{available:,.1f} kW up" in problem["detail"]
    assert "allow_partial" in problem["detail"]
    r = client.get("/api/v1/events/available?scope=fleet&duration_s=1800&direction=up", headers=h)
    assert r.status_code == 200
    assert r.json()["available_kw"] == pytest.approx(available)
    assert client.get("/api/v1/events", headers=h).json()["total"] == 0  # nothing tracked

    r = client.post("/api/v1/events", json={**body, "allow_partial": True}, headers=h)
    assert r.status_code == 201, r.text
    # the event now holds what there was: nothing is left for another in that window
    r = client.get("/api/v1/events/available?duration_s=1800", headers=h)
    assert r.json()["available_kw"] == pytest.approx(0.0, abs=1e-6)
    r = client.post("/api/v1/events", json={"target_kw": 1.0, "duration_s": 1800}, headers=h)
    assert r.status_code == 422
    assert r.json()["available_kw"] == pytest.approx(0.0, abs=1e-6)


def test_available_is_net_of_an_overlapping_event(client, runtime, keys):
    h = keys.h("operator")
    url = "/api/v1/events/available?scope=fleet&duration_s=3600&direction=down"
    before = client.get(url, headers=keys.h("viewer")).json()
    assert before["direction"] == "down"
    assert before["available_kw"] < 0
    assert before["start"] == "2026-06-01T12:00:00Z"
    assert before["end"] == "2026-06-01T13:00:00Z"
    ask = round(before["available_kw"] / 3, 1)
    r = client.post("/api/v1/events", json={"target_kw": ask, "duration_s": 3600}, headers=h)
    assert r.status_code == 201, r.text
    after = client.get(url, headers=h).json()["available_kw"]
    assert after == pytest.approx(before["available_kw"] - ask, rel=0.02)
    later = client.get(url + "&start=2026-06-01T14:00:00Z", headers=h).json()["available_kw"]
    assert later == pytest.approx(before["available_kw"], rel=1e-6)


def test_opposite_event_over_the_same_devices_is_refused(client, runtime, keys):
    h = keys.h("operator")
    first = client.post("/api/v1/events", json={"target_kw": 3.0}, headers=h).json()["id"]
    r = client.post("/api/v1/events", json={"target_kw": -3.0}, headers=h)
    assert r.status_code == 422
    problem = r.json()
    assert problem["event"] == first
    assert f"Cancel {first}" in problem["detail"]
    assert "cannot move both ways" in problem["detail"]


def test_priority_is_kept_and_shown(client, runtime, keys):
    h = keys.h("operator")
    r = client.post("/api/v1/events", json={"target_kw": 2.0, "priority": 90}, headers=h)
    assert r.status_code == 201, r.text
    event_id = r.json()["id"]
    assert r.json()["priority"] == 90
    assert client.get(f"/api/v1/events/{event_id}", headers=h).json()["priority"] == 90
    assert (
        client.post("/api/v1/events", json={"target_kw": 2.0}, headers=h).json()["priority"] == 50
    )
    runtime.writer.flush()
    assert runtime.store.get_event(event_id).priority == 90


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"target_kw": 2.0, "priority": 101}, "priority", "less than or equal to 100"),
        ({"target_kw": 2.0, "priority": -1}, "priority", "greater than or equal to 0"),
        ({"target_kw": 2.0, "priority": "high"}, "priority", "integer"),
        ({"target_kw": 2.0, "allow_partial": "yes"}, "allow_partial", "boolean"),
        ({"target_kw": 2e7}, "target_kw", "less than or equal to 10000000"),
    ],
)
def test_priority_and_bounds_are_checked(client, keys, body, field, words):
    r = client.post("/api/v1/events", json=body, headers=keys.h("operator"))
    assert r.status_code == 422
    fields = {e["field"]: e["message"] for e in r.json()["errors"]}
    assert words.lower() in fields[field].lower(), fields


def test_finished_events_stay_listed_with_their_figures(client, runtime, keys):
    h = keys.h("operator")
    r = client.post("/api/v1/events", json={"target_kw": 2.0, "duration_s": 20}, headers=h)
    event_id = r.json()["id"]
    runtime.step(30.0)
    assert event_id not in runtime.dispatcher.trackers  # it left the dispatcher...
    ev = client.get(f"/api/v1/events/{event_id}", headers=h).json()
    assert ev["status"] == "completed"  # ...and is still shown
    assert ev["delivered_pct"] is not None
    assert [e["id"] for e in client.get("/api/v1/events", headers=h).json()["items"]] == [event_id]
