"""Revoking API keys: through the API at once, from another process within the cache TTL."""

from __future__ import annotations

import time

from gridflock.api import create_app
from gridflock.api.auth import SESSION_COOKIE

PROBLEM = "application/problem+json"


def _key_id(key: str) -> str:
    return key.split("_")[1]


def _session_for(app, runtime, key: str) -> dict[str, str]:
    """A dashboard session signed in with ``key``, as its cookie header."""
    principal = runtime.authenticate(key)
    assert principal is not None
    return {"Cookie": f"{SESSION_COOKIE}={app.state.sessions.create(principal)}"}


def test_an_admin_revokes_a_key_and_it_is_refused_at_once(app, client, runtime, keys):
    operator = keys.h("operator")
    cookie = _session_for(app, runtime, keys.operator)
    assert client.get("/api/v1/fleet", headers=operator).status_code == 200  # now cached
    assert client.get("/api/v1/fleet", headers=cookie).status_code == 200
    key_id = _key_id(keys.operator)

    r = client.post(f"/api/v1/apikeys/{key_id}/revoke", headers=keys.h("admin"))
    assert r.status_code == 200, r.text
    assert r.json()["id"] == key_id
    assert r.json()["revoked_at"] is not None

    assert client.get("/api/v1/fleet", headers=operator).status_code == 401
    assert client.get("/api/v1/fleet", headers=cookie).status_code == 401
    assert client.get("/api/v1/fleet", headers=keys.h("viewer")).status_code == 200

    audit = client.get("/api/v1/audit?action=apikey.revoke", headers=keys.h("admin")).json()
    assert [(a["actor"], a["subject"]) for a in audit] == [("apikey:root", key_id)]
    assert audit[0]["detail"]["name"] == "ops-desk"


def test_revoking_twice_or_an_unknown_key(client, keys):
    admin = keys.h("admin")
    key_id = _key_id(keys.viewer)
    assert client.post(f"/api/v1/apikeys/{key_id}/revoke", headers=admin).status_code == 200
    again = client.post(f"/api/v1/apikeys/{key_id}/revoke", headers=admin)
    assert again.status_code == 409
    assert again.headers["content-type"] == PROBLEM
    unknown = client.post("/api/v1/apikeys/000000000000/revoke", headers=admin)
    assert unknown.status_code == 404


def test_only_an_admin_revokes(client, keys):
    key_id = _key_id(keys.viewer)
    r = client.post(f"/api/v1/apikeys/{key_id}/revoke", headers=keys.h("operator"))
    assert r.status_code == 403


def test_a_key_revoked_elsewhere_is_refused_within_the_ttl(runtime, keys, client_for):
    """Another process (the CLI) revokes in the database; sessions end too."""
    app = create_app(runtime, auth_cache_ttl_s=0.2)
    cookie = _session_for(app, runtime, keys.viewer)
    with client_for(app) as c:
        assert c.get("/api/v1/fleet", headers=keys.h("viewer")).status_code == 200
        assert c.get("/api/v1/fleet", headers=cookie).status_code == 200
        assert runtime.store.revoke_api_key(_key_id(keys.viewer))  # as `apikey revoke` does
        deadline = time.monotonic() + 30
        while c.get("/api/v1/fleet", headers=cookie).status_code != 401:
            assert time.monotonic() < deadline, "the revoked key's session still works"
            time.sleep(0.05)
        assert c.get("/api/v1/fleet", headers=keys.h("viewer")).status_code == 401
        assert c.get("/api/v1/fleet", headers=keys.h("operator")).status_code == 200
