"""API/dashboard replicas: a leader (``serve``, role all, with the bus) and two replicas.

Real parts only: PostgreSQL (a fresh schema), a private NATS server with JetStream,
``gridflock serve`` processes. Each wait has a deadline; nothing asserts on speed (the
figures come from ``benchmarks/bench_replica.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ._bus import NatsServer
from ._harness import PgSchema, ScenarioError, Serve, fleet, provision, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


class Plant:
    """The processes of one scenario, ended by their own pids."""

    def __init__(self, root: Path) -> None:
        self.schema = PgSchema("gf_replica")
        self.key = provision(self.schema, fleet(4, seed=3))
        self.bus = NatsServer(root / "nats")
        self.bus.start()
        common = {"database_url": self.schema.url, "bus_url": self.bus.url}
        (root / "leader").mkdir()
        self.leader = Serve(root / "leader", self.key, **common)
        self.replicas = []
        for i in range(2):
            (root / f"api{i}").mkdir()
            self.replicas.append(Serve(root / f"api{i}", self.key, role="api", **common))

    def close(self) -> None:
        for p in (self.leader, *self.replicas):
            p.cleanup()
        self.bus.stop()
        self.schema.drop()


@pytest.fixture
def plant(tmp_path: Path) -> Iterator[Plant]:
    p = Plant(tmp_path)
    try:
        yield p
    finally:
        p.close()


def fresh_summary(replica: Serve) -> dict[str, Any] | None:
    """The replica's fleet summary once it has a read model (None: a 503 until then)."""
    r = replica.get("/fleet")
    if r.status_code == 503:
        return None
    if r.status_code != 200:
        raise ScenarioError(f"GET /fleet through the replica: {r.status_code} {r.text[:300]}")
    body: dict[str, Any] = r.json()
    return body


def create_event(via: Serve, target_kw: float = 5.0) -> httpx.Response:
    return via.post(
        "/events",
        {"target_kw": target_kw, "duration_s": 600, "scope": "fleet", "allow_partial": True},
        timeout=20,
    )


def test_replicas_read_model_forwarded_writes_no_leader_and_bus_restart(plant: Plant) -> None:
    """One plant through four phases (each process starts once: starting is the slow part)."""
    a, b = plant.replicas
    a.start()
    a.wait_answering(90)
    # ---- no leader: a write is refused with 503 and Retry-After, nothing done
    r = create_event(a)
    assert r.status_code == 503, r.text
    assert int(r.headers["retry-after"]) > 0
    assert "no leader" in r.json()["detail"]
    assert a.health()["status"] == "degraded"  # no read model yet
    assert fresh_summary(a) is None
    plant.leader.start()
    b.start()
    plant.leader.wait_answering(90)
    b.wait_answering(90)
    # ---- the leader is back: the same write succeeds
    wait_until(lambda: create_event(a).status_code == 201, 20, "a write through replica A")
    # ---- both replicas serve the leader's read model: the same cycle, the same figures
    first = wait_until(lambda: fresh_summary(a), 20, "a read model on replica A")
    assert first["seq"] >= 1
    health = a.health()
    assert health["status"] == "ok"
    assert health["role"] == "api"
    assert health["leader"]
    assert health["read_model_age_s"] < 10

    def same_cycle() -> bool:
        sa, sb = fresh_summary(a), fresh_summary(b)
        if sa is None or sb is None or sa["seq"] != sb["seq"]:
            return False
        return sa == sb

    wait_until(same_cycle, 20, "both replicas on the same cycle")
    lead = plant.leader.json("/fleet")
    mine = fresh_summary(a)
    assert mine is not None
    assert mine["devices_total"] == lead["devices_total"] == 12
    assert [k["kind"] for k in mine["by_kind"]] == [k["kind"] for k in lead["by_kind"]]
    # ---- a write through replica A: created on the leader, visible through replica B
    r = create_event(a)
    assert r.status_code == 201, r.text
    event_id = r.json()["id"]
    assert r.headers["location"] == f"/api/v1/events/{event_id}"
    assert r.headers["x-gridflock-leader"] == health["leader"]
    assert plant.leader.json(f"/events/{event_id}")["id"] == event_id
    wait_until(
        lambda: any(e["id"] == event_id for e in b.json("/events")["items"]),
        10,
        "the event through replica B",
    )
    assert b.json(f"/events/{event_id}")["created_by"] == "apikey:fault-suite"
    # audited on the leader with the caller the replica authenticated
    audit = plant.leader.json("/audit?limit=50")
    assert any(
        x["action"] == "event.create"
        and x["actor"] == "apikey:fault-suite"
        and x["subject"] == event_id
        for x in audit
    ), audit
    # a read the read model does not carry is forwarded (the series lives on the leader)
    assert a.get(f"/events/{event_id}/performance").status_code == 200
    # a bad write comes back as the leader answered it; no key: the leader's 401
    bad = a.post("/events", {"target_kw": 0, "duration_s": 600, "scope": "fleet"})
    assert bad.status_code == 422, bad.text
    assert bad.headers["content-type"].startswith("application/problem+json")
    with httpx.Client(timeout=10) as c:
        assert c.post(a.base + "/api/v1/events", json={}).status_code == 401
    # ---- the bus is killed and restarted: the replicas recover on their own
    before = fresh_summary(a)
    assert before is not None
    plant.bus.stop()  # SIGKILL
    wait_until(lambda: a.health()["bus"] == "disconnected", 15, "replica A to see the bus gone")
    r = create_event(a)
    assert r.status_code == 503, r.text
    plant.bus.start()
    for replica in (a, b):
        wait_until(
            lambda replica=replica: (
                (s := fresh_summary(replica)) is not None
                and s["seq"] > before["seq"] + 1
                and s["ts"] > before["ts"]
            ),
            30,
            "a fresh read model after the bus restart",
        )
    wait_until(lambda: create_event(b).status_code == 201, 20, "a write after the bus restart")
