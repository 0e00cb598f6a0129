"""Operating envelopes: parsing with every problem reported, and the overlap rule."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridflock.domain.envelopes import (
    Envelope,
    EnvelopeKind,
    EnvelopeSource,
    TargetType,
    parse_csip,
    parse_csv,
    parse_envelopes,
    resolve,
)
from gridflock.domain.errors import ValidationError

NOW = 1_780_000_000.0  # 2026-05-28


def _iso(ts: float) -> str:
    return np.datetime_as_string(np.datetime64(int(ts), "s")) + "Z"


def test_a_valid_batch_parses() -> None:
    out = parse_envelopes(
        [
            {
                "id": "a",
                "target_type": "site",
                "target_id": "s1",
                "start": _iso(NOW),
                "end": _iso(NOW + 900),
                "export_limit_kw": 0,
            },
            {
                "target_type": "node",
                "target_id": "feeder-1",
                "start": NOW,
                "end": NOW + 900,
                "import_limit_kw": 50,
                "kind": "para14a",
            },
        ],
        now=NOW,
    )
    assert out[0].export_limit_kw == 0.0
    assert out[0].import_limit_kw is None
    assert out[0].issued_at == NOW
    assert out[0].source is EnvelopeSource.API
    assert out[1].target_type is TargetType.NODE
    assert out[1].kind is EnvelopeKind.PARA14A
    assert len(out[1].id) == 32  # generated


def test_every_problem_is_reported_at_once() -> None:
    bad = [
        {"target_id": "s1", "start": "2026-05-28T10:00", "end": _iso(NOW), "export_limit_kw": 1},
        {"target_id": "", "start": _iso(NOW), "end": _iso(NOW - 10), "import_limit_kw": -1},
        {"target_id": "s1", "start": _iso(NOW), "end": _iso(NOW + 9e8), "import_limit_kw": 1e12},
        {"target_id": "s1", "start": _iso(NOW), "end": _iso(NOW + 60)},
        {"target_id": "s1", "start": NOW, "end": NOW + 60, "kind": "para14a", "export_limit_kw": 1},
        {"target_id": "s1", "start": NOW, "end": NOW + 60, "import_limit_kw": "nan"},
        {"target_id": "s1", "start": NOW, "end": NOW + 60, "export_limit_kw": 1, "kind": "x"},
        "not an object",
    ]
    with pytest.raises(ValidationError) as exc:
        parse_envelopes(bad, now=NOW)
    text = str(exc.value)
    for needle in (
        "no UTC offset",
        "target_id: is required",
        "end: must be after start",
        "import_limit_kw: must be within [0, 1e+06]",
        "366 days ahead",
        "give at least one limit",
        "consumption only",
        "EnvelopeKind: must be one of",
        "envelope 7: must be an object",
    ):
        assert needle in text, needle
    assert len(exc.value.problems) >= 9


def test_csv_and_its_problems() -> None:
    text = (
        "id,target_type,target_id,start,end,import_limit_kw,export_limit_kw,kind\n"
        f"e1,site,s1,{_iso(NOW)},{_iso(NOW + 900)},,2.5,flexible_export\n"
        f"e2,node,n1,{_iso(NOW)},{_iso(NOW + 900)},100,,\n"
    )
    out = parse_csv(text, now=NOW)
    assert [e.id for e in out] == ["e1", "e2"]
    assert out[0].source is EnvelopeSource.FILE
    assert out[0].export_limit_kw == 2.5
    with pytest.raises(ValidationError, match="missing column"):
        parse_csv("id,target_id\nx,y\n", now=NOW)


def test_csip_der_control_list_with_multipliers() -> None:
    doc = {
        "DERControl": [
            {
                "mRID": "C1",
                "creationTime": NOW - 60,
                "interval": {"start": NOW, "duration": 300},
                "DERControlBase": {
                    "csipaus:opModExpLimW": {"value": 15, "multiplier": 2},
                    "csipaus:opModImpLimW": {"value": 5000, "multiplier": 0},
                },
            },
            {
                "mRID": "C2",
                "creationTime": NOW - 30,
                "EventStatus": {"currentStatus": 2},  # cancelled: skipped
                "interval": {"start": NOW, "duration": 300},
                "DERControlBase": {"opModExpLimW": {"value": 0, "multiplier": 0}},
            },
        ]
    }
    out = parse_csip(
        json.loads(json.dumps(doc)), target_type=TargetType.SITE, target_id="s1", now=NOW
    )
    assert len(out) == 1
    e = out[0]
    assert (e.id, e.export_limit_kw, e.import_limit_kw) == ("C1", 1.5, 5.0)
    assert (e.start, e.end, e.issued_at, e.source) == (
        NOW,
        NOW + 300,
        NOW - 60,
        EnvelopeSource.CSIP,
    )
    doc["DERControl"][0]["DERControlBase"]["csipaus:opModExpLimW"]["multiplier"] = 99
    with pytest.raises(ValidationError, match="multiplier"):
        parse_csip(doc, target_type=TargetType.SITE, target_id="s1", now=NOW)


# ---------------------------------------------------------------------- the overlap rule


def _brute(envs: list[Envelope], t: float) -> float:
    """Export limit at instant t: newest per source among those active, then the minimum."""
    best: dict[EnvelopeSource, list[Envelope]] = {}
    for e in envs:
        if e.start <= t < e.end and e.export_limit_kw is not None:
            best.setdefault(e.source, []).append(e)
    out = np.inf
    for group in best.values():
        newest = max(e.issued_at for e in group)
        out = min([out] + [e.export_limit_kw for e in group if e.issued_at == newest])  # type: ignore[misc]
    return float(out)


envelope_st = st.builds(
    lambda s, d, lim, src, iss: Envelope(
        "x",
        TargetType.SITE,
        "s",
        float(s),
        float(s + d),
        None,
        float(lim),
        EnvelopeKind.DOE,
        src,
        float(iss),
    ),
    st.integers(0, 100),
    st.integers(1, 60),
    st.integers(0, 20),
    st.sampled_from(list(EnvelopeSource)),
    st.integers(0, 5),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(envelope_st, max_size=8), st.lists(st.integers(1, 30), min_size=1, max_size=6))
def test_resolve_matches_the_instant_rule_at_its_strictest(
    envs: list[Envelope], widths: list[int]
) -> None:
    edges = np.concatenate([[0.0], np.cumsum(widths) * 5.0])
    res = resolve(envs, edges)
    got = res.export_kw[0] if len(res.target_id) else np.full(len(edges) - 1, np.inf)
    for k in range(len(edges) - 1):
        # the step's limit is the strictest instant one; breakpoints are integers
        ts = np.arange(edges[k], edges[k + 1], 0.5)
        want = min(_brute(envs, float(t)) for t in ts)
        assert got[k] == want, (k, got[k], want)


def test_a_newer_envelope_relaxes_an_older_one_of_the_same_source_only() -> None:
    def env(lim: float, iss: float, src: EnvelopeSource) -> Envelope:
        return Envelope("x", TargetType.SITE, "s", 0.0, 100.0, None, lim, source=src, issued_at=iss)

    edges = np.array([0.0, 100.0])
    api_old, api_new = env(2.0, 1.0, EnvelopeSource.API), env(5.0, 2.0, EnvelopeSource.API)
    assert resolve([api_old, api_new], edges).export_kw[0, 0] == 5.0
    csip = env(3.0, 0.0, EnvelopeSource.CSIP)
    assert resolve([api_old, api_new, csip], edges).export_kw[0, 0] == 3.0
    # the import direction is untouched by export-only envelopes
    assert resolve([api_old], edges).import_kw[0, 0] == np.inf
