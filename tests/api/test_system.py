"""Health, metrics, OpenAPI, gateways, keys, audit and the live stream."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from sqlalchemy.exc import OperationalError

PROBLEM = "application/problem+json"


def failing_once(error: str) -> Callable[[], None]:
    """A database write that fails the first time (a blip), then succeeds."""
    calls = []

    def op() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("INSERT", {}, Exception(error))

    return op


def test_health_ok_degraded_and_down(client, runtime):
    r = client.get("/api/v1/health")
    assert r.status_code == 200
    # the real runtime reports more than the status, and its database as "up"
    assert r.json() == runtime.health()
    assert (r.json()["status"], r.json()["database"]) == ("ok", "up")
    runtime.writer.op("blip", failing_once("database restarting"))
    assert not runtime.writer.flush()  # a write failed: degraded until one succeeds
    assert runtime.health()["status"] == "degraded"
    assert client.get("/api/v1/health").status_code == 200
    real = runtime.health
    runtime.health = lambda: {**real(), "status": "down"}  # the runtime never says so itself
    r = client.get("/api/v1/health")
    assert r.status_code == 503
    assert r.json()["status"] == "down"


def test_metrics_are_prometheus_text(client):
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "gridflock_devices_online" in r.text


def test_openapi_documents_the_contract(client):
    r = client.get("/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    paths = spec["paths"]
    for path, method in (
        ("/api/v1/fleet", "get"),
        ("/api/v1/events", "post"),
        ("/api/v1/events/{event_id}", "get"),
        ("/api/v1/events/{event_id}/cancel", "post"),
        ("/api/v1/health", "get"),
        ("/metrics", "get"),
        ("/api/v1/stream", "get"),
    ):
        op = paths[path][method]
        assert op["summary"]
        assert op["description"]
    fleet = spec["components"]["schemas"]["FleetSummaryOut"]["properties"]
    assert {"p_kw", "flex_up_kw", "flex_down_kw", "devices_online", "devices_total"} <= set(fleet)
    assert "kW" in fleet["p_kw"]["description"]
    event = spec["components"]["schemas"]["EventOut"]["properties"]
    assert {"status", "target_kw", "delivered_kw", "delivered_pct"} <= set(event)
    schemes = spec["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} >= {"http", "apiKey"}
    assert client.get("/docs").status_code == 200


def test_gateways_provision_list_delete(client, runtime, keys):
    admin = keys.h("admin")
    site = str(runtime.spec.sites["id"].iloc[0])
    r = client.post(
        "/api/v1/gateways",
        json={"id": "gw-1", "kind": "hems", "site_id": site, "groups": ["g1"]},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    assert r.headers["location"] == "/api/v1/gateways/gw-1"
    assert len(r.json()["password"]) >= 16
    r = client.get("/api/v1/gateways", headers=keys.h("viewer"))
    items = r.json()["items"]
    assert [g["id"] for g in items] == ["gw-1"]
    assert "password" not in items[0]
    assert "password_hash" not in items[0]
    assert items[0]["groups"] == ["g1"]
    again = client.post("/api/v1/gateways", json={"id": "gw-1", "kind": "hems"}, headers=admin)
    assert again.status_code == 409
    assert "already exists" in again.json()["detail"]
    bad = client.post("/api/v1/gateways", json={"id": "bad id!", "kind": "hems"}, headers=admin)
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "id"
    assert client.delete("/api/v1/gateways/gw-1", headers=admin).status_code == 204
    r = client.delete("/api/v1/gateways/gw-1", headers=admin)
    assert r.status_code == 404
    assert r.headers["content-type"] == PROBLEM


@pytest.mark.parametrize(
    "body",
    [
        {"id": "gw:colon"},
        {"id": "g" * 65},
        {"id": "-lead"},
        {"id": "ok", "groups": ["north\nuser svc"]},
        {"id": "ok", "groups": ["g" * 65]},
        {"id": "ok", "groups": [f"g{i}" for i in range(65)]},
    ],
)
def test_gateway_ids_and_groups_follow_the_protocol_grammar(client, keys, body):
    r = client.post("/api/v1/gateways", json={"kind": "hems", **body}, headers=keys.h("admin"))
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"].startswith(("id", "groups"))


def test_gateway_deletion_is_audited(client, runtime, keys):
    admin = keys.h("admin")
    ok = client.post("/api/v1/gateways", json={"id": "gw-2", "kind": "hems"}, headers=admin)
    assert ok.status_code == 201, ok.text
    assert client.delete("/api/v1/gateways/gw-2", headers=admin).status_code == 204
    records = runtime.store.audit_log(action="gateway.delete")
    assert [(a.subject, a.actor) for a in records] == [("gw-2", "apikey:root")]


def test_admin_lists_api_keys_without_secrets(client, keys):
    r = client.get("/api/v1/apikeys", headers=keys.h("admin"))
    assert r.status_code == 200
    items = r.json()["items"]
    assert {k["name"]: k["role"] for k in items} == {
        "dash": "viewer",
        "ops-desk": "operator",
        "root": "admin",
    }
    assert keys.admin not in r.text


def test_audit_filters(client, runtime, keys):
    h = keys.h("operator")
    client.post("/api/v1/events", json={"target_kw": 3.0}, headers=h)
    runtime.writer.flush()  # the runtime writes the audit off the request
    r = client.get("/api/v1/audit", params={"actor": "apikey:ops-desk"}, headers=h)
    assert r.status_code == 200
    rows = r.json()
    assert [a["action"] for a in rows] == ["event.create"]
    assert rows[0]["ts"].endswith("Z")
    r = client.get("/api/v1/audit", params={"actor": "apikey:nobody"}, headers=h)
    assert r.json() == []
    r = client.get("/api/v1/audit", params={"since": "not a date"}, headers=h)
    assert r.status_code == 422


def test_stream_sends_updates_as_sse(client, runtime, keys):
    runtime.serve_updates([{"ts": 1.0, "p_kw": 12.5}, {"ts": 2.0, "p_kw": float("nan")}])
    r = client.get("/api/v1/stream", headers=keys.h("viewer"))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    frames = [f for f in r.text.split("\n\n") if f.startswith("event:")]
    assert frames == [
        'event: update\ndata: {"ts":1.0,"p_kw":12.5}',
        'event: update\ndata: {"ts":2.0,"p_kw":null}',
    ]


def test_stream_accepts_a_query_key_and_refuses_none(client, runtime, keys):
    runtime.take_updates(1)  # the update of one real control cycle
    r = client.get("/api/v1/stream", params={"api_key": keys.viewer})
    assert r.status_code == 200
    assert "event: update" in r.text
    r = client.get("/api/v1/stream")
    assert r.status_code == 401
    assert r.headers["content-type"] == PROBLEM
    # the query key works only on the stream
    assert client.get("/api/v1/fleet", params={"api_key": keys.viewer}).status_code == 401


def test_the_api_docs_need_no_internet(client):
    page = client.get("/docs")
    assert page.status_code == 200
    html = page.text
    assert "cdn" not in html.lower()
    srcs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert srcs
    assert all(s.startswith("/") for s in srcs), srcs  # every asset from this service
    for src in srcs:
        asset = client.get(src)
        assert asset.status_code == 200, src
        assert len(asset.content) > 1000
    assert "'/openapi.json'" in html
    assert client.get("/docs/assets/swagger-editor.js").status_code == 404  # only the 3 files
    assert client.get("/redoc").status_code == 404
