"""``gridflock forecast simulate`` and ``backtest`` end to end, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from gridflock.cli import app

GRIDFLOCK = [sys.executable, "-m", "gridflock"]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "160"}
    return subprocess.run(
        [*GRIDFLOCK, *args], capture_output=True, text=True, timeout=600, cwd=cwd, env=env,
        check=False,
    )  # fmt: skip


def test_simulate_then_backtest_the_file(tmp_path):
    sim = run("forecast", "simulate", "--homes", "12", "--days", "10", "--out", "h.csv",
              "--quiet", cwd=tmp_path)  # fmt: skip
    assert sim.returncode == 0, sim.stderr
    frame = pd.read_csv(tmp_path / "h.csv")
    assert len(frame) == 10 * 96
    assert {"timestamp", "net", "pv", "load", "temp_air_c", "ghi"} <= set(frame.columns)
    bt = run(
        "forecast", "backtest", "--data", "h.csv", "--columns", "net", "--test-days", "1",
        "--rounds", "10", "--tz", "Europe/Berlin", "--lat", "48.1", "--lon", "11.6",
        "--json", "scores.json", "--plot", "scores.png", "--quiet", cwd=tmp_path,
    )  # fmt: skip
    assert bt.returncode == 0, bt.stderr
    assert "Rolling-origin backtest" in bt.stdout
    assert "perfect weather forecasts" in bt.stdout
    doc = json.loads((tmp_path / "scores.json").read_text())
    got = {(r["series"], r["horizon"]) for r in doc["results"]}
    assert got == {("net", "day_ahead"), ("net", "intraday")}
    da = next(r for r in doc["results"] if r["horizon"] == "day_ahead")["metrics"]
    assert da["n_points"] == 96
    for key in ("mae", "nmae", "rmse", "pinball", "crps", "coverage", "skill_seasonal_naive",
                "skill_persistence", "peak_time_error_min"):  # fmt: skip
        assert key in da
    assert (tmp_path / "scores.png").stat().st_size > 10_000


def test_a_bad_file_exits_2_with_every_problem(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    (tmp_path / "bad.csv").write_text("when;kw\n2026-01-01 00:00;1\nnot a time;x\n")
    r = runner.invoke(
        app, ["forecast", "backtest", "--data", "bad.csv", "--timestamp", "when", "--quiet"]
    )
    assert r.exit_code == 2
    assert "'not a time'" in r.output
    assert "'x'" in r.output
    r = runner.invoke(app, ["forecast", "backtest", "--data", "missing.csv"])
    assert r.exit_code == 2
    assert "does not exist" in r.output
    r = runner.invoke(app, ["forecast", "backtest", "--data", "bad.csv", "--horizons", "weekly"])
    assert r.exit_code == 2
    assert "day_ahead, intraday" in r.output
