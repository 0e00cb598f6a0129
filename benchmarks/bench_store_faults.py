"""The store writer under faults: the cost of refused rows, and the backlog after an outage.

No target of its own; the figures say what a fault costs against the ≥ 50,000 rows/s
telemetry target (docs/architecture.md):

- **refused rows**: a 50,000-reading chunk with 0, 1 and 10 bad readings goes through
  ``StoreWriter.flush``. Readings stamped outside [2000, one year ahead] are set aside before
  the write; readings only the database refuses (a device id no encoding holds) are found by
  halving the chunk until the refused ones are alone; either way the rest is written and the
  bad ones kept as a dead letter.
- **outage backlog**: ``--outage-s`` seconds of a fleet of ``--devices`` reporting every
  2 s are buffered while every write fails as a lost connection would, then the database
  "returns": the time ``flush`` takes to write the backlog, and its rate.

PostgreSQL runs in a fresh schema (dropped afterwards) of the database given by ``--pg``.

    python benchmarks/bench_store_faults.py [--repeat 3] [--devices 20000] [--outage-s 60]
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

import numpy as np
from sqlalchemy import text

from _common import Timing, console, ms, parser, print_header, print_table
from gridflock.domain.messages import TelemetryBatch
from gridflock.service.writer import StoreWriter
from gridflock.store import Store

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
CHUNK = 50_000
POISON_TS = 1e13  # year 318,857: beyond what PostgreSQL's timestamps hold


class Outage:
    """A real store whose writes fail like a lost connection while ``down``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.down = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.store, name)
        if not callable(attr) or name not in ("write_telemetry", "ping"):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                raise ConnectionRefusedError("connection refused (simulated outage)")
            return attr(*args, **kwargs)

        return call


def readings(n: int, devices: int, t0: float, poison: int = 0, how: str = "time") -> TelemetryBatch:
    """``n`` readings of ``devices`` devices one step apart, ``poison`` of them bad.

    ``how``: ``time`` (stamped in year 318,857) or ``text`` (an id with a lone surrogate,
    which no database encoding holds).
    """
    ids = np.array([f"dev-{i:06d}" for i in range(devices)], dtype=object)[np.arange(n) % devices]
    ts = t0 + 2.0 * (np.arange(n) // devices)
    bad = np.linspace(0, n - 1, poison).astype(int)
    if how == "time":
        ts[bad] = POISON_TS
    else:
        ids[bad] = [f"bad-{i}\ud800" for i in range(poison)]
    return TelemetryBatch(ids, ts, np.ones(n), np.full(n, np.nan), np.full(n, np.nan))


def refused_rows(store: Store, repeat: int) -> list[tuple[object, ...]]:
    rows = []
    t0 = time.time() - 30 * 86_400.0
    cases = [(0, "time"), (1, "time"), (10, "time"), (1, "text"), (10, "text")]
    for k, (poison, how) in enumerate(cases):
        samples = []
        for r in range(repeat + 1):
            writer = StoreWriter(store, 10 * CHUNK)
            writer.telemetry(readings(CHUNK, CHUNK, t0 + 1000.0 * (k * 100 + r), poison, how))
            start = time.perf_counter()
            if not writer.flush():
                raise RuntimeError("the database failed during the benchmark")
            if r:
                samples.append(time.perf_counter() - start)
            if writer.stats.quarantined_rows != poison:
                raise RuntimeError(f"quarantined {writer.stats.quarantined_rows} of {poison}")
        t = Timing(tuple(samples))
        kind = "-" if not poison else "time check" if how == "time" else "the database"
        rows.append(
            (f"{poison}", kind, ms(t.median), ms(t.min), f"{(CHUNK - poison) / t.median:,.0f}")
        )
    return rows


def outage_backlog(store: Store, devices: int, outage_s: float) -> tuple[object, ...]:
    flaky = Outage(store)
    steps = int(outage_s / 2.0)
    writer = StoreWriter(flaky, devices * steps + 1)  # type: ignore[arg-type]
    t0 = time.time() - 86_400.0
    flaky.down = True
    for k in range(steps):  # one control cycle's readings every 2 s of the outage
        writer.telemetry(readings(devices, devices, t0 + 2.0 * k))
        writer.flush()
    backlog = writer.buffered_rows
    flaky.down = False
    start = time.perf_counter()
    if not writer.flush():
        raise RuntimeError("the backlog was not written")
    took = time.perf_counter() - start
    return (
        f"{devices:,}",
        f"{outage_s:g}",
        f"{backlog:,}",
        f"{took:.2f}",
        f"{backlog / took:,.0f}",
    )


def main() -> None:
    p = parser(__doc__.splitlines()[0], repeat=3)
    p.add_argument("--pg", default=PG_URL, help=f"PostgreSQL URL (default {PG_URL})")
    p.add_argument("--devices", type=int, default=20_000, help="fleet for the outage backlog")
    p.add_argument("--outage-s", type=float, default=60.0, help="length of the outage [s]")
    args = p.parse_args()
    logging.disable(logging.CRITICAL)  # every refused row logs an error: not timed here
    print_header("Store writer under faults")
    schema = f"bench_{secrets.token_hex(4)}"
    pg = Store(args.pg, schema=schema)
    try:
        pg.upgrade()
        console.print(f"PostgreSQL schema {schema}", highlight=False)
        print_table(
            f"Refused readings in a {CHUNK:,}-reading chunk (flush, median of {args.repeat})",
            ["bad", "refused by", "median ms", "min ms", "good rows/s"],
            refused_rows(pg, args.repeat),
        )
        print_table(
            "Backlog after an outage (one flush once the database is back)",
            ["devices", "outage s", "readings buffered", "flush s", "rows/s"],
            [outage_backlog(pg, args.devices, args.outage_s)],
        )
    finally:
        with pg.engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        pg.close()


if __name__ == "__main__":
    main()
