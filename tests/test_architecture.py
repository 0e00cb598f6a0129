"""The dependency rules of docs/architecture.md, checked on the imports of every module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "gridflock"
CORE = {"domain", "fleet", "dispatch", "forecast", "optimize", "mv"}
ALLOWED = {
    "domain": set(),
    **dict.fromkeys(CORE - {"domain"}, CORE),
    "gateways": {"domain"},
    "store": {"domain"},
    "edge": {"domain", "gateways"},
    "sim": CORE | {"gateways", "edge"},
    "api": CORE | {"store"},
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
