"""The API's outer guard: internal errors, body limits, NUL bytes, strict input, headers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from gridflock.api import create_app

PROBLEM = "application/problem+json"


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("exc", [KeyError("device-17"), ValueError("arrays differ in length")])
def test_a_bug_is_a_500_with_an_error_id_in_the_log(client, keys, runtime, caplog, exc):
    """A KeyError or ValueError from a bug is no longer a 404 or 422: it is a 500."""

    def broken() -> dict:
        raise exc

    runtime.fleet_summary = broken
    with caplog.at_level(logging.ERROR, logger="gridflock.api"):
        r = client.get("/api/v1/fleet", headers=keys.h("viewer"))
    assert r.status_code == 500
    assert r.headers["content-type"] == PROBLEM
    body = r.json()
    error_id = body["error_id"]
    assert error_id in body["detail"]
    assert r.headers["x-error-id"] == error_id
    assert str(exc.args[0]) not in body["detail"]  # internals stay in the log
    logged = [rec for rec in caplog.records if error_id in rec.getMessage()]
    assert logged
    assert logged[0].exc_info is not None  # with the traceback
    assert r.headers["x-content-type-options"] == "nosniff"


def test_declared_errors_keep_their_status(client, keys):
    r = client.get("/api/v1/events/ev-nope", headers=keys.h("viewer"))
    assert r.status_code == 404
    r = client.post(
        "/api/v1/events",
        json={"target_kw": 5, "scope": "grid_node:no-such-node"},
        headers=keys.h("operator"),
    )
    assert r.status_code == 422, r.text
    assert "no-such-node" in r.json()["detail"]


def test_cancelling_a_finished_event_is_a_conflict(client, keys):
    r = client.post("/api/v1/events", json={"target_kw": 5}, headers=keys.h("operator"))
    assert r.status_code == 201, r.text
    url = f"/api/v1/events/{r.json()['id']}/cancel"
    assert client.post(url, headers=keys.h("operator")).status_code == 200
    again = client.post(url, headers=keys.h("operator"))
    assert again.status_code == 409
    assert "already cancelled" in again.json()["detail"]


# ----------------------------------------------------------------------------- input
@pytest.mark.parametrize("value", [True, "5", "5.0", None, [5]])
def test_target_kw_is_a_json_number_only(client, keys, value):
    r = client.post("/api/v1/events", json={"target_kw": value}, headers=keys.h("operator"))
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "target_kw"


def test_duration_is_a_json_number_only(client, keys):
    r = client.post(
        "/api/v1/events",
        json={"target_kw": 5, "duration_s": "600"},
        headers=keys.h("operator"),
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "duration_s"


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/audit?actor=%00",
        "/api/v1/audit?action=event.%00*",
        "/api/v1/sites?q=a%00b",
        "/api/v1/devices?site_id=%00",
        "/api/v1/events/ev%00x",
    ],
)
def test_a_nul_byte_in_a_filter_is_a_422(client, keys, url):
    r = client.get(url, headers=keys.h("admin"))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == PROBLEM
    assert "NUL" in r.json()["detail"]


def test_a_nul_character_in_a_body_is_a_422(client, keys):
    r = client.post(
        "/api/v1/gateways",
        json={"id": "gw-1", "kind": "hems\u0000", "groups": ["a\u0000"]},
        headers=keys.h("admin"),
    )
    assert r.status_code == 422, r.text
    assert {e["field"] for e in r.json()["errors"]} >= {"kind"}


def test_a_huge_scope_is_not_echoed(client, keys):
    scope = "program:" + "x" * 1_000_000
    r = client.post(
        "/api/v1/events", json={"target_kw": 5, "scope": scope}, headers=keys.h("operator")
    )
    assert r.status_code == 422
    assert len(r.content) < 5_000


def test_an_unparsable_scope_is_quoted_only_in_part(client, keys):
    scope = "planet:" + "y" * 5_000
    r = client.post(
        "/api/v1/events", json={"target_kw": 5, "scope": scope[:199]}, headers=keys.h("operator")
    )
    assert r.status_code == 422
    assert len(r.content) < 2_000
    assert "characters" in r.json()["detail"]  # says how long the input was


# ----------------------------------------------------------------------------- sizes
@pytest.fixture
def small_client(runtime, client_for):
    """The API with a 4 KB body limit, and 8 KB for the fleet import."""
    app = create_app(runtime, max_body_bytes=4096, max_import_bytes=8192)
    with client_for(app) as c:
        yield c


def test_a_large_body_is_refused_before_authentication(small_client):
    r = small_client.post(
        "/api/v1/events",
        content=b"x" * 5000,
        headers={"Content-Type": "application/json"},  # and no API key at all
    )
    assert r.status_code == 413
    assert r.headers["content-type"] == PROBLEM
    assert "4,096 bytes" in r.json()["detail"]


def test_a_streamed_body_is_cut_off_at_the_limit(small_client, keys):
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(1000):  # 1 MB in all, with no Content-Length
            sent += 1
            yield b" " * 1024

    r = small_client.post(
        "/api/v1/events",
        content=chunks(),
        headers={**keys.h("operator"), "Content-Type": "application/json"},
    )
    assert r.status_code == 413, r.text
    assert sent < 20  # stopped reading soon after the limit, not at the end


def test_the_fleet_import_has_its_own_limit(small_client, keys):
    body = b"version: 1\n" + b"# padding\n" * 500  # 5 KB: above 4 KB, below 8 KB
    r = small_client.post(
        "/api/v1/fleet/import",
        content=body,
        headers={**keys.h("admin"), "Content-Type": "application/yaml"},
    )
    assert r.status_code != 413
    r = small_client.post(
        "/api/v1/fleet/import",
        content=body * 2,
        headers={**keys.h("admin"), "Content-Type": "application/yaml"},
    )
    assert r.status_code == 413


# ----------------------------------------------------------------------------- headers
@pytest.mark.parametrize(
    "path", ["/api/v1/health", "/api/v1/fleet", "/api/v1/nowhere", "/metrics", "/openapi.json"]
)
def test_security_headers_on_every_response(client, keys, path):
    r = client.get(path, headers=keys.h("viewer"))
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert "strict-transport-security" not in r.headers  # plain HTTP: no HSTS
    if path.startswith("/api/") or path == "/metrics":
        assert r.headers["cache-control"] == "no-store"


def test_hsts_when_served_over_tls(app, client_for):
    import httpx

    class TlsClient(client_for):  # type: ignore[misc, valid-type]
        def __enter__(self):
            super().__enter__()
            self._client.base_url = httpx.URL("https://testserver")
            return self

    with TlsClient(app) as c:
        r = c.get("/api/v1/health")
    assert r.headers["strict-transport-security"].startswith("max-age=")


def test_a_database_outage_is_a_503_to_retry_not_a_500(client, keys, runtime):
    from sqlalchemy.exc import OperationalError

    def down() -> list:
        raise OperationalError("SELECT", {}, Exception("connection refused"))

    runtime.store.list_gateways = down
    r = client.get("/api/v1/gateways", headers=keys.h("viewer"))
    assert r.status_code == 503
    assert r.headers["retry-after"] == "5"
    assert r.headers["content-type"] == PROBLEM
    assert "retry" in r.json()["detail"]
    assert "connection refused" not in r.text
