"""``FleetState.apply`` of full-fleet telemetry batches: readings per second into the state.

    python benchmarks/bench_telemetry.py [--devices 1000000] [--repeat 10] [--profile]

Two paths are timed over the same readings (one twin step of every device, 18:05 local):

* **by id**: one batch of all readings in *shuffled* order and without ``rows``, as an
  ingest worker would build it from many gateways' messages: every id is looked up in the
  state's index (the general path);
* **contiguous rows**: the twin's own output, one batch per device kind, each a contiguous
  slice of the fleet with ``rows`` set (the fast path: no lookup).

Each repeat applies readings newer than the last (``ts`` advanced by one step), so no
reading is dropped as stale. This measures the in-memory apply only, not MQTT decoding
(the docs/architecture.md target ">= 100,000 readings/s through MQTT" also covers
transport and parsing).
"""

from __future__ import annotations

import cProfile
import pstats

import numpy as np

from _common import (
    build_live_fleet,
    measure,
    ms,
    parser,
    peak_rss_mb,
    print_header,
    print_table,
    verdict,
)
from gridflock.domain.messages import TelemetryBatch

TARGET_RATE = 100_000.0


def _concat(batches: list[TelemetryBatch], order: np.ndarray) -> TelemetryBatch:
    """All readings of ``batches`` as one batch in ``order``, without ``rows``."""
    n = sum(len(b) for b in batches)
    nan = np.full(n, np.nan)
    names = sorted({k for b in batches for k in b.extras})
    extras = {}
    for name in names:
        extras[name] = np.concatenate([b.extras.get(name, nan[: len(b)]) for b in batches])[order]
    return TelemetryBatch(
        np.concatenate([b.device_ids for b in batches])[order],
        np.concatenate([b.ts for b in batches])[order],
        np.concatenate([b.p_kw for b in batches])[order],
        np.concatenate([b.soc for b in batches])[order],
        np.concatenate([b.p_baseline_kw for b in batches])[order],
        extras,
    )


def _shift(batch: TelemetryBatch, dt: float) -> TelemetryBatch:
    return TelemetryBatch(
        batch.device_ids,
        batch.ts + dt,
        batch.p_kw,
        batch.soc,
        batch.p_baseline_kw,
        batch.extras,
        batch.rows,
    )


def main() -> None:
    p = parser(__doc__.splitlines()[0], devices=1_000_000, repeat=10)
    p.add_argument("--profile", action="store_true", help="cProfile both paths")
    args = p.parse_args()
    print_header("bench_telemetry: FleetState.apply")
    fleet = build_live_fleet(args.devices, args.seed, extra_steps=1)
    state, twin = fleet.state, fleet.twin
    twin.step()  # one more step's readings: the batches to apply, again and again
    twin_batches = twin.receive()
    n = sum(len(b) for b in twin_batches)
    valid = int(sum(np.isfinite(b.p_kw).sum() for b in twin_batches))
    order = np.random.default_rng(1).permutation(n)
    by_id = _concat(twin_batches, order)

    tick = [0.0]

    def make(batches: list[TelemetryBatch]):
        def run() -> None:
            tick[0] += 60.0
            for b in batches:
                state.apply(_shift(b, tick[0]))

        return run

    apply_by_id = make([by_id])
    apply_rows = make(twin_batches)
    t_id = measure(apply_by_id, args.repeat)
    t_rows = measure(apply_rows, args.repeat)

    # the cost of building the shifted batches (one float array add per batch) is inside the
    # timings above; it is small next to apply: measure it to show it
    t_shift = measure(lambda: [_shift(b, 1.0) for b in twin_batches], args.repeat)

    rows = []
    for name, t, k in (
        ("by id (1 shuffled batch, index lookup)", t_id, 1),
        ("contiguous rows (twin layout, 7 batches)", t_rows, len(twin_batches)),
    ):
        rate = n / t.median
        rows.append(
            [
                name,
                f"{k}",
                ms(t.median),
                ms(t.min),
                f"{rate / 1e6:,.1f} M",
                f"{n / t.min / 1e6:,.1f} M",
                f">= {TARGET_RATE / 1e3:.0f} k",
                verdict(rate, TARGET_RATE, lower_is_better=False),
            ]
        )
    print_table(
        f"{n:,} readings per apply ({valid:,} with power; the rest lost readings), "
        f"{args.repeat} repeats after 1 warm-up",
        [
            "path",
            "batches",
            "median ms",
            "min ms",
            "readings/s (median)",
            "readings/s (best)",
            "target*",
            "verdict",
        ],
        rows,
    )
    print(f"(batch ts shift included above: {ms(t_shift.median)} ms median)")
    print(
        "* the docs/architecture.md target is for telemetry *through MQTT*; "
        "this is the in-memory apply only"
    )
    print(f"peak RSS {peak_rss_mb():,.0f} MiB")

    if args.profile:
        for name, fn in (("by id", apply_by_id), ("rows", apply_rows)):
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(5):
                fn()
            prof.disable()
            print(f"--- profile: {name} (5 applies)")
            pstats.Stats(prof).sort_stats("tottime").print_stats(10)


if __name__ == "__main__":
    main()
