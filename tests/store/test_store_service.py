"""What the live service needs: command acks, resuming events, ping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gridflock.domain import CommandBatch, Event, EventStatus
from gridflock.store import Store

T0 = datetime(2025, 7, 1, 14, 0, tzinfo=UTC).timestamp()


def make_event(event_id: str, start: float = T0, hours: float = 1.0) -> Event:
    return Event(id=event_id, target_kw=100.0, start=start, end=start + 3600 * hours)


def save_batch(store: Store, n: int, event_id: str = "ev-1") -> list[str]:
    ids = [f"c{i}" for i in range(n)]
    store.save_commands(
        CommandBatch(
            command_ids=np.array(ids, dtype=object),
            device_ids=np.array([f"d{i:05d}" for i in range(n)], dtype=object),
            p_setpoint_kw=np.ones(n),
            valid_until=np.full(n, T0 + 900.0),
            seq=np.arange(n, dtype=np.int64),
            issued_at=T0,
            event_id=event_id,
        )
    )
    return ids


def test_set_command_status_bulk(store: Store) -> None:
    ids = save_batch(store, 12_000)  # more than one IN (...) chunk
    acked = datetime(2025, 7, 1, 14, 0, 2, tzinfo=UTC)
    assert store.set_command_status(ids[:11_000], "accepted", ts=acked) == 11_000
    assert store.set_command_status(["c11000", "c11001", "nope"], "rejected", "soc too low") == 2
    assert store.set_command_status(ids[11_002:], "expired") == 998
    df = store.commands_for_event("ev-1").set_index("command_id")
    assert (df.loc[ids[:11_000], "status"] == "accepted").all()
    assert (df.loc[ids[:11_000], "acked_at"] == pd.Timestamp(acked)).all()
    assert df.loc[ids[:11_000], "reason"].isna().all()
    assert df.loc["c11000", "status"] == "rejected"
    assert df.loc["c11000", "reason"] == "soc too low"
    assert pd.notna(df.loc["c11000", "acked_at"])
    assert (df.loc[ids[11_002:], "status"] == "expired").all()
    assert df.loc[ids[11_002:], "acked_at"].isna().all()  # expiry is not an ack


def test_set_command_status_refuses_unknown_status(store: Store) -> None:
    save_batch(store, 2)
    with pytest.raises(ValueError, match="unknown command status"):
        store.set_command_status(["c0"], "done")
    assert store.set_command_status([], "accepted") == 0


def test_active_events_for_resuming(store: Store) -> None:
    now = T0 + 1800
    store.save_event(make_event("running", start=T0))  # ends T0 + 3600 > now
    store.save_event(make_event("future", start=T0 + 7200))
    store.save_event(make_event("over", start=T0 - 7200))  # ended T0 - 3600
    store.save_event(make_event("ends-now", start=now - 3600))  # end == now: half-open, out
    store.save_event(make_event("cancelled", start=T0))
    store.set_event_status("running", EventStatus.ACTIVE)
    store.set_event_status("cancelled", EventStatus.CANCELLED)
    assert [e.id for e in store.active_events(now)] == ["running", "future"]
    assert store.active_events(now)[0].status is EventStatus.ACTIVE


def test_list_events_filters_and_pages(store: Store) -> None:
    for i in range(10):
        store.save_event(make_event(f"e{i}", start=T0 + 3600 * i))
    store.set_event_status("e3", EventStatus.CANCELLED)
    store.set_event_status("e4", EventStatus.ACTIVE)
    assert [e.id for e in store.list_events()] == [f"e{i}" for i in range(10)]
    assert [e.id for e in store.list_events(3)] == ["e0", "e1", "e2"]
    assert [e.id for e in store.list_events(3, 8)] == ["e8", "e9"]
    assert [e.id for e in store.list_events(status=EventStatus.CANCELLED)] == ["e3"]
    assert [
        e.id for e in store.list_events(status=[EventStatus.CANCELLED, EventStatus.ACTIVE])
    ] == ["e3", "e4"]
    assert [e.id for e in store.list_events(2, newest_first=True)] == ["e9", "e8"]
    assert [e.id for e in store.list_events(status="active")] == ["e4"]  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bogus"):
        store.list_events(status="bogus")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative"):
        store.list_events(offset=-1)


def test_ping(store: Store) -> None:
    assert store.ping() is True


def test_ping_is_false_when_the_database_is_gone(tmp_path: Path) -> None:
    missing = Store(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
    assert missing.ping() is False
    missing.close()
    refused = Store("postgresql://nobody@127.0.0.1:1/none")
    assert refused.ping() is False
    refused.close()


@pytest.mark.postgres
def test_ping_recovers_after_connections_are_killed(postgres_url: str) -> None:
    """A database restart kills pooled connections; the next ping still says True."""
    import uuid

    from sqlalchemy import create_engine, text

    schema = f"gf_test_{uuid.uuid4().hex[:12]}"
    store = Store(postgres_url, schema=schema)
    admin = create_engine(postgres_url)
    try:
        store.upgrade()
        with store.engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        with admin.begin() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        assert store.ping() is True
        assert store.list_events() == []
    finally:
        store.close()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def test_when_takes_epoch_seconds_datetimes_or_now() -> None:
    from gridflock.store._time import when

    assert when(0.0) == datetime(1970, 1, 1, tzinfo=UTC)
    assert when(datetime(2025, 1, 1, 1, tzinfo=UTC)).hour == 1
    assert abs(when(None) - datetime.now(UTC)) < timedelta(seconds=5)
    with pytest.raises(ValueError, match="naive"):
        when(datetime(2025, 1, 1))
