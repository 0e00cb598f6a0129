"""``gridflock simulate --frequency-event``: the fleet's fast frequency response, end to end."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from gridflock.cli import app
from gridflock.sim.ffr_report import parse_frequency_event

runner = CliRunner()


def run(*args: str) -> Any:
    """The command's result: ``returncode`` and its ``stdout``/``stderr`` (both the output)."""
    r = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    r.returncode = r.exit_code
    return r


def test_step_to_49_5_hz_meets_dynamic_containment_and_very_fast_fcas(tmp_path):
    out = tmp_path / "ffr"
    r = run("simulate", "--homes", "40", "--frequency-event", "49.5", "--out", str(out))
    assert r.returncode == 0, r.output
    s = json.loads((out / "ffr-summary.json").read_text())
    assert s["event"]["kind"] == "step"
    assert 0 < s["eligible_devices"] <= s["devices"]
    by = {p["product"]: p for p in s["products"]}
    assert set(by) == {"GB-DC", "AU-VFFCAS"}
    for p in by.values():
        # 0.5 Hz below nominal is full response for both products: all the capacity up
        assert p["required_kw"] == pytest.approx(s["capacity_up_kw"], abs=2e-3)
        assert p["met"] is True
        assert 0 < p["start_s"] <= p["full_s"] <= p["target_full_s"]
    assert by["GB-DC"]["start_s"] <= by["GB-DC"]["target_start_s"] == 0.5
    assert by["AU-VFFCAS"]["target_full_s"] == 1.0
    assert "GB-DC" in r.output
    assert ": met" in r.output
    assert (out / "ffr-plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_partial_and_over_frequency_steps_follow_each_products_droop(tmp_path):
    out = tmp_path / "small"
    r = run("simulate", "--homes", "40", "--frequency-event", "49.8", "--out", str(out))
    assert r.returncode == 0, r.output
    s = json.loads((out / "ffr-summary.json").read_text())
    by = {p["product"]: p for p in s["products"]}
    up = s["capacity_up_kw"]
    # 0.2 Hz: Dynamic Containment's knee (5 %); Very Fast FCAS 0.05 of its 0.35 Hz slope
    assert by["GB-DC"]["required_kw"] == pytest.approx(0.05 * up, abs=2e-3)
    assert by["AU-VFFCAS"]["required_kw"] == pytest.approx(0.05 / 0.35 * up, abs=2e-3)
    hi = tmp_path / "over"
    r = run("simulate", "--homes", "40", "--frequency-event", "50.5", "--out", str(hi))
    assert r.returncode == 0, r.output
    s = json.loads((hi / "ffr-summary.json").read_text())
    for p in s["products"]:  # the largest need is down: all the capacity down
        assert p["required_kw"] == pytest.approx(s["capacity_down_kw"], abs=2e-3)
        assert p["met"] is True


def test_named_ramp_event_reports_the_lag_behind_the_frequency(tmp_path):
    out = tmp_path / "fall"
    r = run("simulate", "--homes", "40", "--frequency-event", "loss-of-infeed", "--out", str(out))
    assert r.returncode == 0, r.output
    s = json.loads((out / "ffr-summary.json").read_text())
    for p in s["products"]:
        assert p["met"] is None
        # 49.2 Hz is reached 1.6 s after the start at 0.5 Hz/s; full response within 0.5 s
        assert p["frequency_at_full_s"] <= 1.6 + 1e-9
        assert 0 <= p["lag_s"] <= 0.5


@pytest.mark.parametrize("bad", ["50", "45", "fifty", "nan"])
def test_bad_frequency_events_are_refused_with_what_to_give(bad):
    with pytest.raises(ValueError, match=r"Hz|named event"):
        parse_frequency_event(bad)
    r = run("simulate", "--frequency-event", bad)
    assert r.returncode == 2
    assert "--frequency-event" in r.output
