"""One bad row never stops the database writes: it is refused up front or set aside.

On SQLite and PostgreSQL: a write the database refuses for its content (an event whose
end is in year 10000, readings stamped in year 318,857) is quarantined as a dead letter
with the reason, counted, and every good write queued around it lands. An event with
such times is refused by validation before anything is tracked (a 422 naming the bounds).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from gridflock.api import create_app
from gridflock.config import Settings
from gridflock.domain.auth import Principal, Role
from gridflock.domain.events import Event
from gridflock.domain.messages import TelemetryBatch
from gridflock.fleet.generate import generate_fleet
from gridflock.service import Runtime
from gridflock.service.links import MemoryLink
from gridflock.service.writer import StoreWriter
from gridflock.store import Store
from gridflock.store.errors import is_outage

T0 = 1_780_315_200.0  # 2026-06-01T12:00:00Z
LAST_SECOND_OF_9999 = 253_402_300_799.0  # 9999-12-31T23:59:59Z
OPERATOR = Principal("key-ops", "ops-desk", Role.OPERATOR)


@pytest.fixture
def store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Store]:
    """A migrated store with a small fleet, on SQLite or in a fresh PostgreSQL schema."""
    if backend == "sqlite":
        s = Store(f"sqlite:///{tmp_path / 'bad.db'}")
    else:
        schema = request.getfixturevalue("fresh_schema")("gf_bad")
        s = Store(request.getfixturevalue("postgres_url"), schema=schema)
    s.upgrade()
    s.save_fleet(generate_fleet(5, 1))
    try:
        yield s
    finally:
        s.close()


def _readings(device: str, ts: np.ndarray) -> TelemetryBatch:
    n = len(ts)
    return TelemetryBatch(
        np.full(n, device, dtype=object),
        ts.astype(float),
        np.arange(n, dtype=float),
        np.full(n, np.nan),
        np.full(n, np.nan),
    )


def _count(store: Store, table: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_a_refused_event_row_is_quarantined_and_later_writes_land(store: Store) -> None:
    writer = StoreWriter(store, max_rows=10_000)
    good = [Event(f"ev-good-{i}", 10.0, T0 + i, T0 + 900) for i in range(3)]
    poison = Event("ev-poison", 10.0, LAST_SECOND_OF_9999, LAST_SECOND_OF_9999 + 900)
    writer.op("event", lambda: store.save_event(good[0]), {"id": good[0].id})
    writer.op("event", lambda: store.save_event(poison), {"id": poison.id})
    writer.op("event", lambda: store.save_event(good[1]), {"id": good[1].id})
    writer.op("audit", lambda: store.audit("apikey:t", "event.create", "ev-good-1"))
    writer.op("event", lambda: store.save_event(good[2]), {"id": good[2].id})

    assert writer.flush() is True
    assert writer.pending_ops == 0
    assert writer.stats.database_up is True
    assert writer.stats.quarantined_ops == 1
    assert writer.stats.ops_written == 4
    for ev in good:
        assert store.get_event(ev.id).start == ev.start
    [letter] = store.dead_letters()
    assert letter.what == "event"
    assert "out of range" in letter.reason
    assert json.loads(letter.payload) == {"id": "ev-poison"}
    assert letter.rows == 1


def test_refused_readings_are_found_and_set_aside_and_the_good_ones_land(store: Store) -> None:
    writer = StoreWriter(store, max_rows=100_000)
    device = store.load_fleet().all_devices()["id"].iloc[0]
    ts = T0 + np.arange(1000.0)
    ts[[17, 600]] = 1e13  # year 318,857: beyond what either database's timestamps hold
    writer.telemetry(_readings(device, ts))
    writer.telemetry(_readings(device, T0 + 5000 + np.arange(10.0)))  # queued behind them

    assert writer.flush() is True
    assert writer.stats.database_up is True
    assert writer.buffered_rows == 0
    assert writer.stats.quarantined_rows == 2
    assert _count(store, "telemetry") == 1008
    stored = store.query_telemetry(
        device, datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
    )
    assert len(stored) == 1008
    [letter] = store.dead_letters()
    assert letter.what == "telemetry"
    assert letter.rows == 2
    assert "outside [2000-01-01, one year ahead]" in letter.reason
    refused = json.loads(letter.payload)
    assert [r["ts"] for r in refused] == [1e13, 1e13]
    assert [r["p_kw"] for r in refused] == [17.0, 600.0]


def test_readings_the_database_refuses_are_found_by_halving(store: Store) -> None:
    """Text no database encoding holds (a lone surrogate): only the database can say."""
    writer = StoreWriter(store, max_rows=100_000)
    device = str(store.load_fleet().all_devices()["id"].iloc[0])
    batch = _readings(device, T0 + np.arange(2000.0))
    batch.device_ids[[3, 1500, 1501]] = device + "\ud800"
    writer.telemetry(batch)

    assert writer.flush() is True
    assert writer.stats.quarantined_rows == 3
    assert _count(store, "telemetry") == 1997
    [letter] = store.dead_letters()
    assert letter.rows == 3
    assert "surrogates not allowed" in letter.reason
    refused = json.loads(letter.payload)
    assert [r["p_kw"] for r in refused] == [3.0, 1500.0, 1501.0]
    assert refused[0]["device_id"] == device + "\ud800"


def test_an_outage_is_retried_not_quarantined(store: Store) -> None:
    """Only a refusal of content is set aside: a lost connection keeps the write queued."""
    writer = StoreWriter(store, max_rows=1000)
    calls = {"n": 0}

    def flaky() -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionResetError("connection reset by peer")
        store.audit("system", "a.retried", "x")

    writer.op("audit", flaky)
    assert writer.flush() is False
    assert writer.pending_ops == 1
    assert writer.stats.quarantined_ops == 0
    assert writer.flush() is True
    assert [r.action for r in store.audit_log()] == ["a.retried"]
    assert store.dead_letters() == []


def test_the_database_refusing_content_is_not_an_outage(store: Store) -> None:
    """The classification the writer relies on, on real driver errors."""
    store.audit("system", "x", "y")
    with (
        pytest.raises(Exception) as duplicate,  # noqa: PT011 - whatever the driver raises
        store.engine.begin() as conn,
    ):
        conn.execute(text("INSERT INTO grid_nodes SELECT * FROM grid_nodes"))
    assert not is_outage(duplicate.value)
    down = Store(
        "postgresql+psycopg://postgres@127.0.0.1:1/test"
        if store.engine.dialect.name == "postgresql"
        else "sqlite:////nonexistent-dir/x.db"
    )
    with pytest.raises(Exception) as unreachable:  # noqa: PT011
        down.audit("system", "x", "y")
    assert is_outage(unreachable.value)
    down.close()


def test_an_event_with_times_no_database_holds_is_refused_before_it_is_tracked(
    store: Store,
) -> None:
    clock = [T0]
    rt = Runtime(
        Settings(database_url="sqlite://", mqtt_url=None),
        store,
        store.load_fleet(),
        MemoryLink(),
        clock=lambda: clock[0],
    )
    key, _ = store.create_api_key(Role.OPERATOR, "ops")
    queued = rt.writer.pending_ops  # the start's own records (the grid-code push's audit)

    async def post(start: str) -> httpx.Response:
        app = create_app(rt)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gf"
        ) as client:
            return await client.post(
                "/api/v1/events",
                json={"target_kw": 5.0, "start": start, "duration_s": 900, "allow_partial": True},
                headers={"Authorization": f"Bearer {key}"},
            )

    for start in ("9999-12-31T23:59:59Z", "1970-01-01T00:00:00Z", "2028-06-02T00:00:00Z"):
        r = asyncio.run(post(start))
        assert r.status_code == 422, r.text
        assert "start must be" in r.text  # the schema bounds the calendar, the service the lead
        if start.startswith("2028"):
            assert "one year from now" in r.text
    assert rt.events() == []
    assert rt.writer.pending_ops == queued  # nothing was queued for the database either
    assert rt.writer.flush() is True
    assert rt.health()["database"] == "up"
    ok = asyncio.run(post("2026-06-01T12:05:00Z"))
    assert ok.status_code == 201, ok.text


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 400),
    bad=st.sets(st.integers(0, 399), max_size=12),
    chunks=st.integers(1, 4),
)
def test_every_good_reading_lands_and_only_the_bad_ones_are_set_aside(
    tmp_path_factory: pytest.TempPathFactory, n: int, bad: set[int], chunks: int
) -> None:
    """Whatever the bad readings' places and however the readings were queued."""
    bad = {i for i in bad if i < n}
    with Store(f"sqlite:///{tmp_path_factory.mktemp('prop') / 'p.db'}") as store:
        store.upgrade()
        writer = StoreWriter(store, max_rows=10_000)
        batch = _readings("dev-1", T0 + np.arange(float(n)))
        batch.device_ids[sorted(bad)] = "dev-\ud800"
        for part in np.array_split(np.arange(n), chunks):
            if len(part):
                writer.telemetry(
                    TelemetryBatch(
                        batch.device_ids[part],
                        batch.ts[part],
                        batch.p_kw[part],
                        batch.soc[part],
                        batch.p_baseline_kw[part],
                    )
                )
        assert writer.flush() is True
        assert writer.stats.quarantined_rows == len(bad)
        assert _count(store, "telemetry") == n - len(bad)
        letters = store.dead_letters()
        refused = sorted(r["p_kw"] for d in letters for r in json.loads(d.payload))
        assert refused == sorted(float(i) for i in bad)
