"""OCPP back end at scale: N simulated chargers against one CSMS process.

Setup (127.0.0.1, plain ws:// with Basic auth, i.e. security profile 1, so the figure is
the CSMS's own work; TLS adds the handshake and symmetric encryption):

- this process runs the CSMS: :class:`OcppLink` with its websocket server, and every
  ``--cycle`` seconds what the control loop does with it (``receive()`` and
  ``take_report()``);
- ``--procs`` child processes (multiprocessing, spawn) run ``--chargers`` simulated charge points
  (:mod:`gridflock.sim.ocpp`, the ``ocpp`` library's client classes), half OCPP 1.6J and
  half 2.0.1, connecting over ``--stagger`` seconds, each sending a meter value every
  ``--interval`` seconds (1.6: MeterValues; 2.0.1: TransactionEvent Updated);
- steady state: for ``--steady`` seconds the CSMS's messages/s (meter values taken), its
  CPU time (``time.process_time``: all threads of this process) and resident memory;
- event response: one command to every charger (-5 kW: a TxProfile of 7.2 A) sent at
  once through ``OcppLink.send``; per charger, the time from the send to the first reading
  at the CSMS with the new power (the charger reports at once when its power changes), and
  the time to all acknowledgements (after SetChargingProfile and GetCompositeSchedule).

    python benchmarks/bench_ocpp.py [--chargers 1000] [--interval 10] [--steady 60]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import resource
import time

import numpy as np

from gridflock.domain import FleetSpec, build_spec
from gridflock.domain.messages import CommandBatch
from gridflock.gateways.mqtt import hash_password
from gridflock.gateways.ocpp import MemoryCredentials, OcppLink, OcppSettings

PASSWORD = "bench-password-0123456789"


def fleet(n: int) -> FleetSpec:
    """``n`` homes, each an 11 kW 3-phase charger behind charge point ``CP{i}``."""
    nodes = [{"id": "f", "kind": "feeder", "limit_import_kw": 1e9, "limit_export_kw": 1e9}]
    sites = [
        {
            "id": f"s{i}",
            "lat": 48.1,
            "lon": 11.5,
            "tz": "Europe/Berlin",
            "grid_node": "f",
            "import_limit_kw": 40,
            "export_limit_kw": 40,
        }
        for i in range(n)
    ]
    devices = [
        {
            "id": f"ev{i}",
            "site_id": f"s{i}",
            "kind": "ev_charger",
            "p_max_kw": 11,
            "phases": 3,
            "gateway_id": f"CP{i}",
            "protocol": "ocpp",
        }
        for i in range(n)
    ]
    return build_spec(nodes, sites, devices, "bench")


def chargers_main(url: str, ids: list[int], interval: float, stagger: float) -> None:
    """Child process: charge points ``CP{i}`` for ``i`` in ``ids``, until killed."""
    from gridflock.sim.ocpp import ChargerSpec, run_charge_points

    specs = [
        ChargerSpec(f"CP{i}", PASSWORD, version=("ocpp1.6", "ocpp2.0.1")[i % 2], soc=0.2)
        for i in ids
    ]

    async def main() -> None:
        await run_charge_points(specs, url, interval_s=interval, stagger_s=stagger)
        await asyncio.Event().wait()

    asyncio.run(main())


def _pct(lat_ms: np.ndarray, n: int, q: float) -> str:
    """The q-th percentile over all ``n`` chargers (those that never changed: above the wait)."""
    k = int(np.ceil(q / 100 * n)) - 1
    return f"{lat_ms[k]:.0f} ms" if k < len(lat_ms) else "> the wait"


def rss_mb() -> float:
    """Resident memory of this process now [MB]."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def run(args: argparse.Namespace) -> None:
    n = args.chargers
    spec = fleet(n)
    stored = hash_password(PASSWORD)
    creds = MemoryCredentials({f"CP{i}": stored for i in range(n)})
    rss0 = rss_mb()
    link = OcppLink(
        spec,
        creds,
        OcppSettings(
            allow_insecure=True,
            response_timeout_s=30.0,
            heartbeat_s=3600,
            verify_composite=not args.no_verify,
        ),
    )
    server = asyncio.create_task(link.run())
    while not link.connected:
        await asyncio.sleep(0.01)
    children = [
        mp.get_context("spawn").Process(
            target=chargers_main,
            args=(link.url, list(range(k, n, args.procs)), args.interval, args.stagger),
            daemon=True,
        )
        for k in range(args.procs)
    ]
    for child in children:
        child.start()
    latest: dict[str, float] = {}

    def cycle() -> int:
        got = 0
        for b in link.receive():
            got += len(b)
            latest.update(zip(b.device_ids.tolist(), b.p_kw.tolist(), strict=True))
        link.take_report()
        return got

    try:
        t_conn = time.monotonic()
        while len(link.sessions) < n or len(latest) < n:
            cycle()
            await asyncio.sleep(args.cycle)
            if time.monotonic() - t_conn > args.stagger + 120:
                raise SystemExit(f"only {len(link.sessions)}/{n} chargers connected")
        print(f"{n} chargers connected and reporting after {time.monotonic() - t_conn:.1f} s")

        ids = [f"ev{i}" for i in range(n)]
        now = time.time()
        batch = CommandBatch(
            np.array([f"c-{d}" for d in ids], dtype=object),
            np.array(ids, dtype=object),
            np.full(n, -5.0),
            np.full(n, now + 300),
            np.ones(n, dtype=np.int64),
            now,
            "bench",
        )
        target = -round(5000 / 690, 1) * 690 / 1000
        changed: dict[str, float] = {}
        at_charger: dict[str, float] = {}
        acks = 0
        c1 = time.process_time()
        t0, wall0 = time.monotonic(), time.time()
        link.send(batch)
        t_send = time.monotonic() - t0
        t_acks = float("nan")
        while (len(changed) < n or acks < n) and time.monotonic() - t0 < args.event_wait:
            now_m = time.monotonic()
            for b in link.receive():
                rows = zip(b.device_ids.tolist(), b.p_kw.tolist(), b.ts.tolist(), strict=True)
                for d, p, ts in rows:
                    if d not in changed and abs(p - target) < 0.05:
                        changed[d] = now_m - t0
                        at_charger[d] = ts - wall0  # the charger's report, sent as it changed
            rep = link.take_report()
            acks += sum(a.status == "accepted" for a in rep.acks)
            if acks >= n and t_acks != t_acks:  # NaN: not yet
                t_acks = now_m - t0
            await asyncio.sleep(0.005)
        lat = np.array(sorted(changed.values()) or [float("nan")]) * 1000
        lat_cp = np.array(sorted(at_charger.values()) or [float("nan")]) * 1000
        # chargers not changed within --event-wait count as slower than it (p99 "> wait")
        print(
            f"event to {n} chargers: send() {1000 * t_send:.0f} ms; power changed at the CSMS "
            f"for {len(changed)}/{n} within {args.event_wait:g} s: "
            f"p50 {_pct(lat, n, 50)}, p99 {_pct(lat, n, 99)}, max {np.nanmax(lat):.0f} ms "
            f"(stamped by the charger: p50 {_pct(lat_cp, n, 50)}, p99 {_pct(lat_cp, n, 99)}); "
            f"{acks}/{n} accepted (all acks {1000 * t_acks:.0f} ms); "
            f"CSMS CPU for the event {time.process_time() - c1:.2f} s"
        )
        c0, w0, m0 = time.process_time(), time.monotonic(), link.counts["messages"]
        readings = 0
        while time.monotonic() - w0 < args.steady:
            readings += cycle()
            await asyncio.sleep(args.cycle)
        wall, cpu = time.monotonic() - w0, time.process_time() - c0
        msgs = link.counts["messages"] - m0
        rss = rss_mb()
        print(
            f"steady {wall:.0f} s: {msgs / wall:,.1f} meter-value messages/s "
            f"({readings / wall:,.1f} readings/s), CSMS CPU {100 * cpu / wall:.1f} % of one "
            f"core ({1e3 * cpu / max(msgs, 1):.2f} ms CPU per message), "
            f"RSS {rss:.0f} MB ({rss - rss0:+.0f} MB since before the server, "
            f"{1024 * (rss - rss0) / n:.0f} KB per charger), "
            f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
        )

    finally:
        for child in children:
            child.kill()
            child.join(10)
        link.stop()
        await server


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chargers", type=int, default=1000)
    ap.add_argument("--interval", type=float, default=10.0, help="meter value interval [s]")
    ap.add_argument("--stagger", type=float, default=10.0, help="connect over this long [s]")
    ap.add_argument("--steady", type=float, default=60.0, help="steady-state window [s]")
    ap.add_argument("--cycle", type=float, default=0.5, help="control cycle [s]")
    ap.add_argument("--procs", type=int, default=2, help="processes the chargers run in")
    ap.add_argument(
        "--no-verify", action="store_true", help="no GetCompositeSchedule after a profile"
    )
    ap.add_argument("--event-wait", type=float, default=45.0, help="event response window [s]")
    args = ap.parse_args()
    print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {args.chargers} "
        f"chargers in {args.procs} process(es), meter values every {args.interval} s"
    )
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
