"""The ``gridflock`` command loads each command's libraries only when that command runs.

Every ``gridflock`` process (a test's subprocess, a user's ``--help``) used to load the whole
stack first: NumPy, pandas, SQLAlchemy, FastAPI, the service, pvlib. These tests pin the
import graph, not a time: a fresh interpreter imports the CLI, and the heavy modules must
not be among the modules it loaded; a light command then loads only what it needs.
"""

from __future__ import annotations

import json
import subprocess
import sys

#: Libraries and parts of ours no command needs before it runs.
HEAVY = (
    "numpy",
    "pandas",
    "scipy",
    "sqlalchemy",
    "alembic",
    "fastapi",
    "uvicorn",
    "matplotlib",
    "lightgbm",
    "pvlib",
    "openleadr",
    "pydantic",
    "paho",
    "pymodbus",
    "gridflock.domain",
    "gridflock.service",
    "gridflock.store",
)


def _loaded(code: str) -> set[str]:
    """Top modules and our packages a fresh interpreter has loaded after ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_importing_the_cli_loads_none_of_the_heavy_libraries() -> None:
    loaded = _loaded("import gridflock.cli")
    assert "gridflock.cli.service" in loaded  # the commands are registered ...
    assert sorted(m for m in HEAVY if m in loaded) == []  # ... without their libraries


def test_help_and_version_run_without_the_heavy_libraries() -> None:
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom gridflock.cli import app\n"
        "r = CliRunner().invoke(app, ['--help'])\nassert r.exit_code == 0, r.output\n"
        "assert 'serve' in r.output and 'simulate' in r.output, r.output\n"
        "r = CliRunner().invoke(app, ['version'])\nassert 'gridflock' in r.output, r.output"
    )
    loaded = _loaded(code)
    # Typer itself loads pydantic to run any command (its parameter adapters): not ours.
    assert sorted(m for m in HEAVY if m in loaded and m != "pydantic") == []


def test_the_service_does_not_load_the_twin_or_the_migrations_at_start() -> None:
    """``gridflock serve`` needs the service, the store and the API; the twin's weather
    (pvlib) loads with the first forecast training, Alembic only to migrate."""
    loaded = _loaded(
        "import gridflock.service, gridflock.service.server, gridflock.store, "
        "gridflock.gateways.mqtt.link"
    )
    assert {"gridflock.service.runtime", "gridflock.store.repository"} <= loaded
    assert sorted(m for m in ("pvlib", "alembic", "gridflock.sim.weather") if m in loaded) == []
