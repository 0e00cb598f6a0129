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
import datetime as dt
import time
from dataclasses import replace

import numpy as np
from rich.console import Console
from rich.table import Table

from gridflock.domain.kinds import DeviceKind
from gridflock.domain.spec import FleetSpec
from gridflock.fleet.generate import generate_fleet
from gridflock.sim.imperfections import Imperfections
from gridflock.sim.scenario import ScenarioConfig, run_scenario, scenario_tracker_config

DAY = dt.date(2026, 7, 15)
FAULTY = Imperfections(offline_rate=0.1, ignore_rate=0.1, dropout_rate=0.05)
KEEP = {
    "all": set(DeviceKind),
    "no-battery": set(DeviceKind) - {DeviceKind.BATTERY},
    "thermal": {DeviceKind.HEAT_PUMP, DeviceKind.WATER_HEATER, DeviceKind.PV, DeviceKind.LOAD},
}


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
                    cfg = ScenarioConfig(date=DAY, seed=seed, imperfections=imp)
                    pct, rms, target, nr, secs = measure(spec, cfg)
                    worst[cond][0] = min(worst[cond][0], pct)
                    worst[cond][1] = max(worst[cond][1], rms)
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
    spec = generate_fleet(2000, 11)
    table = Table(title="Where the error comes from: 2,000 homes, seed 11, one switch at a time")
    for col in ("run", "delivered %", "RMS %", "non-resp."):
        table.add_column(col, justify="right" if col != "run" else "left")
    law = scenario_tracker_config(60.0)
    runs: list[tuple[str, Imperfections, object]] = [
        ("ideal devices, full law", Imperfections.ideal(), law),
        ("faulty devices, full law", FAULTY, law),
        ("faulty, no latency", replace(FAULTY, latency_median_s=0.0), law),
        ("faulty, no lost readings", replace(FAULTY, dropout_rate=0.0), law),
        ("faulty, nobody goes offline", replace(FAULTY, offline_rate=0.0), law),
        ("faulty, nobody ignores", replace(FAULTY, ignore_rate=0.0), law),
        ("faulty, no measurement noise", replace(FAULTY, noise_kw=0.0), law),
        (
            "ideal, devices released mid-event (hold off)",
            Imperfections.ideal(),
            replace(law, hold=False),
        ),
        ("faulty, hold off", FAULTY, replace(law, hold=False)),
        ("ideal, no claim margin", Imperfections.ideal(), replace(law, claim_margin=0.0)),
        ("faulty, slip trusted at once (smoothing 1)", FAULTY, replace(law, slip_smoothing=1.0)),
        ("faulty, slow slip estimate (smoothing 0.1)", FAULTY, replace(law, slip_smoothing=0.1)),
        ("faulty, no integral (gain 0)", FAULTY, replace(law, gain=0.0)),
        ("faulty, integral gain 0.6", FAULTY, replace(law, gain=0.6)),
        ("faulty, 30 s control step", FAULTY, scenario_tracker_config(30.0)),
    ]
    for name, imp, tracker in runs:
        step = 30.0 if "30 s" in name else 60.0
        cfg = ScenarioConfig(date=DAY, seed=11, imperfections=imp, tracker=tracker, step_s=step)  # type: ignore[arg-type]
        pct, rms, _target, nr, _ = measure(spec, cfg)
        table.add_row(name, f"{pct:.1f}", f"{rms:.2f}", str(nr))
    console.print(table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000,10000", type=lambda s: [int(x) for x in s.split(",")])
    ap.add_argument("--seeds", default="11,12,13", type=lambda s: [int(x) for x in s.split(",")])
    ap.add_argument("--mixes", default="all,no-battery", type=lambda s: s.split(","))
    ap.add_argument("--ablation", action="store_true", help="the one-switch-at-a-time table")
    args = ap.parse_args()
    console = Console()
    if args.ablation:
        ablation(console)
    else:
        matrix(args, console)


if __name__ == "__main__":
    main()
