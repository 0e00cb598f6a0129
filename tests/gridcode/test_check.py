"""Fleet validation reports devices that break their site's grid code, with the clause."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from gridflock.cli import app
from gridflock.gridcode import check_fleet

from ._fleets import spec_of


def _bat(site: str, p_kw: float) -> dict:
    return {
        "id": f"{site}-bat",
        "site_id": site,
        "kind": "battery",
        "e_kwh": 10,
        "p_charge_max_kw": p_kw,
        "p_discharge_max_kw": p_kw,
    }


def test_g98_site_beyond_16a_is_an_error_naming_device_clause_and_fix():
    spec = spec_of(
        [
            {"id": "london", "lat": 51.5, "lon": -0.1},  # GB-G98 by position
            {"id": "small", "lat": 51.5, "lon": -0.1},
            {"id": "g99", "lat": 51.5, "lon": -0.1, "grid_code": "GB-G99"},
        ],
        [
            _bat("london", 5.0),
            {"id": "london-pv", "site_id": "london", "kind": "pv", "kwp": 3.0},
            _bat("small", 3.0),
            _bat("g99", 5.0),
        ],
    )
    issues = check_fleet(spec)
    errors = [i for i in issues if i.severity == "error"]
    assert {i.entry for i in errors} == {"battery london-bat", "pv london-pv"}
    bat = next(i for i in errors if i.entry == "battery london-bat")
    assert bat.field == "p_discharge_max_kw"
    assert "G98" in bat.clause
    assert "16 A" in bat.clause
    assert "3.68 kW" in bat.message
    assert "7.58 kW" in bat.message
    assert "grid_code" in bat.message


def test_unknown_code_is_an_error_and_a_site_without_code_a_warning():
    spec = spec_of(
        [{"id": "x", "grid_code": "XX-1"}, {"id": "tokyo", "lat": 35.7, "lon": 139.7}],
        [_bat("x", 3), _bat("tokyo", 3)],
    )
    issues = {(i.severity, i.entry, i.field) for i in check_fleet(spec)}
    assert issues == {("error", "site x", "grid_code"), ("warning", "site tokyo", "grid_code")}
    msg = next(i.message for i in check_fleet(spec) if i.severity == "error")
    assert "'XX-1'" in msg
    assert "DE-VDE4105" in msg


def test_charger_that_cannot_keep_the_14a_floor_is_a_warning():
    ev = {"site_id": "m", "kind": "ev_charger", "p_max_kw": 22}
    spec = spec_of(
        [{"id": "m", "lat": 48.1, "lon": 11.6}],
        [{**ev, "id": "ok", "p_min_kw": 4.1}, {**ev, "id": "high", "p_min_kw": 5.5}],
    )
    issues = check_fleet(spec)
    assert [(i.severity, i.entry, i.field) for i in issues] == [
        ("warning", "ev_charger high", "p_min_kw")
    ]
    assert "§14a" in issues[0].clause
    assert "4.2 kW" in issues[0].message


def test_cli_validate_refuses_a_breach_and_passes_a_clean_fleet(tmp_path: Path):
    doc = {
        "version": 1,
        "grid_nodes": [{"id": "f", "limit_import_kw": 100, "limit_export_kw": 100}],
        "sites": [
            {
                "id": "home-1",
                "lat": 51.5,
                "lon": -0.1,
                "grid_node": "f",
                "devices": [
                    {
                        "id": "b1",
                        "kind": "battery",
                        "e_kwh": 10,
                        "p_charge_max_kw": 5,
                        "p_discharge_max_kw": 5,
                    }
                ],
            }
        ],
    }
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc))
    r = CliRunner().invoke(app, ["fleet", "validate", str(bad)])
    assert r.exit_code == 2, r.output
    assert "battery b1" in r.output
    assert "G98" in r.output
    doc["sites"][0]["grid_code"] = "GB-G99"
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(doc))
    r = CliRunner().invoke(app, ["fleet", "validate", str(good)])
    assert r.exit_code == 0, r.output
