"""The edge gateway's SunSpec driver: device polls per second and setpoint write latency.

    python benchmarks/bench_edge_poll.py [--devices 30] [--seconds 10]

One SunSpec Modbus TCP server (``gridflock.sim.sunspec_server``, the twin's physics) with
``--devices`` units (a third each PV inverters, batteries, meters) on 127.0.0.1, and one
``SunSpecDriver`` reading all of them, every device due on every round (as with 1 s poll
intervals under overload). Server and driver share this process and its event loop, so the
figures are a lower bound for a gateway talking to real devices over a LAN (where the
devices' own response time dominates). Reports device polls/s, the time of one round
over all devices, and the latency of a setpoint write (p50, p99).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import time

from gridflock.edge.config import SunSpecDevice
from gridflock.edge.sunspec import SunSpecDriver
from gridflock.sim.sunspec_server import BatteryUnit, MeterUnit, PvInverterUnit, SunSpecServer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def main(n: int, seconds: float) -> None:
    port = _free_port()
    units: dict[int, object] = {}
    kinds: dict[int, str] = {}
    for uid in range(1, n + 1):
        k = ("pv", "battery", "meter")[(uid - 1) % 3]
        kinds[uid] = k
        if k == "pv":
            units[uid] = PvInverterUnit(5.0)
        elif k == "battery":
            units[uid] = BatteryUnit(10.0, 5.0)
        else:
            units[uid] = MeterUnit([])
    server = SunSpecServer(units, port=port)  # type: ignore[arg-type]
    await server.start()
    devices = [
        SunSpecDevice(
            id=f"d{uid}", kind=k, protocol="sunspec", host="127.0.0.1", port=port, unit=uid
        )  # type: ignore[arg-type]
        for uid, k in kinds.items()
    ]
    drv = SunSpecDriver(devices)
    t0 = time.perf_counter()
    await drv.start()
    start_s = time.perf_counter() - t0
    rounds, readings, round_s = 0, 0, []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for d in drv._devs.values():
            d.next_due = 0.0
        t = time.perf_counter()
        got = await drv.read()
        round_s.append(time.perf_counter() - t)
        readings += len(got)
        rounds += 1
    total = sum(round_s)
    writes = []
    for i in range(200):
        dev = f"d{2 + 3 * (i % max(1, n // 3))}"  # batteries
        t = time.perf_counter()
        await drv.apply(dev, (i % 10) - 5.0, time.time() + 30)
        writes.append(time.perf_counter() - t)
    await drv.close()
    await server.stop()
    writes.sort()
    print(f"devices: {n} on one Modbus TCP server; discovery of all: {start_s:.2f} s")
    print(f"polls: {readings / total:,.0f} device reads/s ({rounds} rounds in {total:.1f} s)")
    print(f"one round over all {n} devices: median {statistics.median(round_s) * 1e3:.1f} ms")
    print(
        f"setpoint write: p50 {writes[len(writes) // 2] * 1e3:.1f} ms, "
        f"p99 {writes[int(len(writes) * 0.99) - 1] * 1e3:.1f} ms"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=10.0)
    a = ap.parse_args()
    asyncio.run(main(a.devices, a.seconds))
