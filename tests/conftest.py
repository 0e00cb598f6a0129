"""Shared fixtures: a small hand-made fleet with every device kind.

The suite runs on two pytest-xdist workers (``addopts`` in pyproject.toml). Tests that
talk to the machine's one Mosquitto on 127.0.0.1:1883 share its topics, and the fault
scenarios measure recovery times that a second scenario on the same two cores would
stretch: each of those sets runs in one worker, in turn (``--dist loadgroup``).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from gridflock.domain import FleetSpec, build_spec
from gridflock.store._engine import normalise_url

if os.environ.get("PYTEST_XDIST_WORKER"):
    # xdist starts its workers with COLUMNS=80 and LINES=24, and Rich fixes the CLI's width
    # from COLUMNS when the CLI is imported: without them a worker prints as a serial run.
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)


SHARED_BROKER = {
    "test_e2e.py",
    "sim/test_gateways.py",
    "sim/test_gateways_settings.py",
    "sim/test_gateways_signals.py",
    "edge/test_edge_gateway.py",
    "edge/test_edge_cli.py",
    "edge/test_edge_s2.py",
    "edge/test_sunspec_der.py",
}
"""Test files that connect to the shared Mosquitto (not a private one on a free port).

A new test file that uses 127.0.0.1:1883 belongs here, or its topics may cross another's.
"""

FAULT_SCENARIOS = ("faults/", "service/test_faults.py", "service/test_schedule_faults.py")
"""Tests that kill, cut and restart parts and assert how fast the rest recovers."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give the shared-broker and fault tests their xdist group (one worker each)."""
    root = os.path.dirname(__file__)
    for item in items:
        rel = os.path.relpath(str(item.path), root).replace(os.sep, "/")
        if rel in SHARED_BROKER:
            item.add_marker(pytest.mark.xdist_group("shared-broker"))
        elif rel.startswith(FAULT_SCENARIOS):
            item.add_marker(pytest.mark.xdist_group("fault-scenarios"))


@pytest.fixture(autouse=True)
def _root_logger_left_as_found() -> Iterator[None]:
    """Undo what a test's in-process ``gridflock serve`` does to the root logger.

    The service's ``setup_logging`` points the root logger at the stderr of the test's
    CliRunner and sets INFO; a later test in the same process would otherwise log into
    that closed stream and find "--- Logging error ---" in its own output. pytest's own
    capture handlers come and go per phase and are left alone.
    """
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    yield
    root.handlers[:] = [
        h for h in root.handlers if h in before or type(h).__module__.startswith("_pytest")
    ]
    root.setLevel(level)


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


# ----------------------------------------------------------------------------- twin meter data
@dataclass(frozen=True)
class TwinMeter:
    """Three weeks of the twin's readings with one completed evening event on the last day."""

    spec: FleetSpec
    result: Any  # gridflock.sim.scenario.ScenarioResult
    readings: Any  # gridflock.domain.TelemetryBatch, every reading of every device
    event: Any  # gridflock.domain.events.Event, status completed


@pytest.fixture(scope="session")
def twin_meter() -> TwinMeter:
    """The twin once per session: 8 homes, 21 days at 15-min steps, a 2 h event at 18:00.

    Devices answer late and some ignore commands, but no reading is lost and none is
    noisy, so the meter data equals the twin's powers and a statement settled against
    the shadow (each reading's ``p_baseline_kw``) must equal the twin's true delivery.
    The twin stamps a reading at the end of the step it describes; the readings are moved
    to the middle of their step, where a meter's interval puts them.
    """
    import datetime as dt

    import numpy as np
    import pandas as pd

    from gridflock.domain import TelemetryBatch
    from gridflock.domain.events import Event, EventSource, EventStatus, Scope
    from gridflock.fleet.generate import generate_fleet
    from gridflock.sim.events import EventRequest
    from gridflock.sim.imperfections import Imperfections
    from gridflock.sim.scenario import ScenarioConfig, run_scenario

    tz = "Europe/Berlin"
    spec = generate_fleet(8, 5, tz=tz)
    start = pd.Timestamp("2026-06-22 18:00", tz=tz).tz_convert("UTC")
    cfg = ScenarioConfig(
        dt.date(2026, 6, 1),
        hours=24.0 * 22,
        step_s=900.0,
        events=(EventRequest(start, 7200.0, 4.0, Scope()),),
        telemetry_sample_devices=10**6,
        telemetry_sample_every_s=900.0,
        imperfections=Imperfections(dropout_rate=0.0, offline_rate=0.0, noise_kw=0.0),
    )
    result = run_scenario(spec, cfg)
    b = result.telemetry
    readings = TelemetryBatch(
        np.concatenate([x.device_ids for x in b]),
        np.concatenate([x.ts for x in b]) - cfg.step_s / 2,
        np.concatenate([x.p_kw for x in b]),
        np.concatenate([x.soc for x in b]),
        np.concatenate([x.p_baseline_kw for x in b]),
    )
    ev = result.events[0].event
    event = Event(
        "ev-twin",
        ev.target_kw,
        ev.start,
        ev.end,
        Scope(),
        EventSource.OPERATOR,
        EventStatus.COMPLETED,
        "test",
    )
    return TwinMeter(spec, result, readings, event)
