"""Fleet files: YAML and CSV round trips, and every problem a bad file should report."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from gridflock.domain import DeviceKind, FleetSpec, Problem, ValidationError, build_spec
from gridflock.fleet.files import _fast_yaml, attribute_tables_markdown, read_fleet, write_fleet
from gridflock.fleet.generate import generate_fleet

DOC = Path(__file__).resolve().parents[2] / "docs" / "fleet-files.md"

GOOD_YAML = """\
version: 1
grid_nodes:
  - {id: tx-1, kind: transformer, limit_import_kw: 400, limit_export_kw: 400}
  - {id: feeder-1, kind: feeder, parent: tx-1, limit_import_kw: 250, limit_export_kw: 250}
sites:
  - id: home-00001
    lat: 48.14
    lon: 11.58
    tz: Europe/Berlin
    grid_node: feeder-1
    import_limit_kw: 25
    export_limit_kw: 10
    program: summer-peak
    region: north
    devices:
      - {id: home-00001-pv, kind: pv, kwp: 6.5, tilt_deg: 30, azimuth_deg: 180}
      - {id: home-00001-bat, kind: battery, e_kwh: 10, p_charge_max_kw: 5, p_discharge_max_kw: 5}
"""


def assert_specs_equal(a: FleetSpec, b: FleetSpec) -> None:
    pd.testing.assert_frame_equal(a.grid_nodes, b.grid_nodes)
    pd.testing.assert_frame_equal(a.sites, b.sites)
    assert set(a.devices) == set(b.devices)
    for kind in a.devices:
        pd.testing.assert_frame_equal(a.devices[kind], b.devices[kind], obj=kind.value)


def problems_of(path: Path | str) -> list[Problem]:
    with pytest.raises(ValidationError) as info:
        read_fleet(path)
    return info.value.problems


def one_problem(path: Path | str) -> Problem:
    problems = problems_of(path)
    assert len(problems) == 1, problems
    return problems[0]


def write(tmp_path: Path, text: str, name: str = "fleet.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def fleet() -> FleetSpec:
    return generate_fleet(300, seed=11)


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("name", ["fleet.yaml", "fleet.yml", "fleet.csv"])
def test_round_trip(tmp_path: Path, fleet: FleetSpec, name: str) -> None:
    path = tmp_path / name
    write_fleet(fleet, path)
    assert_specs_equal(read_fleet(path), fleet)


def test_csv_writes_companion_grid_node_file(tmp_path: Path, fleet: FleetSpec) -> None:
    write_fleet(fleet, tmp_path / "region.csv")
    nodes = pd.read_csv(tmp_path / "region.grid_nodes.csv")
    assert list(nodes["id"]) == list(fleet.grid_nodes["id"])
    rows = pd.read_csv(tmp_path / "region.csv")
    assert len(rows) == fleet.n_devices
    assert rows.columns[0] == "site_id"


def test_yaml_omits_defaults_and_nests_devices(tmp_path: Path, fleet: FleetSpec) -> None:
    path = tmp_path / "fleet.yaml"
    write_fleet(fleet, path)
    text = path.read_text()
    assert "eta_charge" not in text  # every battery keeps the default efficiency
    assert "site_id" not in text  # implied by nesting
    assert "    devices:\n      - {id: home-000001-" in text


def test_hand_written_yaml_reads(tmp_path: Path) -> None:
    spec = read_fleet(write(tmp_path, GOOD_YAML))
    assert spec.counts()["pv"] == 1
    bat = spec.devices[DeviceKind.BATTERY].iloc[0]
    assert bat["site_id"] == "home-00001"
    assert bat["soc_reserve"] == pytest.approx(0.2)  # declared default filled in
    assert bat["gateway_id"] == "home-00001"


def test_hand_written_layouts_read_the_same(tmp_path: Path) -> None:
    """Other indentation, block devices, comments and quotes go through PyYAML: same spec."""
    alt = """\
# a comment
version: 1
grid_nodes:
- id: tx-1
  kind: transformer
  limit_import_kw: 400
  limit_export_kw: 400.0
- {id: "feeder-1", kind: feeder, parent: tx-1, limit_import_kw: 250, limit_export_kw: 250}
sites:
- id: 'home-00001'   # trailing comment
  lat: 48.14
  lon: 11.58
  tz: Europe/Berlin
  grid_node: feeder-1
  import_limit_kw: 25
  export_limit_kw: 10
  program: summer-peak
  region: north
  devices:
  - id: home-00001-pv
    kind: pv
    kwp: 6.5
    tilt_deg: 30
    azimuth_deg: 180
  - {id: home-00001-bat, kind: battery, e_kwh: 10, p_charge_max_kw: 5, p_discharge_max_kw: 5}
"""
    assert_specs_equal(
        read_fleet(write(tmp_path, alt)), read_fleet(write(tmp_path, GOOD_YAML, "good.yaml"))
    )


def test_awkward_strings_round_trip(tmp_path: Path) -> None:
    """Strings YAML would read as something else are quoted; numbers stay exact."""
    nodes = [{"id": "007", "kind": "feeder", "limit_import_kw": 1e-7, "limit_export_kw": 1e9}]
    names = ["yes", "2024-01-01", "a: b", "#x", "on", "null", "1e5", "x, y", "Ünïcode", "-a", "~"]
    sites = [
        {"id": f"s{i}", "lat": 0.1 + i, "lon": 1 / 3, "grid_node": "007", "program": n, "region": n}
        for i, n in enumerate(names)
    ]
    devices = [{"id": n, "site_id": f"s{i}", "kind": "load"} for i, n in enumerate(names)]
    spec = build_spec(nodes, sites, devices)
    for name in ("odd.yaml", "odd.csv"):
        write_fleet(spec, tmp_path / name)
        assert_specs_equal(read_fleet(tmp_path / name), spec)
    text = (tmp_path / "odd.yaml").read_text()
    assert _fast_yaml(text) is None  # quoted strings: PyYAML reads it


def test_fast_path_matches_pyyaml(tmp_path: Path, fleet: FleetSpec) -> None:
    path = tmp_path / "fleet.yaml"
    write_fleet(fleet, path)
    text = path.read_text()
    fast = _fast_yaml(text)
    assert fast is not None
    assert fast == yaml.load(text, Loader=yaml.SafeLoader)


def test_empty_fleet_round_trips_in_yaml(tmp_path: Path) -> None:
    spec = build_spec([], [], [])
    write_fleet(spec, tmp_path / "empty.yaml")
    back = read_fleet(tmp_path / "empty.yaml")
    assert len(back.sites) == 0
    assert back.n_devices == 0


def test_csv_cannot_hold_a_site_without_devices(tmp_path: Path) -> None:
    spec = read_fleet(write(tmp_path, GOOD_YAML.split("    devices:")[0]))
    with pytest.raises(ValidationError) as info:
        write_fleet(spec, tmp_path / "fleet.csv")
    assert info.value.problems[0].entry == "site home-00001"
    assert "without devices" in info.value.problems[0].message


# ----------------------------------------------------------------------------- bad files


def test_missing_file(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.yaml")
    p = one_problem(path)
    assert (p.source, p.entry, p.field, p.message) == (path, "", "", "file not found")


def test_bad_suffix(tmp_path: Path) -> None:
    p = one_problem(write(tmp_path, GOOD_YAML, "fleet.json"))
    assert p.message.startswith("unsupported file suffix '.json'")
    assert ".yaml, .yml, .csv" in p.message


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD_YAML.replace("    lat: 48.14", "    lat: [48.14"))
    p = one_problem(path)
    assert p.source == str(path)
    assert p.entry.startswith("line ")
    assert p.message.startswith("YAML syntax error")
    assert int(p.entry.split()[1]) >= 7


def test_yaml_duplicate_key_is_a_syntax_problem(tmp_path: Path) -> None:
    p = one_problem(write(tmp_path, GOOD_YAML.replace("    lon: 11.58", "    lat: 11.58")))
    assert p.entry == "line 8"
    assert "duplicate key 'lat'" in p.message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD_YAML.replace("version: 1", "version: 2"), "unsupported version 2"),
        (GOOD_YAML.replace("version: 1\n", ""), "is required"),
    ],
)
def test_version(tmp_path: Path, text: str, message: str) -> None:
    p = one_problem(write(tmp_path, text))
    assert (p.entry, p.field) == ("", "version")
    assert message in p.message


def test_unknown_top_level_key(tmp_path: Path) -> None:
    p = one_problem(write(tmp_path, GOOD_YAML + "site: []\n"))
    assert p.field == "site"
    assert "unknown top-level key 'site'" in p.message
    assert "did you mean 'sites'?" in p.message


def test_unknown_field_typo(tmp_path: Path) -> None:
    p = one_problem(write(tmp_path, GOOD_YAML.replace("kwp: 6.5", "kwpp: 6.5, kwp: 6.5")))
    assert (p.entry, p.field) == ("device home-00001-pv", "kwpp")
    assert p.message.startswith("unknown field 'kwpp' for a pv device; did you mean 'kwp'?")
    assert "known fields: id, site_id, kind" in p.message


def test_unknown_site_field(tmp_path: Path) -> None:
    p = one_problem(write(tmp_path, GOOD_YAML.replace("region: north", "regoin: north")))
    assert (p.entry, p.field) == ("site home-00001", "regoin")
    assert "for a site" in p.message


def test_device_site_id_must_match_its_site(tmp_path: Path) -> None:
    p = one_problem(write(tmp_path, GOOD_YAML.replace("kind: pv,", "kind: pv, site_id: other,")))
    assert (p.entry, p.field) == ("device home-00001-pv", "site_id")
    assert "listed under site 'home-00001'" in p.message


@pytest.mark.parametrize(
    ("old", "new", "entry", "field", "message"),
    [
        (
            "kind: pv,",
            "kind: solar,",
            "device home-00001-pv",
            "kind",
            "unknown device kind 'solar'",
        ),
        (
            "e_kwh: 10",
            "e_kwh: -10",
            "device home-00001-bat",
            "e_kwh",
            "must be > 0 and <= 10000 kWh, got -10",
        ),
        (
            "e_kwh: 10",
            "e_kwh: 10, soc_initial: 1.2",
            "device home-00001-bat",
            "soc_initial",
            "must be >= 0 and <= 1, got 1.2",
        ),
        ("id: home-00001-bat", "id: home-00001-pv", "device home-00001-pv", "id", "duplicate id"),
        (
            "grid_node: feeder-1",
            "grid_node: feeder-9",
            "site home-00001",
            "grid_node",
            "unknown grid node 'feeder-9'",
        ),
    ],
)
def test_field_problems_from_build_spec(
    tmp_path: Path, old: str, new: str, entry: str, field: str, message: str
) -> None:
    path = write(tmp_path, GOOD_YAML.replace(old, new))
    problems = problems_of(path)
    p = problems[0]  # a SoC above 1 is also above soc_max: a second problem follows
    assert (p.source, p.entry, p.field) == (str(path), entry, field)
    assert message in p.message


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    text = GOOD_YAML.replace("version: 1", "version: 3").replace("kwp: 6.5", "kwpp: 6.5")
    problems = problems_of(write(tmp_path, text))
    assert {p.field for p in problems} == {"version", "kwpp", "kwp"}  # kwp now missing


def _csv_fleet(tmp_path: Path) -> Path:
    path = tmp_path / "fleet.csv"
    write_fleet(read_fleet(write(tmp_path, GOOD_YAML)), path)
    return path


def test_csv_site_columns_must_agree(tmp_path: Path) -> None:
    path = _csv_fleet(tmp_path)
    rows = pd.read_csv(path, dtype=str, keep_default_na=False)
    rows.loc[1, "site_lat"] = "48.5"
    rows.loc[1, "site_lon"] = "11.580"  # same value, other text: agrees
    rows.to_csv(path, index=False)
    p = one_problem(path)
    assert (p.entry, p.field) == ("site home-00001", "site_lat")
    assert "differs between rows of the same site ('48.14' vs '48.5')" in p.message


def test_csv_unknown_column_and_inapplicable_value(tmp_path: Path) -> None:
    path = _csv_fleet(tmp_path)
    rows = pd.read_csv(path, dtype=str, keep_default_na=False)
    rows["kwpp"] = ""
    rows.loc[rows["kind"] == "battery", "kwp"] = "3"
    rows.to_csv(path, index=False)
    problems = problems_of(path)
    assert [(p.entry, p.field) for p in problems] == [
        ("", "kwpp"),
        ("device home-00001-bat", "kwp"),
    ]
    assert "unknown column 'kwpp' in a fleet CSV; did you mean 'kwp'?" in problems[0].message
    assert "does not apply to a battery device" in problems[1].message


def test_csv_missing_grid_node_file(tmp_path: Path) -> None:
    path = _csv_fleet(tmp_path)
    (tmp_path / "fleet.grid_nodes.csv").unlink()
    p = one_problem(path)
    assert (p.source, p.message) == (str(tmp_path / "fleet.grid_nodes.csv"), "file not found")


def test_csv_grid_node_problems_name_the_companion_file(tmp_path: Path) -> None:
    path = _csv_fleet(tmp_path)
    nodes_path = tmp_path / "fleet.grid_nodes.csv"
    nodes_path.write_text(nodes_path.read_text().replace("400", "-400", 1))
    p = one_problem(path)
    assert (p.source, p.entry, p.field) == (str(nodes_path), "grid node tx-1", "limit_import_kw")


# ----------------------------------------------------------------------------- docs


def test_doc_tables_are_current() -> None:
    tables = attribute_tables_markdown()
    assert "| `kwp` | float | kWp | required | > 0 and <= 100000 |" in tables
    assert tables in DOC.read_text(encoding="utf-8"), (
        "docs/fleet-files.md is stale: paste attribute_tables_markdown() into it"
    )
