"""Tracking quality on the twin: delivered % and RMS tracking error over a matrix.

    python benchmarks/bench_tracking.py [--sizes 1000,10000] [--seeds 11,12,13]
        [--mixes all,no-battery,thermal] [--ablation]

Each run is ``run_scenario(spec, ScenarioConfig(date=2026-07-15, seed=...))``: a day at
1-minute steps with the default evening event, what ``gridflock simulate --homes N
--seed S`` computes. Delivered % and RMS come from the twin (fleet with the VPP minus
its undispatched shadow, over the event's window), not from the tracker's bookkeeping.
Two device conditions: **ideal** (no latency, loss, outage, disobedience or noise) and
**faulty** (default latency 3 s median and noise, 10 % of devices go offline during the
day, 10 % ignore commands, 5 % of readings lost). Fleet mixes: ``all`` (generated
fleet), ``no-battery`` (home batteries removed: EVs, heat pumps and water heaters carry
the event), ``thermal`` (heat pumps and water heaters only, with PV and loads).

``--ablation`` instead runs 2,000 homes, seed 11, switching one source of error off at
a time (in the twin's imperfections) and one part of the control law off at a time.
The goal (issue 7): >= 97 % delivered and RMS < 3 % with faults, more when ideal.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import time
from dataclasses import replace
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from gridflock.dispatch import TrackerConfig
from gridflock.domain.kinds import DeviceKind
from gridflock.domain.spec import FleetSpec
from gridflock.fleet.generate import generate_fleet
from gridflock.sim import scenario
from gridflock.sim.imperfections import Imperfections
from gridflock.sim.scenario import ScenarioConfig, run_scenario

DAY = dt.date(2026, 7, 15)
FAULTY = Imperfections(offline_rate=0.1, ignore_rate=0.1, dropout_rate=0.05)
KEEP = {
    "all": set(DeviceKind),
    "no-battery": set(DeviceKind) - {DeviceKind.BATTERY},
    "thermal": {DeviceKind.HEAT_PUMP, DeviceKind.WATER_HEATER, DeviceKind.PV, DeviceKind.LOAD},
    "no-ev": set(DeviceKind) - {DeviceKind.EV_CHARGER},
    "no-water-heater": set(DeviceKind) - {DeviceKind.WATER_HEATER},
}


def law(step_s: float = 60.0, **changes: Any) -> TrackerConfig:
    """The scenario's tracker config with ``changes`` (fields this tree does not have: None)."""
    make = getattr(scenario, "scenario_tracker_config", None)
    cfg = make(step_s) if make else TrackerConfig(interval_s=step_s)
    names = {f.name for f in dataclasses.fields(TrackerConfig)}
    if not set(changes) <= names:
        return None  # type: ignore[return-value]
    return replace(cfg, **changes)


def mix(spec: FleetSpec, name: str) -> FleetSpec:
    """The fleet with only the kinds of mix ``name`` (others left empty)."""
    keep = KEEP[name]
    devices = {k: (df if k in keep else df.iloc[0:0]) for k, df in spec.devices.items()}
    return replace(spec, devices=devices)


def measure(spec: FleetSpec, cfg: ScenarioConfig) -> tuple[float, float, float, int, float]:
    """(delivered %, RMS %, target kW, non-responders, seconds) of the run's one event."""
    began = time.perf_counter()
    r = run_scenario(spec, cfg)
    (o,) = r.events
    ts = np.array([t.timestamp() for t in r.times])
    inside = (ts >= o.event.start) & (ts < o.event.end)
    truth = o.delivered_kw[inside]
    target = o.event.target_kw
    pct = 100.0 * float(truth.mean()) / target
    rms = 100.0 * float(np.sqrt(np.mean((truth - target) ** 2))) / abs(target)
    return pct, rms, target, o.performance.non_responders, time.perf_counter() - began


def matrix(args: argparse.Namespace, console: Console) -> None:
    table = Table(title="Tracking on the twin (default evening event, 1-min steps)")
    for col in ("homes", "mix", "seed", "devices", "target kW", "delivered %", "RMS %"):
        table.add_column(col, justify="right")
    table.add_column("non-resp.", justify="right")
    table.add_column("run s", justify="right")
    worst: dict[str, list[float]] = {"ideal": [101.0, 0.0], "faulty": [101.0, 0.0]}
    for homes in args.sizes:
        for seed in args.seeds:
            base = generate_fleet(homes, seed)
            for name in args.mixes:
                spec = mix(base, name)
                for cond, imp in (("ideal", Imperfections.ideal()), ("faulty", FAULTY)):
                    cfg = ScenarioConfig(
                        date=DAY, seed=seed, imperfections=imp, tracker=law(**args.set)
                    )
                    pct, rms, target, nr, secs = measure(spec, cfg)
                    worst[cond][0] = min(worst[cond][0], pct)
                    worst[cond][1] = max(worst[cond][1], rms)
                    console.print(
                        f"{homes} homes {name}/{cond} seed {seed}: target {target:,.0f} kW, "
                        f"delivered {pct:.1f} %, RMS {rms:.2f} %, {nr} non-responders, "
                        f"{secs:.0f} s",
                        highlight=False,
                    )
                    table.add_row(
                        f"{homes:,}",
                        f"{name} / {cond}",
                        str(seed),
                        f"{spec.n_devices:,}",
                        f"{target:,.0f}",
                        f"{pct:.1f}",
                        f"{rms:.2f}",
                        str(nr),
                        f"{secs:.1f}",
                    )
    console.print(table)
    for cond, (pct, rms) in worst.items():
        console.print(f"worst {cond}: delivered {pct:.1f} %, RMS {rms:.2f} %")


def ablation(console: Console) -> None:
    """One switch at a time; runs that need a field this tree lacks are skipped.

    The same script runs on an older tree (``PYTHONPATH=<old>/src``) to measure the law it
    had: the twin-side switches and fleet mixes exist in both.
    """
    spec = generate_fleet(2000, 11)
    ideal = Imperfections.ideal()
    table = Table(title="Where the error comes from: 2,000 homes, seed 11, one switch at a time")
    table.add_column("run")
    for col in ("delivered %", "RMS %", "non-resp."):
        table.add_column(col, justify="right")
    runs: list[tuple[str, Imperfections, TrackerConfig | None, str, float]] = [
        ("ideal devices", ideal, law(), "all", 60.0),
        ("faulty devices", FAULTY, law(), "all", 60.0),
        ("faulty, no latency", replace(FAULTY, latency_median_s=0.0), law(), "all", 60.0),
        ("faulty, no lost readings", replace(FAULTY, dropout_rate=0.0), law(), "all", 60.0),
        ("faulty, nobody goes offline", replace(FAULTY, offline_rate=0.0), law(), "all", 60.0),
        ("faulty, nobody ignores", replace(FAULTY, ignore_rate=0.0), law(), "all", 60.0),
        ("faulty, no measurement noise", replace(FAULTY, noise_kw=0.0), law(), "all", 60.0),
        ("ideal, no EV chargers", ideal, law(), "no-ev", 60.0),
        ("ideal, no water heaters", ideal, law(), "no-water-heater", 60.0),
        ("ideal, no batteries", ideal, law(), "no-battery", 60.0),
        ("ideal, no integral (gain 0)", ideal, law(gain=0.0), "all", 60.0),
        ("ideal, integral gain 1", ideal, law(gain=1.0), "all", 60.0),
        ("ideal, integral from the start (grace 0)", ideal, law(grace_s=0.0), "all", 60.0),
        ("ideal, 30 s control step", ideal, law(30.0), "all", 30.0),
        ("faulty, 30 s control step", FAULTY, law(30.0), "all", 30.0),
        ("ideal, hold off (release mid-event)", ideal, law(hold=False), "all", 60.0),
        ("faulty, hold off", FAULTY, law(hold=False), "all", 60.0),
        ("faulty, slip trusted at once (1.0)", FAULTY, law(slip_smoothing=1.0), "all", 60.0),
        ("faulty, slow slip estimate (0.1)", FAULTY, law(slip_smoothing=0.1), "all", 60.0),
        ("faulty, no claim margin", FAULTY, law(claim_margin=0.0), "all", 60.0),
    ]
    for name, imp, tracker, fleet, step in runs:
        if tracker is None:
            continue
        cfg = ScenarioConfig(date=DAY, seed=11, imperfections=imp, tracker=tracker, step_s=step)
        pct, rms, _target, nr, _ = measure(mix(spec, fleet), cfg)
        table.add_row(name, f"{pct:.1f}", f"{rms:.2f}", str(nr))
    console.print(table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000,10000", type=lambda s: [int(x) for x in s.split(",")])
    ap.add_argument("--seeds", default="11,12,13", type=lambda s: [int(x) for x in s.split(",")])
    ap.add_argument("--mixes", default="all,no-battery", type=lambda s: s.split(","))
    ap.add_argument("--ablation", action="store_true", help="the one-switch-at-a-time table")
    ap.add_argument(
        "--set",
        default={},
        type=lambda s: {
            k: (v == "true") if v in ("true", "false") else float(v)
            for k, v in (kv.split("=") for kv in s.split(","))
        },
        help="tracker fields for the matrix, e.g. hold=false,gain=0.3",
    )
    args = ap.parse_args()
    console = Console(width=160)
    if args.ablation:
        ablation(console)
    else:
        matrix(args, console)


if __name__ == "__main__":
    main()
