"""Dead letters: kept on both backends, whatever the refused text held, bounded in size."""

from __future__ import annotations

from gridflock.store import Store
from gridflock.store._dead_letters import MAX_PAYLOAD_CHARS


def test_dead_letters_keep_what_was_refused_newest_first(store: Store) -> None:
    first = store.quarantine("event", "ValueError: year 10000 is out of range", 1, '{"id": "a"}')
    second = store.quarantine(
        "telemetry",
        "DataError: text cannot contain NUL (\x00)",
        2,
        '[{"device_id": "d\x00"}]',
        ts=1_780_315_200.0,
    )
    assert second > first
    newest, oldest = store.dead_letters()
    assert (newest.id, oldest.id) == (second, first)
    assert newest.what == "telemetry"
    assert newest.rows == 2
    assert "\x00" not in newest.reason + newest.payload  # PostgreSQL text cannot hold NUL
    assert "\\u0000" in newest.payload
    assert newest.ts.timestamp() == 1_780_315_200.0
    assert oldest.payload == '{"id": "a"}'
    assert [d.id for d in store.dead_letters(limit=1)] == [second]


def test_a_huge_payload_is_cut_to_a_bound(store: Store) -> None:
    store.quarantine("telemetry", "x" * 10_000, 100_000, "y" * (3 * MAX_PAYLOAD_CHARS))
    [letter] = store.dead_letters()
    assert len(letter.payload) == MAX_PAYLOAD_CHARS
    assert letter.payload.endswith("…")
    assert len(letter.reason) <= 2_000
