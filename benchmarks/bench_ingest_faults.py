"""Ingest workers through a worker kill, a broker restart and a database outage: figures.

The scenarios of ``tests/faults/test_ingest.py`` (``tests/faults/_ingest.py``) at a
chosen rate: two ``gridflock serve --role ingest`` processes on a private Mosquitto and
a throw-away PostgreSQL schema, a publisher sending every gateway's readings in turn,
each message stamped with its publish time (so the readings missing from the store say
when they were lost).

    python benchmarks/bench_ingest_faults.py [--rate 200] [--only kill,broker,outage]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import print_header, print_table, use_test_helpers

use_test_helpers()  # the fault harnesses of tests/faults

from faults._harness import table
from faults._ingest import broker_restart, database_outage, kill_one


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--rate", type=float, default=200.0, help="messages per second")
    p.add_argument("--outage", type=float, default=10.0, help="database outage [s]")
    p.add_argument("--only", default="kill,broker,outage")
    args = p.parse_args()
    print_header("Ingest workers: kill, broker restart, database outage")
    runs = {
        "kill": lambda d: kill_one(d, rate=args.rate, before_s=5, after_s=5),
        "broker": lambda d: broker_restart(d, rate=args.rate),
        "outage": lambda d: database_outage(d, rate=args.rate, down_s=args.outage),
    }
    for name in args.only.split(","):
        with tempfile.TemporaryDirectory(prefix=f"bench-ingest-{name}-") as tmp:
            t0 = time.monotonic()
            figures = runs[name](Path(tmp))
            print_table(
                f"{name} ({time.monotonic() - t0:.0f} s)", ["figure", "value"], table(figures)
            )


if __name__ == "__main__":
    main()
