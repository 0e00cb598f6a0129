"""Failover of the control leader: time without control, commands, telemetry, and fencing.

The same scenario code as the CI fault suite (``tests/faults/_failover.py``) on real
parts: PostgreSQL at ``GRIDFLOCK_TEST_POSTGRES_URL`` (a throw-away schema per run), a
private Mosquitto, two ``gridflock serve --role control`` (leader and hot standby),
``--ingest`` ingest workers and ``gridflock sim gateways`` (every device reports each
second, ideal links, every command logged with its seq and epoch).

- ``kill``: SIGKILL of the leader mid-event, ``--repeat`` times; the time without control
  is from the kill to the first command of the new leader accepted by a gateway (the goal
  is 5 s); the other figures must be zero: duplicate (device, seq), refused commands,
  devices whose command lapsed before the new one came, stored commands no gateway
  received, readings published but not stored;
- ``deposed``: the leader paused (SIGSTOP), its lock session cut, the standby leads, the
  old one resumed: how fast it stands down, and what gateways did with its epoch.

    python benchmarks/bench_failover.py [--homes 200] [--ingest 2] [--repeat 3]
        [--only kill,deposed]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _common import console, print_header, print_table, use_test_helpers

use_test_helpers()  # the fault harnesses of tests/faults

from faults._failover import FailoverFigures, deposed_leader, kill_leader_mid_event
from faults._harness import ScenarioError, table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--homes", type=int, default=200, help="homes in the fleet (default 200)")
    p.add_argument("--ingest", type=int, default=2, help="ingest workers (default 2)")
    p.add_argument("--repeat", type=int, default=3, help="kills to measure (default 3)")
    p.add_argument("--only", default="kill,deposed", help="scenarios, comma-separated")
    args = p.parse_args()
    print_header("Failover of the control leader")
    only = args.only.split(",")
    kills: list[FailoverFigures] = []
    if "kill" in only:
        for i in range(args.repeat):
            with tempfile.TemporaryDirectory(prefix="bench-failover-") as tmp:
                t0 = time.monotonic()
                try:
                    f = kill_leader_mid_event(Path(tmp), homes=args.homes, ingest=args.ingest)
                except ScenarioError as e:
                    console.print(f"[red]kill {i + 1}: {e}[/]", highlight=False)
                    continue
                print_table(
                    f"kill {i + 1} ({time.monotonic() - t0:.0f} s)", ["figure", "value"], table(f)
                )
                kills.append(f)
    if kills:
        no_control = [f.no_control_s for f in kills]
        print_table(
            "Summary: kill -9 of the leader",
            ["figure", "value"],
            [
                ("runs", str(len(kills))),
                ("devices", f"{kills[0].devices:,}"),
                (
                    "time without control [s] (median, max)",
                    f"{statistics.median(no_control):.2f}, {max(no_control):.2f}",
                ),
                ("standby leads after [s] (max)", f"{max(f.takeover_s for f in kills):.2f}"),
                ("back on target after [s] (max)", f"{max(f.back_on_target_s for f in kills):.2f}"),
                ("duplicate (device, seq)", str(sum(f.duplicate_seq for f in kills))),
                ("commands refused", str(sum(f.replayed_or_refused for f in kills))),
                ("coverage gaps", str(sum(f.coverage_gaps for f in kills))),
                ("stored, not received", str(sum(f.commands_stored_not_received for f in kills))),
                (
                    "telemetry lost",
                    f"{sum(f.telemetry_lost for f in kills):,} of "
                    f"{sum(f.readings_published for f in kills):,}",
                ),
                ("goal: time without control", "<= 5 s"),
            ],
        )
    if "deposed" in only:
        with tempfile.TemporaryDirectory(prefix="bench-deposed-") as tmp:
            try:
                d = deposed_leader(Path(tmp), homes=max(args.homes // 4, 10))
            except ScenarioError as e:
                console.print(f"[red]deposed: {e}[/]", highlight=False)
            else:
                print_table("deposed leader", ["figure", "value"], table(d))


if __name__ == "__main__":
    main()
