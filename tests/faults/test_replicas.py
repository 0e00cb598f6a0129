"""API/dashboard replicas: a leader (``serve``, role all, with the bus) and two replicas.

Real parts only: PostgreSQL (a fresh schema), a private NATS server with JetStream,
``gridflock serve`` processes. Each wait has a deadline; nothing asserts on speed (the
figures come from ``benchmarks/bench_replica.py``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ._bus import NatsServer
from ._harness import PgSchema, Serve, ScenarioError, fleet, provision, wait_until

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


def test_replicas_serve_the_leaders_read_model_and_forward_writes(plant: Plant) -> None:
    plant.leader.start()
    for r in plant.replicas:
        r.start()
    plant.leader.wait_answering(30)
    for r in plant.replicas:
        r.wait_answering(30)
    a, b = plant.replicas
    # the same fleet summary: both replicas answer a document of the leader's, sequence shown
    first = wait_until(lambda: fresh_summary(a), 20, "a read model on replica A")
    assert first["seq"] >= 1
    health = a.health()
    assert health["role"] == "api" and health["leader"] and health["read_model_age_s"] < 10
    # the replica's figures equal the leader's for the same cycle (same sequence)
    def same_cycle() -> bool:
        sa, sb = fresh_summary(a), fresh_summary(b)
        lead = plant.leader.json("/fleet")
        if sa is None or sb is None or sa["seq"] != sb["seq"]:
            return False
        keys = ("devices_total", "devices_online", "flex_up_kw", "flex_down_kw", "p_kw")
        return sa["ts"] == sb["ts"] and all(sa[k] == sb[k] for k in keys) and all(
            sa[k] == lead[k] for k in ("devices_total",)
        )

    wait_until(same_cycle, 20, "both replicas on the same cycle")
    # a write through replica A: created on the leader, visible through replica B
    r = create_event(a)
    assert r.status_code == 201, r.text
    event_id = r.json()["id"]
    assert r.headers["x-gridflock-leader"]
    assert plant.leader.json(f"/events/{event_id}")["id"] == event_id
    wait_until(
        lambda: any(e["id"] == event_id for e in b.json("/events")["items"]),
        10,
        "the event through replica B",
    )
    # audited on the leader with the caller the replica authenticated
    audit = plant.leader.json("/audit?limit=50")["items"]
    assert any(x["action"] == "event.create" and x["actor"] == "apikey:fault-suite"
               for x in audit), audit
    # a read the read model does not carry is forwarded (the series lives on the leader)
    assert a.get(f"/events/{event_id}/series").status_code == 200
    # a bad write comes back as the leader said it
    bad = a.post("/events", {"target_kw": 0, "duration_s": 600, "scope": "fleet"})
    assert bad.status_code == 422 and bad.headers["content-type"].startswith(
        "application/problem+json"
    )
    # no key: 401 from the leader, as for any request without a key
    with httpx.Client(timeout=5) as c:
        assert c.post(a.base + "/api/v1/events", json={}).status_code == 401


def test_a_write_with_no_leader_is_503_then_succeeds_once_the_leader_returns(
    plant: Plant,
) -> None:
    a = plant.replicas[0]
    a.start()
    a.wait_answering(30)
    r = create_event(a)
    assert r.status_code == 503 and int(r.headers["retry-after"]) > 0, r.text
    assert "no leader" in r.json()["detail"]
    assert a.health()["status"] == "degraded"  # no read model yet
    plant.leader.start()
    plant.leader.wait_answering(30)
    wait_until(lambda: create_event(a).status_code == 201, 20, "a write through the replica")
    wait_until(lambda: fresh_summary(a), 20, "a read model on the replica")
    assert a.health()["status"] == "ok"


def test_bus_restart_replicas_recover(plant: Plant) -> None:
    plant.leader.start()
    a = plant.replicas[0]
    a.start()
    plant.leader.wait_answering(30)
    a.wait_answering(30)
    before = wait_until(lambda: fresh_summary(a), 20, "a read model on the replica")
    plant.bus.stop()  # SIGKILL
    time.sleep(1.0)
    r = create_event(a)
    assert r.status_code == 503, r.text
    plant.bus.start()
    after = wait_until(
        lambda: (s := fresh_summary(a)) is not None and s["seq"] > before["seq"] + 1 and s,
        30,
        "a fresh read model after the bus restart",
    )
    assert after["ts"] > before["ts"]
    wait_until(lambda: create_event(a).status_code == 201, 20, "a write after the bus restart")
