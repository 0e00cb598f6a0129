"""The fault scenarios of ``tests/faults`` with larger fleets: what is lost, how fast it recovers.

The same scenario code as the CI fault suite (``tests/faults/_restarts.py``,
``_outage.py``, ``_hostile.py``), run on real parts: PostgreSQL at
``GRIDFLOCK_TEST_POSTGRES_URL`` (default 127.0.0.1:5432/test, a throw-away schema per
scenario), a private Mosquitto per scenario, ``gridflock serve`` and
``gridflock sim gateways`` as subprocesses (every device reports each second, ideal
links). Each scenario prints its figures; a summary table follows.

- ``kill``: SIGKILL of ``gridflock serve`` mid-event and restart on the same port;
- ``ack``: SIGKILL right after ``POST /events`` answered 201;
- ``broker``: broker restart, then a service restart; telemetry rates before and after;
- ``outage``: PostgreSQL cut for ``--outage`` seconds under load; readings published
  against rows stored;
- ``overflow``: the same with the buffer bound at its minimum (1,000 readings), far below
  what the outage brings: the readings lost must be those the service counts as dropped
  (``--overflow-homes``, default 200: the buffer drops whole control cycles, so a cycle
  with more readings than the bound is dropped even while the database is up);
- ``hostile``: a hostile gateway next to well-behaved ones (one broker connection per
  gateway, so keep ``--hostile-homes`` to a few hundred).

    python benchmarks/bench_faults.py [--homes 1000] [--hostile-homes 200] [--overflow-homes 200]
        [--outage 10]
        [--only kill,ack,broker,outage,overflow,hostile]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import console, print_header, print_table, use_test_helpers

use_test_helpers()  # the fault harnesses of tests/faults

from faults._harness import ScenarioError, table
from faults._hostile import hostile_gateway
from faults._outage import database_outage
from faults._restarts import (
    broker_then_service_restart,
    kill_mid_event,
    kill_right_after_201,
)

SCENARIOS = ("kill", "ack", "broker", "outage", "overflow", "hostile")


def summary(name: str, f: Any) -> tuple[str, ...]:
    """One row: scenario, devices, readings lost, seconds to recover, rates before/after."""
    if name == "kill":
        lost = f"{f.telemetry_rows_lost} rows, {f.samples_lost} samples, {f.commands_lost} cmds"
        return (
            name,
            f"{f.devices:,}",
            lost,
            f"answers {f.restart_s:.2f} s ({f.restart_cpu_s:.1f} s CPU), "
            f"on target {f.back_on_target_s:.1f} s",
            "",
        )
    if name == "ack":
        return (name, "-", "event lost" if not f.stored_after_kill else "0", "-", "")
    if name == "broker":
        return (
            name,
            f"{f.devices:,}",
            "-",
            f"link {f.broker_reconnect_s:.2f} s; new service answers {f.service_answer_s:.1f} s, "
            f"full rate {f.service_recover_s:.1f} s",
            f"{f.rate_before:,.0f} -> {f.rate_after_broker:,.0f} -> "
            f"{f.rate_after_service:,.0f} readings/s (share of the messages an observer got: "
            f"{f.share_before:.2f} -> {f.share_after_broker:.2f} -> {f.share_after_service:.2f})",
        )
    if name in ("outage", "overflow"):
        return (
            name,
            f"{f.devices:,}",
            f"{f.lost:,} of {f.published:,} ({f.dropped_by_service:,} counted as dropped, "
            f"bound {f.buffer_bound:,})",
            f"backlog {f.buffered_peak:,} written in {f.flush_s:.2f} s",
            "",
        )
    return (
        name,
        f"{f.devices:,}",
        f"{f.good_lost:,} of {f.good_published:,}",
        f"service connections {f.service_connections}",
        "",
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--homes", type=int, default=1000, help="homes in the fleet (default 1,000)")
    p.add_argument(
        "--hostile-homes",
        type=int,
        default=200,
        help="homes in the hostile scenario (one connection per gateway)",
    )
    p.add_argument("--outage", type=float, default=10.0, help="database outage [s]")
    p.add_argument(
        "--overflow-homes",
        type=int,
        default=200,
        help="homes in the overflow scenario (default 200: one cycle's readings stay under "
        "the 1,000-reading bound, which drops whole cycles)",
    )
    p.add_argument("--only", default=",".join(SCENARIOS), help="scenarios to run, comma-separated")
    args = p.parse_args()
    print_header("Faults: what is lost, how fast it recovers")
    runs = {
        "kill": lambda d: kill_mid_event(d, homes=args.homes),
        "ack": lambda d: kill_right_after_201(d),
        "broker": lambda d: broker_then_service_restart(d, homes=args.homes),
        "outage": lambda d: database_outage(d, homes=args.homes, outage_s=args.outage),
        "overflow": lambda d: database_outage(
            d, homes=args.overflow_homes, outage_s=args.outage, buffer_rows=1000
        ),
        "hostile": lambda d: hostile_gateway(d, homes=args.hostile_homes),
    }
    rows = []
    for name in args.only.split(","):
        with tempfile.TemporaryDirectory(prefix=f"bench-faults-{name}-") as tmp:
            t0 = time.monotonic()
            try:
                figures = runs[name](Path(tmp))
            except ScenarioError as e:
                console.print(f"[red]{name}: {e}[/]", highlight=False)
                rows.append((name, "-", "scenario failed", str(e)[:60], ""))
                continue
            print_table(
                f"{name} ({time.monotonic() - t0:.0f} s)", ["figure", "value"], table(figures)
            )
            rows.append(summary(name, figures))
    print_table("Summary", ["scenario", "devices", "lost", "recovery", "rates"], rows)


if __name__ == "__main__":
    main()
