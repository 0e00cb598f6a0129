"""Shared fixtures: a small twin history and a quickly trained bundle (session scope)."""

from __future__ import annotations

import pandas as pd
import pytest

from gridflock.fleet.generate import generate_fleet
from gridflock.forecast import TrainConfig, train
from gridflock.sim.forecast_weather import TwinWeatherSource
from gridflock.sim.history import twin_history

START = pd.Timestamp("2026-05-04", tz="UTC")
DAYS = 21
QUICK = TrainConfig(
    quantities=("net", "pv"),
    max_rows=6000,
    num_boost_round=40,
    num_leaves=15,
    min_data_in_leaf=20,
    calibration_days=4,
    calibration_sites=40,
)


@pytest.fixture(scope="session")
def twin():
    spec = generate_fleet(40, 3)
    history, weather = twin_history(spec, START, DAYS, 3)
    source = TwinWeatherSource(weather, 3, lat=48.14, lon=11.58)
    return history, weather, source


@pytest.fixture(scope="session")
def bundle(twin):
    history, _, source = twin
    cut = START + pd.Timedelta(days=DAYS - 3)
    return train(history.before(cut), source, QUICK)
