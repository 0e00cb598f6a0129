"""Telemetry into the database: ``Store.write_telemetry`` in batches of 10k and 50k rows.

Target (docs/architecture.md): ≥ 50,000 rows/s into PostgreSQL. The store writes PostgreSQL batches
with COPY into a temporary staging table and an ``INSERT ... SELECT ... ON CONFLICT DO
NOTHING`` merge; SQLite (for comparison) goes through an executemany ``INSERT OR IGNORE``.

PostgreSQL runs in a fresh schema (``bench_<random>``, dropped afterwards) of the database
given by ``--pg``; SQLite in a temporary file. Every repeat writes new rows (the timestamp
moves by a second per repeat), so nothing is skipped as a duplicate and the table grows
over the run as it would in service. Rows look like the twin's: 100,000 device ids, power,
and SoC / baseline on about half of them (NaN → NULL).

    python benchmarks/bench_pg_writes.py [--repeat 10] [--pg postgresql://...] [--profile]
"""

from __future__ import annotations

import cProfile
import pstats
import secrets
import tempfile
import time
from pathlib import Path

import numpy as np
from sqlalchemy import text

from _common import Timing, console, ms, parser, print_header, print_table, verdict
from gridflock.domain.messages import TelemetryBatch
from gridflock.store import Store

TARGET_ROWS_S = 50_000
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
BATCHES = (10_000, 50_000)


def make_batch(n: int, ts: float, rng: np.random.Generator) -> TelemetryBatch:
    ids = np.array([f"dev-{i:06d}" for i in range(n)], dtype=object)
    soc = np.where(rng.random(n) < 0.5, rng.random(n), np.nan)
    base = np.where(rng.random(n) < 0.5, rng.normal(0, 2, n), np.nan)
    return TelemetryBatch(ids, np.full(n, ts), rng.normal(0, 3, n), soc, base)


def run(store: Store, n: int, repeat: int, rng: np.random.Generator) -> Timing:
    """One warm-up then ``repeat`` timed writes of ``n`` new rows each."""
    t0 = time.time() - 86_400.0
    samples = []
    for r in range(repeat + 1):
        batch = make_batch(n, t0 + r, rng)
        start = time.perf_counter()
        written = store.write_telemetry(batch)
        dt = time.perf_counter() - start
        if written != n:
            raise RuntimeError(f"wrote {written} of {n} rows")
        if r:
            samples.append(dt)
    return Timing(tuple(samples))


def main() -> None:
    p = parser(__doc__.splitlines()[0], repeat=10)
    p.add_argument("--pg", default=PG_URL, help=f"PostgreSQL URL (default {PG_URL})")
    p.add_argument("--no-sqlite", action="store_true", help="skip the SQLite comparison")
    p.add_argument("--profile", action="store_true", help="cProfile one 50k write to PostgreSQL")
    args = p.parse_args()
    print_header("Telemetry writes: Store.write_telemetry")
    rng = np.random.default_rng(args.seed)
    rows = []
    schema = f"bench_{secrets.token_hex(4)}"
    pg = Store(args.pg, schema=schema)
    try:
        pg.upgrade()
        with pg.engine.connect() as conn:
            version = conn.execute(text("SHOW server_version")).scalar()
        console.print(f"PostgreSQL {version}, schema {schema}", highlight=False)
        for n in BATCHES:
            t = run(pg, n, args.repeat, rng)
            rate = n / t.median
            rows.append(
                (
                    "PostgreSQL (COPY + merge)",
                    f"{n:,}",
                    ms(t.median),
                    ms(t.min),
                    ms(t.max),
                    f"{rate:,.0f}",
                    f"{n / t.min:,.0f}",
                    verdict(rate, TARGET_ROWS_S, lower_is_better=False),
                )
            )
        if args.profile:
            batch = make_batch(50_000, time.time() - 3600.0, rng)
            prof = cProfile.Profile()
            prof.enable()
            pg.write_telemetry(batch)
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(15)
    finally:
        with pg.engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        pg.close()
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            lite = Store(f"sqlite:///{Path(tmp) / 'bench.db'}")
            lite.upgrade()
            for n in BATCHES:
                t = run(lite, n, args.repeat, rng)
                rate = n / t.median
                rows.append(
                    (
                        "SQLite (INSERT OR IGNORE)",
                        f"{n:,}",
                        ms(t.median),
                        ms(t.min),
                        ms(t.max),
                        f"{rate:,.0f}",
                        f"{n / t.min:,.0f}",
                        "(comparison)",
                    )
                )
            lite.close()
    print_table(
        f"write_telemetry, {args.repeat} repeats after a warm-up (target ≥ {TARGET_ROWS_S:,} "
        "rows/s into PostgreSQL)",
        [
            "backend",
            "rows/batch",
            "median ms",
            "min ms",
            "max ms",
            "rows/s (median)",
            "rows/s (best)",
            "verdict",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
