"""Authentication and roles."""

from __future__ import annotations

import pytest

from gridflock.api import create_app

PROBLEM = "application/problem+json"


def test_missing_key_is_401_with_challenge(client):
    r = client.get("/api/v1/fleet")
    assert r.status_code == 401
    assert r.headers["content-type"] == PROBLEM
    assert r.headers["www-authenticate"].startswith("Bearer")
    body = r.json()
    assert body["status"] == 401
    assert "API key" in body["detail"]
    assert body["instance"] == "/api/v1/fleet"


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer gf_000000000000_notarealsecretnotarealsecret"},
        {"Authorization": "Bearer nonsense"},
        {"X-API-Key": "nonsense"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
)
def test_bad_key_is_401(client, keys, headers):
    r = client.get("/api/v1/fleet", headers=headers)
    assert r.status_code == 401
    assert r.headers["content-type"] == PROBLEM
    assert "www-authenticate" in r.headers


def test_x_api_key_header_works(client, keys):
    r = client.get("/api/v1/fleet", headers={"X-API-Key": keys.viewer})
    assert r.status_code == 200


def test_revoked_key_is_refused_without_the_cache(runtime, keys, client_for):
    app = create_app(runtime, auth_cache_ttl_s=0)
    with client_for(app) as c:
        assert c.get("/api/v1/fleet", headers=keys.h("viewer")).status_code == 200
        key_id = keys.viewer.split("_")[1]
        assert runtime.store.revoke_api_key(key_id)
        assert c.get("/api/v1/fleet", headers=keys.h("viewer")).status_code == 401


def test_successful_authentication_is_cached(client, runtime, keys):
    for _ in range(5):
        assert client.get("/api/v1/fleet", headers=keys.h("viewer")).status_code == 200
    assert runtime.authentications == 1


def test_viewer_cannot_create_events_or_import(client, keys):
    r = client.post("/api/v1/events", json={"target_kw": 10}, headers=keys.h("viewer"))
    assert r.status_code == 403
    assert r.headers["content-type"] == PROBLEM
    assert "operator" in r.json()["detail"]
    r = client.post(
        "/api/v1/fleet/import",
        content=b"version: 1\n",
        headers={**keys.h("viewer"), "Content-Type": "application/yaml"},
    )
    assert r.status_code == 403


def test_operator_cannot_do_admin_things(client, keys):
    h = keys.h("operator")
    assert client.get("/api/v1/apikeys", headers=h).status_code == 403
    r = client.post("/api/v1/gateways", json={"id": "gw-1", "kind": "hems"}, headers=h)
    assert r.status_code == 403
    assert client.delete("/api/v1/gateways/gw-1", headers=h).status_code == 403


def test_health_and_metrics_need_no_key(client):
    assert client.get("/api/v1/health").status_code == 200
    assert client.get("/metrics").status_code == 200
