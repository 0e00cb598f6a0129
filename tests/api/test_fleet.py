"""Fleet summary, history, flexibility, grid nodes and fleet import."""

from __future__ import annotations

import pytest

from gridflock.fleet.files import write_fleet

PROBLEM = "application/problem+json"
T0 = 1_780_315_200.0  # 2026-06-01T12:00:00Z, when the tests' service clock stands


def test_fleet_summary_keeps_the_contract_names(client, runtime, keys):
    r = client.get("/api/v1/fleet", headers=keys.h("viewer"))
    assert r.status_code == 200
    body = r.json()
    for name in ("p_kw", "flex_up_kw", "flex_down_kw", "devices_online", "devices_total"):
        assert name in body
    assert body["devices_total"] == runtime.state.n
    assert body["devices_online"] == int(runtime.state.online.sum())
    assert body["ts"] == "2026-06-01T12:00:00Z"
    assert body["flex_duration_h"] == 1.0
    assert {row["kind"] for row in body["by_kind"]} >= {"battery", "pv", "load"}


SIX_HOURS = 6 * 3600.0


def _quarter_hourly_history(runtime) -> None:
    """The service has run since 06:00; one control cycle each quarter hour, to 12:00."""
    runtime.step(SIX_HOURS, every_s=900.0)


@pytest.mark.parametrize(("service_start", "twin_step_s"), [(T0 - SIX_HOURS, 60.0)], ids=["6h"])
def test_history_defaults_to_the_last_six_hours(client, runtime, keys):
    _quarter_hourly_history(runtime)
    r = client.get("/api/v1/fleet/history", headers=keys.h("viewer"))
    assert r.status_code == 200
    rows = r.json()
    assert rows[0]["ts"] == "2026-06-01T06:00:00Z"
    assert rows[-1]["ts"] == "2026-06-01T11:45:00Z"
    assert {"ts", "p_kw", "battery"} <= rows[0].keys()


@pytest.mark.parametrize(("service_start", "twin_step_s"), [(T0 - SIX_HOURS, 60.0)], ids=["6h"])
def test_history_window_and_bad_dates(client, runtime, keys):
    _quarter_hourly_history(runtime)
    h = keys.h("viewer")
    r = client.get(
        "/api/v1/fleet/history",
        params={"start": "2026-06-01T10:00:00Z", "end": "2026-06-01T11:00:00+00:00"},
        headers=h,
    )
    assert [row["ts"][11:16] for row in r.json()] == ["10:00", "10:15", "10:30", "10:45"]
    r = client.get("/api/v1/fleet/history", params={"start": "last tuesday"}, headers=h)
    assert r.status_code == 422
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["errors"][0]["field"] == "start"
    r = client.get(
        "/api/v1/fleet/history",
        params={"start": "2026-06-01T11:00:00Z", "end": "2026-06-01T10:00:00Z"},
        headers=h,
    )
    assert r.status_code == 422
    assert "before end" in r.json()["detail"]


@pytest.mark.parametrize("by", ["kind", "grid_node", "program", "region"])
def test_flexibility_by_group(client, keys, by):
    r = client.get(
        "/api/v1/flexibility", params={"by": by, "duration_h": 2}, headers=keys.h("viewer")
    )
    assert r.status_code == 200
    rows = r.json()
    assert rows
    for row in rows:
        assert {"group", "flex_up_kw", "flex_down_kw", "devices", "online"} <= row.keys()
        assert row["flex_up_kw"] >= 0
        assert row["flex_down_kw"] >= 0


def test_flexibility_rejects_unknown_grouping(client, keys):
    r = client.get("/api/v1/flexibility", params={"by": "colour"}, headers=keys.h("viewer"))
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "by"


def test_grid_nodes_carry_live_flow(client, runtime, keys):
    r = client.get("/api/v1/grid-nodes", headers=keys.h("viewer"))
    assert r.status_code == 200
    nodes = {n["id"]: n for n in r.json()}
    assert set(nodes) == set(runtime.spec.grid_nodes["id"])
    root = next(n for n in nodes.values() if n["parent"] == "")
    assert root["load_kw"] == pytest.approx(float(runtime.state.p_kw.sum()))
    for n in nodes.values():
        assert {"load_kw", "limit_import_kw", "limit_export_kw", "utilisation_pct"} <= n.keys()


def test_import_yaml_replaces_the_fleet(client, runtime, keys, tmp_path):
    from gridflock.fleet.generate import generate_fleet

    path = tmp_path / "fleet.yaml"
    write_fleet(generate_fleet(10, 3), path)
    r = client.post(
        "/api/v1/fleet/import",
        content=path.read_bytes(),
        headers={**keys.h("admin"), "Content-Type": "application/yaml"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["sites"] == 10
    assert len(runtime.spec.sites) == 10
    r = client.get("/api/v1/sites", headers=keys.h("viewer"))
    assert r.json()["total"] == 10


def test_import_csv_keeps_the_grid_nodes(client, runtime, keys, tmp_path):
    path = tmp_path / "fleet.csv"
    write_fleet(runtime.spec, path)
    text = path.read_text()
    r = client.post(
        "/api/v1/fleet/import",
        content=text.encode(),
        headers={**keys.h("admin"), "Content-Type": "text/csv; charset=utf-8"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["devices"] == runtime.state.n


BAD_YAML = """version: 1
grid_nodes:
  - {id: tx-1, kind: transformer, limit_import_kw: 100, limit_export_kw: 100}
sites:
  - id: home-1
    lat: 48.1
    lon: 11.5
    grid_node: tx-9
    devices:
      - {id: home-1-bat, kind: battery, e_kwh: -10}
      - {id: home-1-pv, kind: pv}
"""


def test_import_of_a_bad_yaml_lists_every_problem(client, runtime, keys):
    before = runtime.spec
    r = client.post(
        "/api/v1/fleet/import",
        content=BAD_YAML.encode(),
        headers={**keys.h("admin"), "Content-Type": "application/yaml"},
    )
    assert r.status_code == 422
    assert r.headers["content-type"] == PROBLEM
    problem = r.json()
    errors = problem["errors"]
    where = {(e["entry"], e["field"]) for e in errors}
    assert ("site home-1", "grid_node") in where
    assert ("device home-1-bat", "e_kwh") in where
    assert ("device home-1-pv", "kwp") in where
    assert all(e["message"] and e["source"] == "body" for e in errors)
    assert f"{len(errors)} problem(s)" in problem["detail"]
    assert runtime.spec is before


def test_import_of_broken_yaml_syntax_is_a_problem(client, keys):
    r = client.post(
        "/api/v1/fleet/import",
        content=b"version: 1\nsites: [\n",
        headers={**keys.h("admin"), "Content-Type": "application/yaml"},
    )
    assert r.status_code == 422
    assert r.json()["errors"]


def test_import_needs_yaml_or_csv(client, keys):
    r = client.post(
        "/api/v1/fleet/import",
        json={"version": 1},
        headers=keys.h("admin"),
    )
    assert r.status_code == 415
    assert r.headers["content-type"] == PROBLEM


def test_grid_nodes_report_where_the_fleet_pushed_against_a_limit(client, runtime, keys):
    runtime.step(180)  # three minute samples of every node's flow
    hist = runtime.group_history(runtime.now() - 86_400, runtime.now() + 1, "grid_node")
    nodes = {n["id"]: n for n in client.get("/api/v1/grid-nodes", headers=keys.h("viewer")).json()}
    grid = runtime.state.grid
    for j, nid in enumerate(grid.node_ids):
        p = hist.loc[hist["group"] == nid, "p_kw"].to_numpy()
        limit = [grid.limit_export_kw[j] if x >= 0 else grid.limit_import_kw[j] for x in p]
        expected = max(abs(x) / lim * 100 for x, lim in zip(p, limit, strict=True))
        assert nodes[nid]["peak_utilisation_pct_24h"] == pytest.approx(expected)
        assert nodes[nid]["peak_at"] is not None
