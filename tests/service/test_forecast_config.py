"""Forecast settings: defaults, validation that says what is wrong, and `config show`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from gridflock.cli import app
from gridflock.config import Settings


def test_defaults_issue_every_quarter_hour_and_day_ahead_at_ten() -> None:
    s = Settings(database_url="sqlite:///x.db")
    assert s.forecast_enabled
    assert s.forecast_quantiles == [0.1, 0.5, 0.9]
    assert s.forecast_intraday_every_min == 15
    assert s.forecast_day_ahead_hour == 10.0
    assert s.forecast_weather == "auto"


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("forecast_quantiles", [0.5, 0.1, 0.9], "ascending"),
        ("forecast_quantiles", [0.25, 0.5, 0.75], "must include 0.1, 0.5 and 0.9"),
        ("forecast_quantiles", [0.0, 0.1, 0.5, 0.9], "strictly between 0 and 1"),
        ("forecast_intraday_every_min", 7, "15, 20, 30 or 60"),
        ("forecast_day_ahead_hour", 12.5, "less than 12"),
        ("forecast_timezone", "Mars/Olympus", "IANA name"),
        ("forecast_weather", "file", "forecast_weather_file"),
    ],
)
def test_bad_values_are_refused_with_the_reason(field: str, value: object, says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        Settings(database_url="sqlite:///x.db", **{field: value})


def test_config_show_lists_the_forecast_settings(tmp_path: Path) -> None:
    env = {
        "GRIDFLOCK_CONFIG": str(tmp_path / "none.toml"),
        "GRIDFLOCK_FORECAST_QUANTILES": "[0.05, 0.1, 0.5, 0.9, 0.95]",
        "GRIDFLOCK_FORECAST_TIMEZONE": "America/New_York",
    }
    r = CliRunner().invoke(app, ["config", "show"], env=env)
    assert r.exit_code == 0, r.output
    shown = json.loads(r.stdout)
    assert shown["forecast_quantiles"] == [0.05, 0.1, 0.5, 0.9, 0.95]
    assert shown["forecast_timezone"] == "America/New_York"
    assert shown["forecast_retrain_every_h"] == 24.0
    assert shown["forecast_weather_file"] is None
