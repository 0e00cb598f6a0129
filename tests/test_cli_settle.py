"""``gridflock simulate --settle-days``: statements of the twin's events, by the service's code."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from gridflock.cli import app

runner = CliRunner()


def test_simulate_settles_its_events(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    args = ["simulate", "--homes", "8", "--seed", "3", "--date", "2026-06-22", "--step", "15m"]
    args += ["--event", "18:00,2h,3", "--settle-days", "12", "--out", str(out), "--quiet"]
    r = runner.invoke(app, args, env={"COLUMNS": "200", "GRIDFLOCK_SETTLEMENT_PLACEBO_DAYS": "5"})
    assert r.exit_code == 0, r.output
    assert "ev-001 statement: Baseline: " in r.output
    assert "the twin's true delivery (its shadow run)" in r.output
    st = json.loads((out / "statement-ev-001.json").read_text())
    assert st["format"] == "gridflock-settlement/1"
    assert st["event"]["id"] == "ev-001"
    assert st["baseline"]["chosen_by"] == "recommended"
    assert st["baseline"]["method"] == "uk_dfs_mgo"  # the twin's PV and battery telemetry
    assert st["statement"].startswith("Baseline: ")
    table = pd.read_csv(io.StringIO((out / "statement-ev-001.csv").read_text()), comment="#")
    assert table["site_id"].iloc[-1] == "TOTAL"
    total = float(table["delivered_kwh"].iloc[-1])
    assert total == pytest.approx(st["totals"]["delivered_kwh"], rel=1e-5, abs=1e-6)


def test_simulate_settle_bad_input_exits_2(tmp_path: Path) -> None:
    r = runner.invoke(
        app, ["simulate", "--homes", "5", "--method", "guesswork", "--settle-days", "3"]
    )
    assert r.exit_code == 2
    assert "is not a baseline method" in r.output
    r = runner.invoke(app, ["simulate", "--homes", "5", "--method", "uk_dfs"])
    assert r.exit_code == 2
    assert "give --settle-days" in r.output
