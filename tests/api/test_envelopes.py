"""Envelopes over the API: batches validated at once, CSV and CSIP-AUS imports, roles, effect."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gridflock.domain.envelopes import Envelope, EnvelopeSource, TargetType

# the store's envelope table runs on both backends in tests/store; the API on one
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

PROBLEM = "application/problem+json"
T0_ISO = "2026-06-01T12:00:00Z"  # the service clock at start (conftest.T0)
T1_ISO = "2026-06-01T13:00:00Z"


def _site_and_node(runtime) -> tuple[str, str]:
    g = runtime.state.grid
    return str(g.site_ids[0]), str(g.node_ids[0])


def test_envelopes_set_listed_imported_and_deleted(client, runtime, keys):
    """One service (its start is the slow part): bad batches, a batch, CSV, CSIP, restart."""
    _bad_batches_are_refused_whole(client, runtime, keys)
    site, node = _site_and_node(runtime)
    batch = [
        {
            "id": "zero-export",
            "target_type": "site",
            "target_id": site,
            "start": T0_ISO,
            "end": T1_ISO,
            "export_limit_kw": 0,
        },
        {
            "id": "node-cap",
            "target_type": "node",
            "target_id": node,
            "start": "2026-06-01T12:30:00Z",
            "end": T1_ISO,
            "import_limit_kw": 20,
            "kind": "doe",
        },
    ]
    batch.append(
        {
            "id": "node-now",
            "target_type": "node",
            "target_id": node,
            "start": T0_ISO,
            "end": T1_ISO,
            "export_limit_kw": 0.5,
        }
    )
    r = client.request("PUT", "/api/v1/envelopes", json=batch, headers=keys.h("viewer"))
    assert r.status_code == 403
    r = client.request("PUT", "/api/v1/envelopes", json=batch, headers=keys.h("operator"))
    assert r.status_code == 200, r.text
    assert r.json() == {"saved": 3, "ids": ["zero-export", "node-cap", "node-now"]}
    assert {e.id for e in runtime.dispatcher.envelopes} == {"zero-export", "node-cap", "node-now"}
    runtime.step(2.0)
    grid = runtime.dispatcher.grid_at(runtime.now())
    assert grid.site_export_limit_kw[0] == 0.0  # honoured by the next cycle

    r = client.get("/api/v1/envelopes", headers=keys.h("viewer"))
    items = r.json()["items"]
    assert [i["id"] for i in items] == ["node-now", "zero-export", "node-cap"]
    assert [i["in_force"] for i in items] == [True, True, False]
    assert items[1]["export_limit_kw"] == 0.0
    assert items[1]["import_limit_kw"] is None
    assert items[1]["source"] == "api"
    shown = {n["id"]: n for n in client.get("/api/v1/grid-nodes", headers=keys.h("viewer")).json()}
    assert shown[node]["envelope"] is True
    assert shown[node]["limit_export_kw"] == 0.5
    r = client.get(
        "/api/v1/envelopes", params={"active_at": "2026-06-01T12:45:00Z"}, headers=keys.h("viewer")
    )
    assert r.json()["total"] == 3

    r = client.delete("/api/v1/envelopes", params={"id": ["node-cap"]}, headers=keys.h("operator"))
    assert r.status_code == 200
    assert r.json()["deleted"] == 1
    assert [e.id for e in runtime.dispatcher.envelopes] == ["node-now", "zero-export"]
    r = client.delete("/api/v1/envelopes", params={"id": ["node-cap"]}, headers=keys.h("operator"))
    assert r.status_code == 404
    # envelopes written straight into the store (gridflock envelopes import) are taken up
    # within RELOAD_S of service time
    cli = Envelope(
        "from-cli",
        TargetType.SITE,
        site,
        runtime.now(),
        runtime.now() + 600,
        2.0,
        None,
        source=EnvelopeSource.FILE,
        issued_at=runtime.now(),
    )
    runtime.store.save_envelopes([cli], "cli")
    runtime.step(32.0)
    assert "from-cli" in {e.id for e in runtime.dispatcher.envelopes}
    # a restart takes up what the store holds
    runtime.envelope_service._live.clear()
    runtime.envelope_service._stamp = None
    runtime.envelope_service.load()
    assert [e.id for e in runtime.envelopes.find()] == ["node-now", "zero-export", "from-cli"]
    _csv_and_csip_imports(client, runtime, keys)


def _bad_batches_are_refused_whole(client, runtime, keys):
    site, _ = _site_and_node(runtime)
    good = {"target_type": "site", "target_id": site, "start": T0_ISO, "end": T1_ISO}
    batch = [
        good | {"export_limit_kw": 1.0},
        good | {"export_limit_kw": -1.0},
        good | {"import_limit_kw": 1e300},
        good | {"end": "2099-01-01T00:00:00Z", "export_limit_kw": 1},
        good | {"start": "2026-06-01T12:00:00", "export_limit_kw": 1},
    ]
    r = client.request("PUT", "/api/v1/envelopes", json=batch, headers=keys.h("operator"))
    assert r.status_code == 422
    assert r.headers["content-type"] == PROBLEM
    errors = r.json()["errors"]
    assert len(errors) == 4
    assert runtime.dispatcher.envelopes == ()  # nothing stored, nothing applied
    r = client.request(
        "PUT",
        "/api/v1/envelopes",
        json=[good | {"target_id": "no-such-site", "export_limit_kw": 1}],
        headers=keys.h("operator"),
    )
    assert r.status_code == 422
    assert "no site 'no-such-site' in the fleet" in r.text
    r = client.request("PUT", "/api/v1/envelopes", content=b"{not json", headers=keys.h("operator"))
    assert r.status_code == 422
    assert "not JSON" in r.text


def _csv_and_csip_imports(client, runtime, keys):
    site, node = _site_and_node(runtime)
    csv_text = (
        "id,target_type,target_id,start,end,import_limit_kw,export_limit_kw,kind\n"
        f"fx,site,{site},{T0_ISO},{T1_ISO},,2.5,flexible_export\n"
    )
    h = keys.h("operator") | {"Content-Type": "text/csv"}
    r = client.request("PUT", "/api/v1/envelopes", content=csv_text.encode(), headers=h)
    assert r.status_code == 200, r.text
    doc = {
        "DERControl": [
            {
                "mRID": "A1B2",
                "creationTime": 1_780_315_000,
                "interval": {"start": 1_780_315_200, "duration": 900},
                "DERControlBase": {"csipaus:opModExpLimW": {"value": 15, "multiplier": 3}},
            }
        ]
    }
    r = client.request(
        "PUT",
        "/api/v1/envelopes/csip",
        params={"target_type": "node", "target_id": node},
        content=json.dumps(doc).encode(),
        headers=keys.h("operator") | {"Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text
    got = {e.id: e for e in runtime.envelopes.find()}
    assert got["fx"].source.value == "file"
    assert got["fx"].export_limit_kw == 2.5
    assert got["A1B2"].source.value == "csip"
    assert got["A1B2"].export_limit_kw == 15.0  # 15 x 10^3 W


def test_a_site_past_its_envelope_is_held_inside_it_and_released(client, runtime, keys):
    """No event, no plan on it: the twin's most exporting site gets a zero-export envelope."""
    runtime.step(6.0)
    st = runtime.state
    site_p = st.site_power_kw()
    i = int(np.argmax(site_p))
    assert site_p[i] > 0.5, "the fleet exports at noon in June"
    sid = str(st.grid.site_ids[i])
    batch = [
        {
            "id": "hold-me",
            "target_type": "site",
            "target_id": sid,
            "start": T0_ISO,
            "end": T1_ISO,
            "export_limit_kw": 0.2,
        }
    ]
    r = client.request("PUT", "/api/v1/envelopes", json=batch, headers=keys.h("operator"))
    assert r.status_code == 200, r.text
    runtime.step(20.0)
    assert runtime.state.site_power_kw()[i] <= 0.2 + 0.05  # the twin's measured net power
    body = client.get("/api/v1/envelopes/holds", headers=keys.h("viewer")).json()
    row = next(s for s in body["sites"] if s["site_id"] == sid)
    assert row["devices_held"] >= 1
    assert row["moved_kw"] < 0
    assert row["since"]
    assert row["breach_kw"] > 0
    assert abs(row["left_kw"]) < 1e-6
    assert {"site_id": sid, "action": "held"}.items() <= body["log"][-1].items()
    metrics = client.get("/metrics").text
    assert "gridflock_envelope_held_sites 1.0" in metrics
    # the commands went the dispatcher's way: stored under the event id "envelope"
    cmds = runtime.store.commands_for_event("envelope")
    assert len(cmds) >= 1
    assert cmds["seq"].is_monotonic_increasing
    r = client.request("DELETE", "/api/v1/envelopes?id=hold-me", headers=keys.h("operator"))
    assert r.status_code == 200
    runtime.step(4.0)
    body = client.get("/api/v1/envelopes/holds", headers=keys.h("viewer")).json()
    assert body["devices_held"] == 0
    assert body["log"][0]["action"] == "released"
    assert body["log"][0]["site_id"] == sid
    assert runtime.state.site_power_kw()[i] > 0.5  # back to exporting on its own
    audit = runtime.store.audit_log(action="envelopes.hold")
    assert [a.detail["released"] for a in audit[:1]] == [[sid]]
    assert sid in audit[-1].detail["held"]
