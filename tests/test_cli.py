"""The ``gridflock`` command end to end, run as a user runs it (a separate process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

GRIDFLOCK = [sys.executable, "-m", "gridflock"]
POSTGRES_URL = os.environ.get(
    "GRIDFLOCK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def run(
    *args: str, cwd: Path | None = None, columns: int = 120
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run(
        [*GRIDFLOCK, *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
        env=env,
        check=False,
    )


def test_simulate_1000_homes_meets_the_default_event(tmp_path):
    out = tmp_path / "run"
    # a narrow terminal: lines may wrap there, but not be broken mid-phrase by the program
    r = run("simulate", "--homes", "1000", "--seed", "7", "--out", str(out), columns=60)
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["homes"] == 1000
    assert sum(s["devices"].values()) == s["devices_total"]
    assert s["peak_reduction_pct"] > 0
    assert s["peak_net_load_kw"]["with_vpp"] < s["peak_net_load_kw"]["without_vpp"]
    (ev,) = s["events"]
    assert abs(ev["delivered_pct"] - 100) <= 5
    for key in (
        "target_kw",
        "delivered_kw_mean",
        "tracking_rmse_pct",
        "time_to_90pct_s",
        "non_responders",
        "energy_delivered_kwh",
    ):
        assert key in ev
    assert (out / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    series = pd.read_parquet(out / "timeseries.parquet")
    assert len(series) == 1440
    assert {"net_kw_with_vpp", "net_kw_without_vpp", "ev-001_delivered_kw"} <= set(series)
    (peak,) = [line for line in r.stdout.splitlines() if "peak net import" in line]
    assert peak.endswith("% lower with the VPP)"), peak
    assert "ev-001" in r.stdout
    assert "reached after 0 s" not in r.stdout
    assert "90 % reached within the first step (1 min)" in r.stdout


def test_explicit_events_and_sqlite_store(tmp_path):
    db = tmp_path / "gf.db"
    out = tmp_path / "out"
    r = run(
        "simulate",
        "--homes",
        "150",
        "--hours",
        "4",
        "--start-hour",
        "16",
        "--event",
        "17:00,1h,40",
        "--event",
        "18:30,30m,-20,program:summer-peak",
        "--db",
        f"sqlite:///{db}",
        "--out",
        str(out),
        "--quiet",
    )
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    assert [e["target_kw"] for e in s["events"]] == [40, -20]
    assert s["events"][1]["scope"] == "program:summer-peak"
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as c:
        assert c.execute(sa.text("select count(*) from events")).scalar() == 2
        assert c.execute(sa.text("select count(*) from commands")).scalar() > 0
        assert c.execute(sa.text("select count(*) from telemetry")).scalar() > 0
        assert c.execute(sa.text("select count(*) from sites")).scalar() == 150
    engine.dispose()


@pytest.mark.postgres
def test_simulate_stores_into_postgresql(tmp_path):
    schema = f"gf_cli_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_URL)
    try:
        with admin.begin() as c:
            c.execute(sa.text(f"create schema {schema}"))
    except sa.exc.OperationalError as e:
        pytest.fail(
            f"PostgreSQL at {POSTGRES_URL} is not reachable ({e}); start it with "
            "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
        )
    try:
        url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
        r = run(
            "simulate",
            "--homes",
            "80",
            "--hours",
            "3",
            "--start-hour",
            "17",
            "--event",
            "18:00,1h,20",
            "--db",
            url,
            "--out",
            str(tmp_path),
            "--quiet",
        )
        assert r.returncode == 0, r.stderr
        with admin.connect() as c:
            n = c.execute(sa.text(f"select count(*) from {schema}.events")).scalar()
            samples = c.execute(sa.text(f"select count(*) from {schema}.event_samples")).scalar()
        assert n == 1
        assert samples == 60
    finally:
        with admin.begin() as c:
            c.execute(sa.text(f"drop schema {schema} cascade"))
        admin.dispose()


def test_fleet_generate_validate_and_simulate_from_file(tmp_path):
    for name in ("fleet.yaml", "fleet.csv"):
        path = tmp_path / name
        r = run("fleet", "generate", "--homes", "60", "--seed", "3", "--out", str(path))
        assert r.returncode == 0, r.stderr
        r = run("fleet", "validate", str(path))
        assert r.returncode == 0, r.stderr
        assert "valid" in r.stdout
    r = run(
        "simulate",
        "--fleet",
        str(tmp_path / "fleet.yaml"),
        "--hours",
        "2",
        "--start-hour",
        "18",
        "--event",
        "18:15,1h,10",
        "--out",
        str(tmp_path / "o"),
        "--quiet",
    )
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["homes"] == 60


BAD_FLEET = """version: 1
grid_nodes:
  - {id: f1, kind: feeder, limit_import_kw: 100, limit_export_kw: 100}
sites:
  - id: h1
    lat: 48.1
    lon: 11.5
    grid_node: f9
    devices:
      - {id: h1-bat, kind: battery, e_kwh: -5, p_charge_max_kw: 3, p_discharge_max_kw: 3}
      - {id: h1-bat, kind: pv, kwp: 4}
      - {id: h1-x, kind: flux_capacitor}
"""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--event", "18:00,2h"], "--event: invalid event '18:00,2h'"),
        (["--event", "18:00,2h,5,feeder=f1"], "invalid scope"),
        (["--date", "2026-13-01"], "--date: '2026-13-01' is not a date"),
        (["--step", "soon"], "--step: invalid duration"),
        (["--step", "2h"], "--step: '2h' must be between 1 second and 1 hour"),
        (["--event", "18:00,1h,5,grid_node:nowhere"], "unknown grid node 'nowhere'"),
    ],
)
def test_bad_options_exit_2_and_write_nothing(tmp_path, args, message):
    out = tmp_path / "never"
    r = run("simulate", "--homes", "20", "--out", str(out), "--quiet", *args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert message in r.stderr
    assert not out.exists()


def test_bad_fleet_file_names_file_entry_and_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_FLEET)
    for cmd in (
        ["fleet", "validate", str(bad)],
        ["simulate", "--fleet", str(bad), "--out", str(tmp_path / "o")],
    ):
        r = run(*cmd)
        assert r.returncode == 2
        err = " ".join(r.stderr.split())
        assert f"{bad}: site h1: grid_node: unknown grid node 'f9'" in err
        assert "e_kwh: must be > 0" in err
        assert "duplicate id" in err
        assert "unknown device kind 'flux_capacitor'" in err
        assert ("nothing was written" in err) == (cmd[0] == "simulate")
    assert not (tmp_path / "o").exists()
    r = run("fleet", "validate", str(tmp_path / "missing.yaml"))
    assert r.returncode == 2
    assert "not found" in r.stderr


def test_help_lists_the_options():
    r = run("simulate", "--help")
    assert r.returncode == 0
    for option in (
        "--homes",
        "--fleet",
        "--date",
        "--hours",
        "--step",
        "--seed",
        "--event",
        "--db",
        "--out",
    ):
        assert option in r.stdout


def test_plan_a_small_fleet_for_a_day(tmp_path):
    out = tmp_path / "plan"
    r = run("plan", "--homes", "10", "--steps", "32", "--tariff", "flat", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "objective [EUR]" in r.stdout
    assert "optimal" in r.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "optimal"
    assert summary["steps"] == 32
    table = pd.read_parquet(out / "plan.parquet")
    assert len(table) == summary["devices"] * 32
    assert table["p_kw"].notna().all()
    assert (out / "plot.png").stat().st_size > 0
