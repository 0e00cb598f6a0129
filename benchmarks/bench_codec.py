"""The MQTT v1 codec on its own (no broker): decode and encode rates, answer sizes.

    python benchmarks/bench_codec.py [--repeat 5]

* ``decode_telemetry`` of messages of 100 readings (target: >= 100,000 readings/s);
* ``decode_telemetry_many`` of 5,000 single-reading messages in one pass (the link's
  per-cycle path; target: >= 20,000 messages/s per process, with room for MQTT itself);
* ``encode_commands``: 100,000 commands to 25,000 gateways (part of the p99 < 1 s dispatch);
* the largest ``telemetry_ack`` a hostile message can draw (bounded by MAX_ACK_BYTES).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import numpy as np

from gridflock.domain.messages import CommandBatch
from gridflock.gateways.mqtt import (
    decode_telemetry,
    encode_commands,
    encode_telemetry,
    encode_telemetry_ack,
)
from gridflock.gateways.mqtt.codec import decode_telemetry_many
from gridflock.gateways.mqtt.protocol import MAX_ACK_BYTES

NOW = time.time()


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    """Fastest of ``repeat`` runs of ``fn`` [s] (after one warm-up run)."""
    fn()
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    ids = [f"dev-{i}" for i in range(100)]
    raw = encode_telemetry("gw-1", ids, np.full(100, NOW), np.linspace(-5, 5, 100))
    rounds = 200
    dt = best_of(
        args.repeat,
        lambda: [decode_telemetry("gf/v1/gw-1/telemetry", raw, NOW) for _ in range(rounds)],
    )
    print(
        f"decode_telemetry, batches of 100:       {rounds * 100 / dt:>12,.0f} readings/s "
        "(target 100,000)"
    )

    items = [
        (f"gf/v1/gw-{i}/telemetry", encode_telemetry(f"gw-{i}", [f"d-{i}"], [NOW], [1.0]))
        for i in range(5000)
    ]
    dt = best_of(args.repeat, lambda: decode_telemetry_many(items, NOW))
    print(f"decode_telemetry_many, single readings: {5000 / dt:>12,.0f} messages/s (target 20,000)")

    n, g = 100_000, 25_000
    batch = CommandBatch(
        np.array([f"c-{i}" for i in range(n)], dtype=object),
        np.array([f"dev-{i}" for i in range(n)], dtype=object),
        np.linspace(-3, 3, n),
        np.full(n, NOW + 30),
        np.arange(n),
        NOW,
        "ev",
    )
    gw = {f"dev-{i}": f"gw-{i % g}" for i in range(n)}
    dt = best_of(args.repeat, lambda: encode_commands(batch, gw))
    print(f"encode_commands, 100,000 to 25,000 gw:  {dt * 1000:>12,.0f} ms")

    m = 6_000  # the most 256-character ids that fit in MAX_GATEWAY_MESSAGE_BYTES
    hostile = encode_telemetry(
        "gw-h", [f"x{i:0255d}" for i in range(m)], np.full(m, NOW + 3600), np.ones(m)
    )
    d = decode_telemetry("gf/v1/gw-h/telemetry", hostile, NOW)
    ack = encode_telemetry_ack(d.received, d.rejected)
    print(
        f"telemetry_ack for {len(hostile):,} bytes, {m:,} bad readings: {len(ack):,} bytes "
        f"(limit {MAX_ACK_BYTES:,})"
    )


if __name__ == "__main__":
    main()
