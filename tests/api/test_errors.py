"""Every error is a problem document, including the framework's own."""

from __future__ import annotations

PROBLEM = "application/problem+json"


def test_malformed_json_body_is_a_problem(client, keys):
    r = client.post(
        "/api/v1/events",
        content=b'{"target_kw": 5,',
        headers={**keys.h("operator"), "Content-Type": "application/json"},
    )
    assert r.status_code == 422
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["errors"]


def test_wrong_method_is_a_problem(client, keys):
    r = client.delete("/api/v1/fleet", headers=keys.h("admin"))
    assert r.status_code == 405
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["status"] == 405


def test_health_failure_reads_as_down(client, runtime):
    def broken() -> dict:
        raise RuntimeError("database unreachable")

    runtime.health = broken
    r = client.get("/api/v1/health")
    assert r.status_code == 503
    assert r.json()["status"] == "down"
    # open to anyone: the kind of failure and an error id, never the error's own text
    assert "RuntimeError" in r.json()["error"]
    assert "error id" in r.json()["error"]
    assert "database unreachable" not in r.json()["error"]
