"""Live service memory: RSS of Runtime + API app holding a fleet, per device.

Target (docs/architecture.md): ≤ 2 KB per device.

Each measurement runs in a fresh child process that does what ``gridflock serve`` does
without MQTT (a ``NoDevices`` link, a SQLite store): ``Runtime(settings, store, spec,
link)`` + ``create_app(runtime)``; then the twin (started 18:00 local on 2026-07-15) is
stepped ``--cycles`` times, every reading applied to ``runtime.state`` and
``runtime.control_cycle()`` run after each step (summary, history, metrics). The twin is
then dropped, ``gc.collect()``, and RSS read from /proc/self/statm. No ``malloc_trim``: the
service keeps freed arrays in its heap (``service/_malloc.py``), so their memory counts.
The spec stays alive (the Runtime keeps it, as in service).

bytes/device = (RSS with the fleet − RSS with a 1-home fleet) / devices.

    python benchmarks/bench_service_memory.py [--homes 100000] [--cycles 5]
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import console, current_rss_mb, live_start, parser, print_header, print_table

TARGET_B = 2048


def child(homes: int, cycles: int, seed: int, tmp: str) -> None:
    from gridflock.api.app import create_app
    from gridflock.config import Settings
    from gridflock.fleet.generate import generate_fleet
    from gridflock.service.links import NoDevices
    from gridflock.service.runtime import Runtime
    from gridflock.sim.twin import Twin
    from gridflock.store import Store

    db = f"sqlite:///{Path(tmp) / f'mem-{homes}.db'}"
    store = Store(db)
    store.upgrade()
    spec = generate_fleet(homes, seed)
    twin = Twin(spec, live_start(), cycles, 60.0, seed)
    offset = twin.now
    t = [offset]
    runtime = Runtime(Settings(database_url=db), store, spec, NoDevices(), clock=lambda: t[0])
    app = create_app(runtime)
    for _ in range(cycles):
        twin.step()
        for batch in twin.receive():
            runtime.state.apply(batch)
        t[0] = twin.now
        runtime.control_cycle()
    online = float(runtime.state.online.mean())
    del twin
    gc.collect()
    rss = current_rss_mb()
    print(
        json.dumps(
            {
                "devices": runtime.state.n,
                "rss_mb": rss,
                "online": online,
                "state_nbytes": runtime.state.nbytes(),
                "routes": len(app.routes),
            }
        )
    )


def main() -> None:
    p = parser(__doc__.splitlines()[0], homes=100_000, repeat=1)
    p.add_argument("--cycles", type=int, default=5, help="twin steps + control cycles")
    p.add_argument("--child", type=int, default=None, help=argparse_hidden())
    p.add_argument("--tmp", default=None, help=argparse_hidden())
    args = p.parse_args()
    if args.child is not None:
        child(args.child, args.cycles, args.seed, args.tmp)
        return
    print_header("Live service memory (Runtime + API app, no MQTT)")
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        for homes in (1, args.homes):
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(homes), "--cycles", str(args.cycles),
                 "--seed", str(args.seed), "--tmp", tmp],
                capture_output=True, text=True, check=True, timeout=600,
            ).stdout  # fmt: skip
            res[homes] = json.loads(out.strip().splitlines()[-1])
    base, full = res[1], res[args.homes]
    n = full["devices"] - base["devices"]
    per = (full["rss_mb"] - base["rss_mb"]) * 2**20 / n
    console.print(
        f"{args.homes:,} homes = {full['devices']:,} devices, online {full['online']:.0%} "
        f"after {args.cycles} cycles", highlight=False,
    )  # fmt: skip
    print_table(
        f"Service RSS (target ≤ {TARGET_B:,} B/device)",
        ["process", "devices", "RSS MiB", "FleetState.nbytes B/device", "B/device (Δ RSS)",
         "verdict"],
        [
            ("1-home fleet (baseline)", base["devices"], f"{base['rss_mb']:.1f}", "–", "–", ""),
            (f"{args.homes:,}-home fleet", f"{full['devices']:,}", f"{full['rss_mb']:.1f}",
             f"{full['state_nbytes'] / full['devices']:.0f}", f"{per:,.0f}",
             "[green]PASS[/]" if per <= TARGET_B else "[red]MISS[/]"),
        ],
    )  # fmt: skip


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
