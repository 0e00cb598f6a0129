"""The grid-facing figures of the API: frequency-response capacity and code breaches."""

from __future__ import annotations

import numpy as np
import pytest

from gridflock.fleet import frequency_response

G98_BREACH = """version: 1
grid_nodes:
  - {id: tx-1, kind: transformer, limit_import_kw: 100, limit_export_kw: 100}
sites:
  - id: london-1
    lat: 51.5
    lon: -0.1
    grid_node: tx-1
    devices:
      - {id: london-1-bat, kind: battery, e_kwh: 10, p_charge_max_kw: 5, p_discharge_max_kw: 5}
"""


def test_flexibility_carries_frequency_response_capacity(client, runtime, keys):
    r = client.get("/api/v1/flexibility", params={"by": "kind"}, headers=keys.h("viewer"))
    assert r.status_code == 200, r.text
    rows = {row["group"]: row for row in r.json()}
    st = runtime.state
    cap = frequency_response(st, runtime.clock())
    for kind, s in st.kind_slices.items():
        want = float(np.where(st.online[s], cap.up_kw[s], 0.0).sum())
        if kind.value in rows:
            assert rows[kind.value]["ffr_up_kw"] == pytest.approx(want, abs=1e-3)
            assert rows[kind.value]["ffr_down_kw"] >= 0
    for slow in ("heat_pump", "ev_charger"):
        if slow in rows:
            assert rows[slow]["ffr_up_kw"] == 0


def test_import_refuses_a_device_that_breaks_its_grid_code(client, runtime, keys):
    n_before = runtime.state.n
    r = client.post(
        "/api/v1/fleet/import",
        content=G98_BREACH.encode(),
        headers={**keys.h("admin"), "Content-Type": "application/yaml"},
    )
    assert r.status_code == 422, r.text
    err = r.json()["errors"][0]
    assert (err["entry"], err["field"]) == ("battery london-1-bat", "p_discharge_max_kw")
    assert "G98" in err["message"]
    assert "grid_code" in err["message"]
    assert runtime.state.n == n_before
    fixed = G98_BREACH.replace(
        "    grid_node: tx-1\n", "    grid_node: tx-1\n    grid_code: GB-G99\n"
    )
    r = client.post(
        "/api/v1/fleet/import",
        content=fixed.encode(),
        headers={**keys.h("admin"), "Content-Type": "application/yaml"},
    )
    assert r.status_code == 200, r.text


def test_push_settings_to_the_twin_gateways_and_see_their_answers(client, runtime, keys):
    # at start the service pushed every inverter its site profile's settings
    r = client.get("/api/v1/gridcode/settings", headers=keys.h("viewer"))
    assert r.status_code == 200, r.text
    first = r.json()
    inverters = runtime.spec.all_devices()
    inverters = inverters[inverters["kind"].isin(["pv", "battery", "wind"])]
    assert first["devices"] == len(inverters)
    assert first["by_status"] == {"accepted": len(inverters)}  # answered in the first cycle
    rec = first["settings"][0]
    assert rec["adopted"]["freq_watt"] == "verified"
    assert rec["product"] is None
    # an operator pushes Dynamic Containment: every device, new seq, the product's droop
    r = client.post(
        "/api/v1/gridcode/push",
        json={"product": "GB-DC", "deadband_hz": 0.015},
        headers=keys.h("operator"),
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["pushed"] == out["devices"] == out["sent"] >= len(inverters)
    runtime.step(2.0)
    after = client.get("/api/v1/gridcode/settings", headers=keys.h("viewer")).json()
    assert after["product"] == "GB-DC"
    assert after["by_status"] == {"accepted": out["devices"]}
    seqs = {s["device_id"]: s["seq"] for s in first["settings"]}
    for s in after["settings"]:
        assert s["ffr"]["product"] == "GB-DC"
        if s["device_id"] in seqs:
            assert s["seq"] > seqs[s["device_id"]]
            assert s["freq_watt"]["db_under_hz"] == 0.015
    # the twin's devices run on what was pushed
    some = after["settings"][0]["device_id"]
    assert runtime.link.pushed[some].ffr.product == "GB-DC"


def test_push_refuses_what_it_cannot_use(client, keys):
    r = client.post(
        "/api/v1/gridcode/push", json={"product": "NO-SUCH"}, headers=keys.h("operator")
    )
    assert r.status_code == 422
    assert "GB-DC" in r.json()["detail"]  # the known products are listed
    r = client.post("/api/v1/gridcode/push", json={"droop": 0.5}, headers=keys.h("operator"))
    assert r.status_code == 422
    r = client.post("/api/v1/gridcode/push", json={}, headers=keys.h("viewer"))
    assert r.status_code == 403
