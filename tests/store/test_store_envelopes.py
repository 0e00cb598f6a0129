"""Envelopes in the store: saved by id on both backends, read back exactly, deleted."""

from __future__ import annotations

from gridflock.domain.envelopes import Envelope, EnvelopeKind, EnvelopeSource, TargetType
from gridflock.store import Store

T = 1_780_000_000.0


def test_save_replace_load_and_delete(store: Store) -> None:
    a = Envelope("a", TargetType.SITE, "s1", T, T + 900, None, 0.0, issued_at=T - 5)
    b = Envelope(
        "b",
        TargetType.NODE,
        "f1",
        T - 3600,
        T - 60,
        4.2,
        None,
        EnvelopeKind.PARA14A,
        EnvelopeSource.CSIP,
        T - 7200,
    )
    assert store.envelope_stamp() == (0, 0.0, 0.0)
    assert store.save_envelopes([a, b], "dso") == 2
    assert store.envelope_stamp() == (2, T - 5, T + 900)
    assert store.load_envelopes() == [b, a]
    assert store.load_envelopes(ending_after=T) == [a]
    a2 = Envelope("a", TargetType.SITE, "s1", T, T + 1800, 3.5, 1.25, issued_at=T)
    store.save_envelopes([a2], "dso")
    assert store.load_envelopes(ending_after=T) == [a2]
    stamp = store.envelope_stamp()
    assert store.delete_envelopes(["a", "nope"]) == ["a"]
    assert store.envelope_stamp() != stamp
    assert store.load_envelopes() == [b]
