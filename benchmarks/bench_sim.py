"""The simulator: 100,000 homes, one day at 1-minute steps (target < 30 s).

    python benchmarks/bench_sim.py [--homes 100000] [--repeat 1] [--profile twin|scenario]

Two phases, each in its own child process so each has its own peak RSS:

* **twin**: ``Twin(spec, 00:00 local 2026-07-15, 1440, 60 s, seed)`` constructed, then
  1440 x ``twin.step()`` + ``twin.receive()`` (the digital twin alone, readings discarded);
* **scenario**: ``run_scenario(spec, ScenarioConfig(date=2026-07-15))`` with the default
  event, i.e. what ``gridflock simulate --homes N`` computes (without writing the report):
  a forecast pass of the undispatched twin into a fleet state, then the dispatched pass
  (twin + fleet state + dispatcher/tracker closed loop).

``generate_fleet`` is timed separately and not counted in either phase. Each child warms
up with a short run of the same phase on a 1,000-home fleet (30 twin steps, or a
day at 15-minute steps) before the timed repeats.
"""

from __future__ import annotations

import cProfile
import datetime as dt
import json
import pstats
import subprocess
import sys

import pandas as pd

from _common import (
    Stopwatch,
    Timing,
    parser,
    peak_rss_mb,
    print_header,
    print_table,
    verdict,
)
from gridflock.fleet.generate import generate_fleet
from gridflock.sim.scenario import ScenarioConfig, run_scenario
from gridflock.sim.twin import Twin

TARGET_S = 30.0
DAY = dt.date(2026, 7, 15)
TZ = "Europe/Berlin"


def _twin_day(spec, steps: int, seed: int) -> None:
    start = pd.Timestamp(DAY, tz=TZ).tz_convert("UTC")
    twin = Twin(spec, start, steps, 60.0, seed)
    for _ in range(steps):
        twin.step()
        twin.receive()


def _scenario_day(spec, seed: int, step_s: float = 60.0) -> dict[str, float]:
    cfg = ScenarioConfig(date=DAY, hours=24.0, step_s=step_s, seed=seed)
    r = run_scenario(spec, cfg)
    ev = r.events[0] if r.events else None
    return {
        "peak_reduction_pct": r.peak_reduction_pct,
        "event_kw": ev.event.target_kw if ev else float("nan"),
        "commands": sum(len(c) for c in r.commands),
    }


def child(phase: str, homes: int, repeat: int, seed: int, profile: bool) -> None:
    """Run one phase and print a JSON line with its timings."""
    small = generate_fleet(1000, seed)
    if phase == "twin":
        _twin_day(small, 30, seed)
    else:
        _scenario_day(small, seed, step_s=900.0)
    with Stopwatch() as sw:
        spec = generate_fleet(homes, seed)
    gen_s = sw.s
    n_devices = sum(len(df) for df in spec.devices.values())
    samples, extra = [], {}
    prof = cProfile.Profile() if profile else None
    for _ in range(repeat):
        if prof:
            prof.enable()
        with Stopwatch() as sw:
            if phase == "twin":
                _twin_day(spec, 1440, seed)
            else:
                extra = _scenario_day(spec, seed)
        if prof:
            prof.disable()
        samples.append(sw.s)
    if prof:
        pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    print(
        json.dumps(
            {
                "samples": samples,
                "generate_s": gen_s,
                "devices": n_devices,
                "peak_rss_mb": peak_rss_mb(),
                **extra,
            }
        )
    )


def main() -> None:
    p = parser(__doc__.splitlines()[0], homes=100_000, repeat=1)
    p.add_argument(
        "--profile",
        choices=["twin", "scenario"],
        default=None,
        help="cProfile one phase (printed to stderr)",
    )
    p.add_argument("--phase", choices=["twin", "scenario"], help=argparse_hidden())
    args = p.parse_args()
    if args.phase:
        child(args.phase, args.homes, args.repeat, args.seed, args.profile == args.phase)
        return
    print_header(f"bench_sim: {args.homes:,} homes, one day at 1-minute steps")
    rows, results = [], {}
    for phase in ("twin", "scenario"):
        cmd = [
            sys.executable,
            __file__,
            "--phase",
            phase,
            "--homes",
            str(args.homes),
            "--repeat",
            str(args.repeat),
            "--seed",
            str(args.seed),
        ]
        if args.profile:
            cmd += ["--profile", args.profile]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        if out.stderr.strip():
            print(out.stderr, file=sys.stderr)
        res = json.loads(out.stdout.strip().splitlines()[-1])
        results[phase] = res
        t = Timing(tuple(res["samples"]))
        target = TARGET_S if args.homes >= 100_000 else None
        rows.append(
            [
                "Twin: construct + 1440 x step + receive"
                if phase == "twin"
                else "run_scenario (forecast pass + dispatched pass)",
                f"{t.median:.1f}",
                f"{t.min:.1f}",
                f"{1e3 * t.median / 1440:.1f}",
                f"{res['peak_rss_mb']:,.0f}",
                f"< {target:.0f}" if target else "(< 30 at 100k)",
                verdict(t.median, target) if target else "-",
            ]
        )
    res = results["twin"]
    print_table(
        f"{args.homes:,} homes, {res['devices']:,} devices, 1440 steps of 60 s; "
        f"{args.repeat} timed run(s) per phase after a small warm-up; generate_fleet "
        f"{res['generate_s']:.1f} s (not counted)",
        ["phase", "median s", "min s", "ms / step", "peak RSS MiB", "target s", "verdict"],
        rows,
    )
    sc = results["scenario"]
    print(
        f"scenario: default event {sc['event_kw']:,.0f} kW, {sc['commands']:,} commands, "
        f"peak import reduced {sc['peak_reduction_pct']:.1f} %"
    )


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
