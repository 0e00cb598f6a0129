"""Keep the user docs in docs/ true to the code: summary schema, CLI options, links."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest
import typer.main

from gridflock.cli import app
from gridflock.fleet.generate import generate_fleet
from gridflock.sim.report import summary
from gridflock.sim.scenario import ScenarioConfig, run_scenario

DOCS = Path(__file__).resolve().parents[1] / "docs"
SCHEMA = DOCS / "summary.schema.json"


# ---------------------------------------------------------------------- summary.json schema

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "null": (type(None),),
}


def _is_type(value: Any, name: str) -> bool:
    if isinstance(value, bool) and name in ("number", "integer"):
        return False
    if name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _JSON_TYPES[name])


def structural_errors(value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """The subset of JSON Schema the summary schema uses, for when jsonschema is absent.

    Checks type, required, properties, additionalProperties (false), items, enum, const,
    not-const, minimum and maximum; ignores annotations such as format and description.
    """
    errors: list[str] = []
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        if not any(_is_type(value, t) for t in names):
            return [f"{path}: expected {' or '.join(names)}, got {type(value).__name__}"]
    if "const" in schema and value != schema["const"]:
        errors.append(f"{path}: must be {schema['const']!r}, got {value!r}")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: must be one of {schema['enum']}, got {value!r}")
    if "not" in schema and "const" in schema["not"] and value == schema["not"]["const"]:
        errors.append(f"{path}: must not be {schema['not']['const']!r}")
    if _is_type(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{path}: {value} < minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{path}: {value} > maximum {schema['maximum']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        errors += [
            f"{path}: missing required key {k!r}"
            for k in schema.get("required", [])
            if k not in value
        ]
        if schema.get("additionalProperties") is False:
            errors += [f"{path}: key {k!r} is not in the schema" for k in value if k not in props]
        for key, sub in props.items():
            if key in value:
                errors += structural_errors(value[key], sub, f"{path}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += structural_errors(item, schema["items"], f"{path}[{i}]")
    return errors


def validation_errors(instance: Any, schema: dict[str, Any]) -> list[str]:
    """Validate with jsonschema when it is installed, else with the structural check."""
    try:
        import jsonschema
    except ImportError:
        return structural_errors(instance, schema)
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(instance)
    ]


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA.read_text())
    return loaded


@pytest.fixture(scope="module")
def real_summary() -> dict[str, Any]:
    """A summary of a real (short) run, passed through JSON as write_report writes it."""
    cfg = ScenarioConfig(date=dt.date(2026, 7, 15), hours=6, start_hour=16)
    result = run_scenario(generate_fleet(200, 3), cfg)
    loaded: dict[str, Any] = json.loads(json.dumps(summary(result), allow_nan=False))
    return loaded


def test_schema_is_draft_2020_12(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    required = set(schema["required"])
    assert {"homes", "devices", "peak_net_load_kw", "peak_reduction_pct", "events"} <= required
    assert set(schema["properties"]["peak_net_load_kw"]["required"]) == {"with_vpp", "without_vpp"}
    event_required = set(schema["properties"]["events"]["items"]["required"])
    assert {
        "target_kw",
        "delivered_kw_mean",
        "delivered_pct",
        "tracking_rmse_pct",
        "time_to_90pct_s",
        "non_responders",
        "energy_delivered_kwh",
    } <= event_required
    assert schema["properties"]["events"]["items"]["properties"]["time_to_90pct_s"]["type"] == [
        "number",
        "null",
    ]


def test_real_summary_matches_schema(schema: dict[str, Any], real_summary: dict[str, Any]) -> None:
    assert real_summary["events"], "the default event should have been placed"
    assert validation_errors(real_summary, schema) == []


def test_structural_check_catches_drift(
    schema: dict[str, Any], real_summary: dict[str, Any]
) -> None:
    broken = json.loads(json.dumps(real_summary))
    del broken["homes"]
    broken["surprise"] = 1
    broken["events"][0]["time_to_90pct_s"] = "soon"
    broken["peak_net_load_kw"]["with_vpp"] = None
    errors = structural_errors(broken, schema)
    assert any("'homes'" in e for e in errors)
    assert any("'surprise'" in e for e in errors)
    assert any("time_to_90pct_s" in e for e in errors)
    assert any("with_vpp" in e for e in errors)


def test_every_summary_field_is_described(schema: dict[str, Any]) -> None:
    text = (DOCS / "summary.md").read_text()

    def names(sub: dict[str, Any]) -> set[str]:
        out = set(sub.get("properties", {}))
        for child in sub.get("properties", {}).values():
            out |= names(child)
            if "items" in child:
                out |= names(child["items"])
        return out

    missing = sorted(
        n
        for n in names(schema)
        if f"`{n}" not in text and f".{n}`" not in text and f"`{n}`" not in text and n not in text
    )
    assert missing == []


# ---------------------------------------------------------------------- CLI options


# Typer vendors its own click (``typer._click``), so commands and options are recognised
# by their attributes rather than by click's classes.
def _commands(cmd: Any, prefix: str) -> list[tuple[str, Any]]:
    """Every leaf command under ``cmd`` with its full name, e.g. ``gridflock fleet generate``."""
    if hasattr(cmd, "commands"):
        out: list[tuple[str, Any]] = []
        for name, sub in cmd.commands.items():
            out += _commands(sub, f"{prefix} {name}")
        return out
    return [(prefix, cmd)]


def _option_params(cmd: Any) -> list[Any]:
    return [p for p in cmd.params if getattr(p, "param_type_name", "") == "option"]


def _options(cmd: Any) -> list[str]:
    return [
        opt for p in _option_params(cmd) for opt in (*p.opts, *p.secondary_opts) if opt != "--help"
    ]


CLI_COMMANDS = _commands(typer.main.get_command(app), "gridflock")


def test_simulate_is_introspected() -> None:
    names = [name for name, _ in CLI_COMMANDS]
    assert "gridflock simulate" in names
    simulate = dict(CLI_COMMANDS)["gridflock simulate"]
    assert {"--homes", "--event", "--db", "--out", "--ideal", "--no-ideal"} <= set(
        _options(simulate)
    )


@pytest.mark.parametrize(("name", "cmd"), CLI_COMMANDS, ids=[n for n, _ in CLI_COMMANDS])
def test_every_cli_option_is_documented(name: str, cmd: Any) -> None:
    text = (DOCS / "cli.md").read_text()
    assert f"## `{name}`" in text, f"no section for {name} in docs/cli.md"
    missing = [o for o in _options(cmd) if not re.search(rf"`{re.escape(o)}[` =,]", text)]
    assert missing == [], f"{name}: options not in docs/cli.md"


def test_simulate_defaults_are_documented() -> None:
    text = (DOCS / "cli.md").read_text()
    simulate = dict(CLI_COMMANDS)["gridflock simulate"]
    for p in _option_params(simulate):
        if p.default is None or p.name == "help":
            continue
        default = p.default
        if isinstance(default, bool):
            shown = p.secondary_opts[0] if not default and p.secondary_opts else p.opts[0]
        else:
            shown = str(default)
        row = next(line for line in text.splitlines() if line.startswith(f"| `{p.opts[0]}"))
        assert f"`{shown}`" in row, f"{p.opts[0]}: default {shown!r} not in {row!r}"


# ---------------------------------------------------------------------- links

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = _FENCE.sub("", path.read_text())
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*$", text, re.M)}


def _links(path: Path) -> list[str]:
    text = _CODE.sub("", _FENCE.sub("", path.read_text()))
    return _LINK.findall(text)


DOC_PAGES = sorted(DOCS.glob("*.md"))


def test_docs_exist() -> None:
    names = {p.name for p in DOC_PAGES}
    assert {
        "index.md",
        "concepts.md",
        "nomenclature.md",
        "cli.md",
        "summary.md",
        "fleet-files.md",
    } <= names


@pytest.mark.parametrize("page", DOC_PAGES, ids=[p.name for p in DOC_PAGES])
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in _links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.name}")
    assert broken == [], f"{page.name}: broken links"
