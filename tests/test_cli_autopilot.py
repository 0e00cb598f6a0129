"""``gridflock simulate --autopilot``: the three-way comparison from the command line."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from gridflock.cli import app

runner = CliRunner()


def test_simulate_autopilot_writes_the_comparison(tmp_path):
    args = ["simulate", "--autopilot", "--days", "1", "--homes", "30", "--step", "15m"]
    r = runner.invoke(app, [*args, "--out", str(tmp_path), "--quiet"])
    assert r.exit_code == 0, r.output
    assert "autopilot" in r.output
    assert "peak reduction" in r.output
    data = json.loads((tmp_path / "summary.json").read_text())
    assert data["window"]["days"] == 1
    assert data["ways"]["autopilot"]["comfort_violations"] == 0


def test_simulate_autopilot_refuses_bad_input(tmp_path):
    out = ["--out", str(tmp_path)]
    for args, message in (
        (["--tariff", "cheap"], "use tou, flat or dynamic"),
        (["--tariff", "dynamic"], "needs --prices"),
        (["--step", "7m"], "divide 15 minutes"),
    ):
        r = runner.invoke(app, ["simulate", "--autopilot", *args, *out])
        assert r.exit_code == 2, r.output
        assert message in r.output
