"""Memory per device of the fleet state against the <= 2 KB/device target.

    python benchmarks/bench_memory.py [--devices 1000000] [--no-tracemalloc]

Reported per device, for a generated fleet of ~1,000,000 devices:

* ``FleetState.nbytes() / n``: the state's own accounting (arrays, id index, id strings);
* RSS growth over ``FleetState.from_spec(spec)`` (the spec already in memory);
* tracemalloc peak and retained size of ``from_spec`` (NumPy reports its buffers to
  tracemalloc; costs about 2x on the build time);
* process RSS once the spec is dropped, minus the RSS after imports: what a service that
  keeps only the fleet state holds for it (after ``malloc_trim``; still an upper bound,
  as fragmented heap pages stay mapped);
* the same after a live twin has stepped it (the twin is a simulator, not part of the
  service: its own footprint is shown separately, not counted against the target).

``--repeat`` is accepted for symmetry with the other benchmarks and ignored: memory is
deterministic.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import tracemalloc

import numpy as np

from _common import (
    Stopwatch,
    current_rss_mb,
    homes_for,
    live_start,
    parser,
    peak_rss_mb,
    print_header,
    print_table,
    verdict,
)
from gridflock.fleet.generate import generate_fleet
from gridflock.fleet.state import FleetState
from gridflock.sim.twin import Twin

TARGET_B = 2048.0
MiB = 2**20


def _malloc_trim() -> None:
    """Hand freed heap back to the OS (glibc), so RSS reflects what is still held."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def main() -> None:
    p = parser(__doc__.splitlines()[0], devices=1_000_000, repeat=1)
    p.add_argument("--no-tracemalloc", action="store_true", help="skip the tracemalloc pass")
    args = p.parse_args()
    print_header("bench_memory: fleet state bytes per device")
    gc.collect()
    rss_imports = current_rss_mb()
    with Stopwatch() as sw:
        spec = generate_fleet(homes_for(args.devices), args.seed)
    rss_spec = current_rss_mb()
    print(
        f"generate_fleet {sw.s:.1f} s; RSS {rss_imports:,.0f} -> {rss_spec:,.0f} MiB with the spec"
    )

    gc.collect()
    rss0 = current_rss_mb()
    with Stopwatch() as sw:
        state = FleetState.from_spec(spec)
    build_s = sw.s
    rss1 = current_rss_mb()
    n = state.n

    trace_peak = trace_kept = float("nan")
    if not args.no_tracemalloc:
        tracemalloc.start()
        with Stopwatch() as sw:
            probe = FleetState.from_spec(spec)
        trace_kept, trace_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        del probe
        gc.collect()
        print(f"tracemalloc pass: from_spec {sw.s:.1f} s (untraced {build_s:.1f} s)")

    del spec
    gc.collect()
    _malloc_trim()
    rss_state = current_rss_mb()

    twin_spec = generate_fleet(homes_for(args.devices), args.seed)
    twin = Twin(twin_spec, live_start(), 5, 60.0, args.seed)
    del twin_spec
    gc.collect()
    _malloc_trim()
    rss_twin = current_rss_mb()
    for _ in range(5):
        twin.step()
        for batch in twin.receive():
            state.apply(batch)
    gc.collect()
    _malloc_trim()
    rss_live = current_rss_mb()
    nbytes = state.nbytes()

    def row(name: str, total_b: float, judged: bool = True) -> list[str]:
        per = total_b / n
        return [
            name,
            f"{total_b / MiB:,.1f}",
            f"{per:,.0f}",
            "<= 2048" if judged else "-",
            verdict(per, TARGET_B + 1e-9) if judged else "-",
        ]

    rows = [
        row("FleetState.nbytes()", nbytes),
        row("RSS growth over FleetState.from_spec", (rss1 - rss0) * MiB),
        row("tracemalloc: retained after from_spec", trace_kept),
        row("tracemalloc: peak during from_spec", trace_peak, judged=False),
        row(
            "RSS with only the state (spec dropped) - RSS after imports",
            (rss_state - rss_imports) * MiB,
        ),
        row(
            "  same, after 5 twin steps applied (twin excluded)",
            (rss_live - rss_imports) * MiB - (rss_twin - rss_state) * MiB,
        ),
        row("(the twin itself, for reference)", (rss_twin - rss_state) * MiB, judged=False),
    ]
    print_table(
        f"{n:,} devices, {state.grid.n_sites:,} sites, {state.grid.n_nodes:,} nodes",
        ["what", "MiB", "bytes/device", "target B", "verdict"],
        rows,
    )

    parts = []
    for name, value in vars(state).items():
        if isinstance(value, np.ndarray):
            parts.append((name, value.nbytes))
    parts.append(("extras (7 arrays)", sum(a.nbytes for a in state.extras.values())))
    parts.append(("_index (deep)", int(state._index.memory_usage(deep=True))))
    parts.append(
        ("device id strings (len + 49 B)", int(sum(len(s) + 49 for s in state.device_ids)))
    )
    parts.sort(key=lambda kv: -kv[1])
    print_table(
        "nbytes breakdown (largest first)",
        ["part", "MiB", "bytes/device"],
        [[k, f"{v / MiB:,.1f}", f"{v / n:,.0f}"] for k, v in parts[:12]],
    )
    print(f"RSS after imports {rss_imports:,.0f} MiB; peak RSS {peak_rss_mb():,.0f} MiB")


if __name__ == "__main__":
    main()
