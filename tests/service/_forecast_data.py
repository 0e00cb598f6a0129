"""A seeded store and a trained tiny model, built once per test run and copied per test.

15 days of twin history for 6 homes, written as 15-minute readings per device; one model
(net only, 5 boosting rounds, 3,000 rows) trained on it, and both horizons issued.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gridflock.config import Settings
from gridflock.domain.spec import FleetSpec
from gridflock.fleet.generate import generate_fleet
from gridflock.service.forecast_schedule import Due
from gridflock.service.forecast_seed import seed_twin_history
from gridflock.service.forecasting import ForecastService
from gridflock.sim.forecast_weather import TwinWeatherSource
from gridflock.store import Store

NOW = datetime(2026, 6, 1, 7, 5, tzinfo=UTC).timestamp()  # 09:05 in Berlin
DAYS = 15


def forecast_settings(url: str, **extra: Any) -> Settings:
    """Settings for a tiny, fast model (every value explicit: no environment counts)."""
    values: dict[str, Any] = {
        "database_url": url,
        "mqtt_url": None,
        "forecast_boost_rounds": 5,
        "forecast_max_rows": 3000,
        "forecast_quantities": ["net"],
        "forecast_history_days": 20,
        "forecast_weather": "auto",
        "forecast_timezone": None,
        "forecast_support_fleet_kw": None,
    }
    values.update(extra)
    return Settings(**values)


@dataclass
class Seeded:
    db: Path
    trained: Path
    spec: FleetSpec
    weather: TwinWeatherSource


@functools.cache
def seeded() -> Seeded:
    """The seeded store, and a copy after one training and both issues (files to copy)."""
    folder = Path(tempfile.mkdtemp(prefix="gf-forecast-"))
    path = folder / "seed.db"
    spec = generate_fleet(6, 3)
    with Store(f"sqlite:///{path}") as store:
        store.upgrade()
        store.save_fleet(spec)
        weather, _ = seed_twin_history(store, spec, NOW, DAYS, seed=3)
    trained = folder / "trained.db"
    shutil.copy(path, trained)
    with Store(f"sqlite:///{trained}") as store:
        svc = ForecastService(
            forecast_settings(f"sqlite:///{trained}"), store, lambda: spec, lambda: NOW, weather
        )
        svc.step(NOW, Due(True, True, True))
        assert svc.status()["state"] == "ready", svc.status()["last_error"]
    return Seeded(path, trained, spec, weather)
