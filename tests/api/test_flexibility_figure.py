"""One flexibility figure: the overview card, the hold-time table, /fleet and /flexibility agree.

The card shows ``GET /fleet``; the hold-time table sums ``GET /flexibility`` rows by kind;
the event form sums them for its scope. All come from ``fleet.available``, so on one
state every grouping of ``/flexibility`` at the summary's hold sums to ``/fleet``.
"""

from __future__ import annotations

import pytest

FIGURES = (
    "flex_up_kw",
    "flex_down_kw",
    "committed_up_kw",
    "committed_down_kw",
    "remaining_up_kw",
    "remaining_down_kw",
)


def _check_agreement(client, h, scope: str = "fleet") -> dict:
    fleet = client.get("/api/v1/fleet", headers=h).json()
    hold = fleet["flex_duration_h"]
    for row_kind in fleet["by_kind"]:
        assert set(FIGURES) <= row_kind.keys()
    for name in FIGURES:
        assert sum(r[name] for r in fleet["by_kind"]) == pytest.approx(fleet[name], abs=1e-6)
    for by in ("kind", "grid_node", "program", "region"):
        r = client.get("/api/v1/flexibility", params={"duration_h": hold, "by": by}, headers=h)
        assert r.status_code == 200
        rows = r.json()
        for name in FIGURES:
            assert sum(row[name] for row in rows) == pytest.approx(fleet[name], abs=1e-6), (
                by,
                name,
            )
    return fleet


def test_card_table_fleet_and_flexibility_agree(client, runtime, keys):
    runtime.step(10.0)
    fleet = _check_agreement(client, keys.h("viewer"))
    assert fleet["flex_up_kw"] > 0
    assert fleet["committed_up_kw"] == 0.0
    assert fleet["remaining_up_kw"] == pytest.approx(fleet["flex_up_kw"])


def test_an_event_commits_flexibility_and_leaves_the_rest_remaining(client, runtime, keys):
    runtime.step(10.0)
    h = keys.h("operator")

    def by_program() -> dict[str, dict]:
        rows = client.get(
            "/api/v1/flexibility", params={"duration_h": 1.0, "by": "program"}, headers=h
        ).json()
        return {row["group"]: row for row in rows}

    before = by_program()
    busy, other = sorted(before, key=lambda g: -before[g]["flex_up_kw"])[:2]
    target = before[busy]["flex_up_kw"] / 3
    r = client.post(
        "/api/v1/events", json={"target_kw": target, "scope": f"program:{busy}"}, headers=h
    )
    assert r.status_code == 201
    runtime.step(30.0)
    fleet = _check_agreement(client, h)
    assert fleet["committed_up_kw"] == pytest.approx(target, rel=0.25)
    assert fleet["remaining_up_kw"] < fleet["flex_up_kw"] - 0.5 * target
    after = by_program()
    # a device serves one event at a time: what the event holds is committed in its
    # programme and not offered again, while the devices it did not need to claim stay
    # available to another event
    assert after[busy]["committed_up_kw"] == pytest.approx(fleet["committed_up_kw"])
    assert (
        after[busy]["remaining_up_kw"] + after[busy]["committed_up_kw"]
        <= after[busy]["flex_up_kw"] + 1e-6
    )
    assert after[busy]["remaining_up_kw"] <= before[busy]["flex_up_kw"] - 0.5 * target
    assert after[busy]["remaining_up_kw"] > 0.2 * before[busy]["flex_up_kw"]
    assert after[other]["committed_up_kw"] == 0.0
    assert after[other]["remaining_up_kw"] > 0
    rows = client.get(
        "/api/v1/flexibility",
        params={"duration_h": 1.0, "by": "kind", "scope": f"program:{other}"},
        headers=h,
    ).json()
    # the scope's exact figure: at least its share when the whole fleet moves together
    in_scope = sum(r["remaining_up_kw"] for r in rows)
    assert after[other]["remaining_up_kw"] - 1e-6 <= in_scope <= fleet["remaining_up_kw"] + 1e-6


@pytest.mark.parametrize(
    ("scope", "words"),
    [
        ("program:nobody", "no site has program 'nobody'"),
        ("county:x", "invalid scope 'county:x'"),
        ("grid_node:nowhere", "unknown grid node 'nowhere'"),
    ],
)
def test_an_unknown_scope_is_a_problem(client, keys, scope, words):
    r = client.get("/api/v1/flexibility", params={"scope": scope}, headers=keys.h("viewer"))
    assert r.status_code == 422
    assert words in r.json()["detail"]
