"""Leader election in PostgreSQL: one leader per plant, a new epoch per takeover, fencing.

Real PostgreSQL (a fresh schema each): two :class:`Leadership` objects stand for two
``serve --role control`` processes; cutting the leader's session is what a kill -9 or a
lost network does to it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from gridflock.domain.auth import Role
from gridflock.domain.messages import CommandBatch
from gridflock.service.leadership import Leadership
from gridflock.store import Store
from gridflock.store._leadership import install_fence
from gridflock.store.errors import FencedError

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_store(postgres_url: str, fresh_schema: Callable[[str], str]) -> Iterator[Store]:
    store = Store(postgres_url, schema=fresh_schema("gf_lead"))
    store.upgrade()
    try:
        yield store
    finally:
        store.close()


def _cut(postgres_url: str, holder: str) -> int:
    """Terminate the leader's lock session (as PostgreSQL does when its process dies)."""
    engine = create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            return len(
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = :a"
                    ),
                    {"a": f"gridflock-leader {holder}"[:63]},
                ).all()
            )
    finally:
        engine.dispose()


def _acquires(lead: Leadership, timeout: float = 10.0) -> bool:
    """Poll until ``lead`` wins the lock: a terminated backend lets it go a moment later."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lead.poll() == "acquired":
            return True
        time.sleep(0.05)
    return False


def _commands(seq: int) -> CommandBatch:
    return CommandBatch(
        np.array([f"c{seq}"], dtype=object),
        np.array(["d1"], dtype=object),
        np.array([1.0]),
        np.array([2e9]),
        np.array([seq], dtype=np.int64),
        1e9,
        None,
    )


def test_one_leader_a_new_epoch_on_every_takeover_and_its_lock_checked(
    pg_store: Store, postgres_url: str
) -> None:
    a = Leadership(pg_store, elected=True, holder="a")
    b = Leadership(pg_store, elected=True, holder="b")
    try:
        assert a.poll() == "acquired"
        assert (a.leading, a.epoch) == (True, 1)
        assert b.poll() is None
        assert not b.leading
        assert a.poll() is None
        assert a.leading
        assert pg_store.leadership() == {"epoch": 1, "holder": "a", "since": pytest.approx(a.since)}

        assert _cut(postgres_url, "a") == 1  # a's session ends: its lock goes with it
        assert _acquires(b)
        assert b.epoch == 2
        assert a.poll() == "lost"
        assert not a.leading
        assert a.epoch is None
        assert a.poll() is None
        assert not a.leading

        b.release()  # a graceful stop hands over at the next poll
        assert _acquires(a)
        assert a.epoch == 3
    finally:
        a.release()
        b.release()


def test_the_database_refuses_a_deposed_leaders_writes(pg_store: Store, postgres_url: str) -> None:
    """Writes fenced by epoch: the leader's land, a deposed one's raise, reads go on."""
    a = Leadership(pg_store, elected=True, holder="a")
    b = Leadership(pg_store, elected=True, holder="b")
    writer_a = Store(pg_store.url, schema=pg_store.schema)  # process a's own pool
    install_fence(writer_a.engine, lambda: a.epoch)
    key, _ = pg_store.create_api_key(Role.VIEWER, "dashboard")
    try:
        with pytest.raises(FencedError):  # not leading yet: nothing is written
            writer_a.save_commands(_commands(1))
        # but a standby serves reads: the key's last use is bookkeeping, not control
        assert writer_a.authenticate(key) is not None
        assert a.poll() == "acquired"
        writer_a.save_commands(_commands(2))
        _cut(postgres_url, "a")
        assert _acquires(b)
        # a has not noticed yet (its epoch is still 1): the database refuses it anyway
        assert a.epoch == 1
        with pytest.raises(FencedError, match="current epoch is 2"):
            writer_a.save_commands(_commands(3))
        assert writer_a.max_command_seq() == {"d1": 2}  # reads are never fenced
    finally:
        writer_a.close()
        a.release()
        b.release()


def test_role_all_always_leads_without_an_election() -> None:
    lead = Leadership(None, elected=False)
    assert lead.leading
    assert lead.epoch is None
    assert lead.poll() is None
    assert lead.status()["role"] == "all"


def test_role_control_needs_postgresql(tmp_path: object) -> None:
    store = Store(f"sqlite:///{tmp_path}/x.db")
    try:
        with pytest.raises(ValueError, match="PostgreSQL"):
            Leadership(store, elected=True)
    finally:
        store.close()


def test_cluster_status_shows_the_leader_and_its_standby(pg_store: Store) -> None:
    from typer.testing import CliRunner

    from gridflock.cli import app

    a = Leadership(pg_store, elected=True, holder="a")
    b = Leadership(pg_store, elected=True, holder="b")
    url = f"{pg_store.url}?options=-csearch_path%3D{pg_store.schema}"
    try:
        a.poll()
        b.poll()  # b's session stays connected, standing by
        r = CliRunner().invoke(app, ["cluster", "status", "--json", "--db", url])
        assert r.exit_code == 0, r.output
        doc = json.loads(r.output)
        assert (doc["epoch"], doc["holder"], doc["leader_connected"]) == (1, "a", True)
        roles = sorted((p["process"], p["role"]) for p in doc["processes"])
        assert roles == [("a", "leader"), ("b", "standby")]
        r = CliRunner().invoke(app, ["cluster", "status", "--db", url])
        assert "epoch 1: a leads since" in r.output
    finally:
        a.release()
        b.release()
