"""The dependency rules of docs/architecture.md, checked on the imports of every module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "gridflock"
CORE = {"domain", "fleet", "dispatch", "forecast", "optimize", "mv", "gridcode"}
ALLOWED = {
    "domain": set(),
    **dict.fromkeys(CORE - {"domain"}, CORE),
    "gateways": {"domain"},
    "store": {"domain"},
    "edge": {"domain", "gateways", "gridcode"},
    "sim": CORE | {"gateways", "edge"},
    "api": CORE | {"store"},
    "openadr": {"domain"},
}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "gridflock" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_parts_import_only_what_the_design_allows(part):
    folder = SRC / part
    if not folder.exists():
        pytest.fail(f"{folder} is missing")
    for path in folder.rglob("*.py"):
        bad = imports_of(path) - ALLOWED[part] - {part}
        assert not bad, f"{path.relative_to(SRC)} imports {sorted(bad)}"


def test_core_imports_no_io_library():
    io = {"sqlalchemy", "alembic", "fastapi", "typer", "rich", "paho", "gmqtt", "psycopg"}
    io |= {"openleadr", "aiohttp"}
    io |= {"ocpp", "websockets"}
    for part in CORE:
        for path in (SRC / part).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    mods = (
                        [node.module]
                        if isinstance(node, ast.ImportFrom)
                        else [a.name for a in node.names]
                    )
                    for m in mods:
                        assert (m or "").split(".")[0] not in io, f"{path} imports {m}"


def test_edge_s2_uses_only_the_domain_and_the_edge_interface():
    """The S2 driver knows S2 and the LocalDriver interface, not MQTT or the service."""
    for path in (SRC / "edge" / "s2").rglob("*.py"):
        bad = imports_of(path) - {"domain", "edge"}
        assert not bad, f"{path.relative_to(SRC)} imports {sorted(bad)}"
    for part in CORE | {"gateways", "store", "api"}:
        for path in (SRC / part).rglob("*.py"):
            text = path.read_text()
            if "s2python" not in text:
                continue
            tree = ast.parse(text)
            mods = {
                (n.module or "") if isinstance(n, ast.ImportFrom) else a.name
                for n in ast.walk(tree)
                if isinstance(n, ast.Import | ast.ImportFrom)
                for a in (n.names if isinstance(n, ast.Import) else [None])
            }
            assert not any(m.split(".")[0] == "s2python" for m in mods), f"{path} imports s2python"
