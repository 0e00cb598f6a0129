"""Shared fixtures: a small hand-made fleet with every device kind."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from gridflock.domain import FleetSpec, build_spec
from gridflock.store._engine import normalise_url


def small_fleet_records() -> tuple[list[dict], list[dict], list[dict]]:
    nodes = [
        {"id": "tx-1", "kind": "transformer", "limit_import_kw": 100, "limit_export_kw": 100},
        {
            "id": "f-1",
            "kind": "feeder",
            "parent": "tx-1",
            "limit_import_kw": 60,
            "limit_export_kw": 60,
        },
        {
            "id": "f-2",
            "kind": "feeder",
            "parent": "tx-1",
            "limit_import_kw": 60,
            "limit_export_kw": 8,
        },
    ]
    sites, devices = [], []
    for i in range(6):
        sid = f"s{i}"
        sites.append(
            {
                "id": sid,
                "lat": 48.1 + i * 0.01,
                "lon": 11.5,
                "tz": "Europe/Berlin",
                "grid_node": "f-1" if i < 3 else "f-2",
                "import_limit_kw": 25,
                "export_limit_kw": 10,
                "program": "summer" if i % 2 else "basic",
                "region": "north",
            }
        )
        devices += [
            {"id": f"{sid}-load", "site_id": sid, "kind": "load", "annual_kwh": 4000},
            {"id": f"{sid}-pv", "site_id": sid, "kind": "pv", "kwp": 8},
            {
                "id": f"{sid}-bat",
                "site_id": sid,
                "kind": "battery",
                "e_kwh": 10,
                "p_charge_max_kw": 5,
                "p_discharge_max_kw": 5,
                "soc_initial": 0.8,
            },
        ]
        if i % 2 == 0:
            devices.append(
                {"id": f"{sid}-ev", "site_id": sid, "kind": "ev_charger", "p_max_kw": 11}
            )
        if i % 3 == 0:
            devices.append(
                {"id": f"{sid}-hp", "site_id": sid, "kind": "heat_pump", "p_elec_max_kw": 3}
            )
        if i == 1:
            devices.append({"id": f"{sid}-wh", "site_id": sid, "kind": "water_heater"})
        if i == 4:
            devices.append({"id": f"{sid}-wind", "site_id": sid, "kind": "wind", "rated_kw": 5})
    return nodes, sites, devices


@pytest.fixture
def small_spec() -> FleetSpec:
    nodes, sites, devices = small_fleet_records()
    return build_spec(nodes, sites, devices, "small-fleet")


# ----------------------------------------------------------------- PostgreSQL, for every test
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PG_URL = normalise_url(os.environ.get("GRIDFLOCK_TEST_POSTGRES_URL", DEFAULT_PG_URL))
START_HINT = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL URL, checked once per run: unreachable fails, naming the URL and fix."""
    engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {PG_URL} (set GRIDFLOCK_TEST_POSTGRES_URL to "
            f"change it). Start it with: {START_HINT}\n{exc}",
            pytrace=False,
        )
    finally:
        engine.dispose()
    return PG_URL


@pytest.fixture
def fresh_schema(postgres_url: str) -> Iterator[Callable[[str], str]]:
    """Make throw-away PostgreSQL schemas (``make("gf_api")``), dropped after the test."""
    made: list[str] = []

    def make(prefix: str = "gf_test") -> str:
        made.append(f"{prefix}_{uuid.uuid4().hex[:12]}")
        return made[-1]

    yield make
    engine = create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            for schema in made:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """Name of the database backend a test runs on: each such test runs on both."""
    name: str = request.param
    return name
