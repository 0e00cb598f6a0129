"""Shared helpers for the benchmarks: timing, machine facts, tables and a live fleet.

Not a test module: the benchmarks are plain scripts (``python benchmarks/bench_*.py``),
run by hand, never in CI. Each builds what it needs with :func:`build_live_fleet`, which
generates a realistic fleet with :func:`gridflock.fleet.generate.generate_fleet` (no
tiling) and brings its live state to a summer evening by stepping the digital twin.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from gridflock.domain.spec import FleetSpec
from gridflock.fleet.generate import generate_fleet
from gridflock.fleet.state import FleetState
from gridflock.service._malloc import keep_freed_memory
from gridflock.sim.twin import Twin

keep_freed_memory()  # as the service does: fleet-scale temporaries stay in the heap

console = Console(width=130)

#: Devices per generated home (measured: 345,000 homes -> 997,431 devices, seed 7).
DEVICES_PER_HOME = 997_431 / 345_000
#: The live state is set at this local time: the evening peak of a hot summer day.
LIVE_START_LOCAL = "2026-07-15 18:00"
SEED = 7


# ---------------------------------------------------------------- timing
@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of each timed repeat (the warm-up excluded)."""

    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def max(self) -> float:
        return max(self.samples)

    @property
    def p99(self) -> float:
        """99th percentile (nearest rank; equals the max below 100 repeats)."""
        xs = sorted(self.samples)
        return xs[max(math.ceil(0.99 * len(xs)) - 1, 0)]


def measure(fn: Callable[[], Any], repeat: int, warmup: int = 1) -> Timing:
    """Call ``fn`` ``warmup`` times untimed, then ``repeat`` times timed one by one."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return Timing(tuple(samples))


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.s`` holds the elapsed seconds."""

    s: float = 0.0

    def __enter__(self) -> Stopwatch:
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.s = time.perf_counter() - self._t0


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f}"


def verdict(value: float, target: float, lower_is_better: bool = True) -> str:
    ok = value < target if lower_is_better else value >= target
    return "[green]PASS[/]" if ok else "[red]MISS[/]"


# ---------------------------------------------------------------- machine
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, str]:
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "(unset)"),
    }


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far [MiB] (Linux: ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float:
    """Current resident set size [MiB] from /proc/self/statm."""
    try:
        with open("/proc/self/statm", encoding="utf-8") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def print_header(title: str) -> None:
    console.rule(f"[bold]{title}")
    info = machine_info()
    console.print(", ".join(f"{k}={v}" for k, v in info.items()), highlight=False)


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    table = Table(title=title, title_justify="left")
    for i, c in enumerate(columns):
        table.add_column(c, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(str(x) for x in row))
    console.print(table)


def parser(
    description: str, *, devices: int | None = None, homes: int | None = None, repeat: int = 30
) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    if devices is not None:
        p.add_argument(
            "--devices",
            type=int,
            default=devices,
            help=f"devices in the fleet, at least (default {devices:,})",
        )
    if homes is not None:
        p.add_argument(
            "--homes",
            type=int,
            default=homes,
            help=f"homes in the generated fleet (default {homes:,})",
        )
    p.add_argument(
        "--repeat",
        type=int,
        default=repeat,
        help=f"timed repeats after one warm-up (default {repeat})",
    )
    p.add_argument("--seed", type=int, default=SEED, help="fleet seed")
    return p


# ---------------------------------------------------------------- fleets
def homes_for(devices: int) -> int:
    """Homes to generate so the fleet holds at least ``devices`` devices (about)."""
    return max(1, math.ceil(devices / DEVICES_PER_HOME * 1.001))


def live_start() -> pd.Timestamp:
    return pd.Timestamp(LIVE_START_LOCAL, tz="Europe/Berlin").tz_convert("UTC")


@dataclass
class LiveFleet:
    spec: FleetSpec
    state: FleetState
    twin: Twin
    now: float
    build_s: dict[str, float]


def build_live_fleet(
    devices: int, seed: int = SEED, warm_steps: int = 5, extra_steps: int = 0, quiet: bool = False
) -> LiveFleet:
    """A generated fleet of at least ``devices`` devices with a realistic live state.

    The fleet comes from ``generate_fleet`` (no tiling: ids, sites and grid nodes are all
    distinct). The twin is started at 18:00 local on 2026-07-15 (a hot evening, when PV
    fades, EVs plug in and air-conditioning heat pumps run) and stepped ``warm_steps``
    1-minute steps; every reading it emits is applied to the state, so online flags,
    baselines, SoC, indoor and tank temperatures and EV needs are the twin's own. The twin
    is returned able to run ``extra_steps`` more steps.
    """
    homes = homes_for(devices)
    times: dict[str, float] = {}
    with Stopwatch() as sw:
        spec = generate_fleet(homes, seed)
    times["generate_fleet"] = sw.s
    with Stopwatch() as sw:
        state = FleetState.from_spec(spec)
    times["FleetState.from_spec"] = sw.s
    with Stopwatch() as sw:
        twin = Twin(spec, live_start(), warm_steps + extra_steps, 60.0, seed)
        for _ in range(warm_steps):
            twin.step()
            for batch in twin.receive():
                state.apply(batch)
    times[f"Twin + {warm_steps} steps"] = sw.s
    if not quiet:
        console.print(
            f"fleet: {homes:,} homes, {state.n:,} devices, {state.grid.n_nodes:,} grid nodes, "
            f"{state.grid.n_sites:,} sites; online {state.online.mean():.1%}; built in "
            + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()),
            highlight=False,
        )
    return LiveFleet(spec, state, twin, twin.now, times)


def use_test_helpers() -> None:
    """Make the repository's ``tests`` folder importable as ``tests`` (and its subfolders).

    A dependency (gmqtt) installs a top-level ``tests`` package into site-packages, which
    would shadow the repository's namespace folder; the fault harnesses import
    ``tests._net``.
    """
    import sys
    import types
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "tests"
    pkg = types.ModuleType("tests")
    pkg.__path__ = [str(root)]
    sys.modules["tests"] = pkg
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
