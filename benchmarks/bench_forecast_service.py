"""The forecast service's own costs: history into the store, read back, train, issue.

A fleet of ``--homes`` generated homes gets ``--days`` of twin history written into a fresh
SQLite store (15-minute readings per device, as the demo seeds it); then the service's
:class:`~gridflock.service.forecasting.ForecastService` trains on it and issues an intraday
and a day-ahead forecast (per site, aggregated to every group, support windows, stored).
Reported: each part's wall time and the process's peak memory.

    PYTHONPATH=src python benchmarks/bench_forecast_service.py --homes 1000 --days 15

``--demo`` uses the demo's lighter model (50 rounds, 30,000 rows per quantity); without it,
the service defaults (200 rounds, 400,000 rows).
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from gridflock.config import Settings
from gridflock.fleet.generate import generate_fleet
from gridflock.service.forecast_schedule import Due
from gridflock.service.forecast_seed import seed_twin_history
from gridflock.service.forecasting import ForecastService
from gridflock.store import Store


def main() -> None:
    """Run the benchmark and print its figures as JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--homes", type=int, default=1000)
    ap.add_argument("--days", type=float, default=15.0)
    ap.add_argument("--demo", action="store_true", help="the demo's lighter model")
    args = ap.parse_args()
    now = datetime(2026, 6, 1, 7, 5, tzinfo=UTC).timestamp()
    spec = generate_fleet(args.homes, 7)
    figures: dict[str, float | int | str] = {"homes": args.homes, "days": args.days}
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        extra = {"forecast_boost_rounds": 50, "forecast_max_rows": 30_000} if args.demo else {}
        settings = Settings(database_url=url, **extra)  # type: ignore[arg-type]
        with Store(url) as store:
            store.upgrade()
            store.save_fleet(spec)
            t = time.perf_counter()
            weather, took = seed_twin_history(store, spec, now, args.days, seed=7)
            figures["seed_s"] = round(time.perf_counter() - t, 1)
            figures["seed_simulate_s"] = round(took["simulate_s"], 1)
            figures["seed_write_s"] = round(took["write_s"], 1)
            figures["readings"] = int(took["readings"])
            svc = ForecastService(settings, store, lambda: spec, lambda: now, weather)
            t = time.perf_counter()
            svc.train_now(now)
            figures["train_total_s"] = round(time.perf_counter() - t, 1)
            figures.update({f"train_{k}": v for k, v in svc.status()["timings_s"].items()})
            for horizon in ("intraday", "day_ahead"):
                t = time.perf_counter()
                issued = svc.issue(horizon, now)
                figures[f"{horizon}_issue_s"] = round(time.perf_counter() - t, 1)
                figures[f"{horizon}_group_series"] = len(issued)
            svc.step(now + 900, Due(False, True, False))  # the next intraday reads incrementally
            figures["intraday_next_issue_s"] = svc.status()["timings_s"]["intraday_s"]
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    figures["settings"] = "demo" if args.demo else "service defaults"
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
