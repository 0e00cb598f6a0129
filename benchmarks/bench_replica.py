"""API replicas: fleet summary through a replica, read-model lag, replica memory, bus restart.

Real parts: PostgreSQL at ``GRIDFLOCK_TEST_POSTGRES_URL`` (a throw-away schema), a private
``nats-server -js`` on a free port, ``gridflock serve`` (role all, the leader) and
``gridflock serve --role api`` (the replica) as subprocesses, a generated fleet of
``--homes`` homes (no device link: the figures are the API's and the bus's).

- throughput: ``GET /api/v1/fleet`` through the replica and through the leader, from
  ``--connections`` concurrent keep-alive clients (httpx, in this process) for
  ``--duration`` seconds each: requests per second, p50 and p99, and the server's CPU time
  per request (user + system of its process over the run: the figure that does not depend
  on what else the machine runs);
- lag: arrival at the replica minus the leader's ``sent_at``, one sample per cycle;
- memory: the replica's resident set (VmRSS) after the load;
- the leader's cost: building and encoding one document for ``--doc-homes`` fleets, in
  this process (best of 5), and its size;
- bus restart: the bus killed (SIGKILL) while a client writes an event through the
  replica every 0.2 s; restarted after ``--outage`` seconds. Figures: seconds from the
  restart to a fresh read model at the replica, writes answered 201 / 503, and writes
  lost (answered 201 but not on the leader; must be 0).

    python benchmarks/bench_replica.py [--homes 2000] [--connections 16] [--duration 10]
        [--outage 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from _common import console, print_header, print_table, use_test_helpers

use_test_helpers()  # the fault harnesses of tests/faults

from faults._bus import NatsServer
from faults._harness import PgSchema, Serve, fleet, provision, wait_until


async def load(base: str, key: str, connections: int, duration: float) -> dict[str, float]:
    """GET /api/v1/fleet from ``connections`` clients for ``duration`` s."""
    latencies: list[float] = []
    errors = 0
    stop = time.monotonic() + duration
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(
        base_url=base, headers={"X-API-Key": key}, timeout=10, limits=limits
    ) as client:

        async def worker() -> None:
            nonlocal errors
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                try:
                    r = await client.get("/api/v1/fleet")
                except httpx.HTTPError:  # a connection dropped under load: counted, go on
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    errors += 1

        t0 = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(connections)))
        took = time.monotonic() - t0
    latencies.sort()
    return {
        "rps": len(latencies) / took,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
        "errors": errors,
    }


def document_cost(homes: int) -> tuple[int, float, int]:
    """Devices, the leader's time to build and encode one document [ms, best of 5], bytes.

    In this process: a ``Runtime`` over ``homes`` generated homes (no devices online, so
    the figure is the document's own cost: summary, flexibility, events, health).
    """
    from gridflock.config import Settings
    from gridflock.service import Runtime
    from gridflock.service.bus import encode
    from gridflock.service.links import NoDevices
    from gridflock.service.replication import leader_document
    from gridflock.store import Store

    spec: Any = fleet(homes, seed=7)
    with tempfile.TemporaryDirectory() as d:
        url = f"sqlite:///{d}/doc.db"
        store = Store(url)
        store.upgrade()
        store.save_fleet(spec)
        rt = Runtime(Settings(database_url=url), store, spec, NoDevices())
        rt.control_cycle()
        best, size = float("inf"), 0
        for i in range(5):
            t0 = time.perf_counter()
            size = len(encode(leader_document(rt, i, "bench", rt.clock())))
            best = min(best, time.perf_counter() - t0)
        store.close()
    return spec.n_devices, 1000 * best, size


def rss_mb(serve: Serve) -> float:
    """Resident memory of the process [MB]."""
    assert serve.proc is not None
    for line in Path(f"/proc/{serve.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def post_event(replica: Serve) -> tuple[int, str | None]:
    """Create an event through the replica: (status, id); status 0 when no answer."""
    try:
        r = replica.post(
            "/events",
            {"target_kw": 1.0, "duration_s": 600, "scope": "fleet", "allow_partial": True},
            timeout=15,
        )
    except httpx.HTTPError:
        return 0, None
    return r.status_code, (r.json().get("id") if r.status_code == 201 else None)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--homes", type=int, default=2000)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--outage", type=float, default=3.0)
    p.add_argument(
        "--doc-homes", default="2000,30000", help="fleets for the document's cost (comma-separated)"
    )
    args = p.parse_args()
    print_header("API replicas over the bus (bench_replica.py)")
    root = Path(tempfile.mkdtemp(prefix="bench_replica_"))
    schema = PgSchema("gf_bench_replica")
    spec: Any = fleet(args.homes, seed=7)
    key = provision(schema, spec)
    bus = NatsServer(root / "nats")
    bus.start()
    common = {"database_url": schema.url, "bus_url": bus.url}
    for d in ("leader", "api"):
        (root / d).mkdir()
    leader = Serve(root / "leader", key, **common)
    replica = Serve(root / "api", key, role="api", **common)
    rows: list[tuple[str, str]] = []
    try:
        leader.start()
        replica.start()
        leader.wait_answering(180)
        replica.wait_answering(180)
        wait_until(lambda: replica.get("/fleet").status_code == 200, 60, "a read model")
        h = replica.health()
        rows.append(("devices", f"{spec.n_devices:,}"))
        rows.append(("read-model document on the bus", f"{h['read_model_bytes']:,} B (deflated)"))
        for name, target in (("replica", replica), ("leader", leader)):
            asyncio.run(load(target.base, key, args.connections, 2.0))  # warm-up
            cpu0 = target.cpu_s()
            res = asyncio.run(load(target.base, key, args.connections, args.duration))
            cpu_ms = 1000 * (target.cpu_s() - cpu0) / max(res["rps"] * args.duration, 1)
            rows.append(
                (
                    f"GET /fleet via {name} ({args.connections} clients)",
                    f"{res['rps']:,.0f} req/s, p50 {res['p50_ms']:.1f} ms, "
                    f"p99 {res['p99_ms']:.1f} ms, {res['errors']:.0f} errors; "
                    f"{cpu_ms:.2f} CPU ms/req (≈ {1000 / cpu_ms:,.0f} req/s per free core)",
                )
            )
        lags: list[float] = []
        for _ in range(20):
            lag = replica.health()["read_model_lag_s"]
            if lag is not None:
                lags.append(1000 * lag)
            time.sleep(1.0)
        lags.sort()
        rows.append(
            (
                "read-model lag (arrival − sent_at)",
                f"p50 {statistics.median(lags):.1f} ms, max {lags[-1]:.1f} ms "
                f"({len(lags)} samples)",
            )
        )
        rows.append(("replica memory (VmRSS)", f"{rss_mb(replica):,.0f} MB"))
        rows.append(("leader memory (VmRSS)", f"{rss_mb(leader):,.0f} MB"))
        # ---- bus restart under writes
        answers: list[tuple[int, str | None]] = []
        for _ in range(10):
            answers.append(post_event(replica))
            time.sleep(0.2)
        seq_at_kill = replica.json("/fleet")["seq"]
        bus.stop()  # SIGKILL
        killed_at = time.monotonic()
        while time.monotonic() - killed_at < args.outage:
            answers.append(post_event(replica))
            time.sleep(0.2)
        bus.start()
        restarted_at = time.monotonic()
        fresh_at = None
        while fresh_at is None and time.monotonic() - restarted_at < 60:
            r = replica.get("/fleet")
            if r.status_code == 200 and r.json()["seq"] > seq_at_kill:
                fresh_at = time.monotonic()
            answers.append(post_event(replica))
            time.sleep(0.2)
        for _ in range(10):
            answers.append(post_event(replica))
            time.sleep(0.2)
        assert fresh_at is not None, "no fresh read model within 60 s of the bus restart"
        ok = [a for a in answers if a[0] == 201]
        refused = [a for a in answers if a[0] == 503]
        on_leader = {e["id"] for e in leader.json("/events?limit=1000")["items"]}
        lost = [a for a in ok if a[1] not in on_leader]
        rows.append(
            (
                f"bus killed for {args.outage:g} s under writes (every 0.2 s)",
                f"{len(answers)} writes: {len(ok)} × 201, {len(refused)} × 503, "
                f"{len(answers) - len(ok) - len(refused)} other; lost {len(lost)}",
            )
        )
        rows.append(
            ("restart → fresh read model at the replica", f"{fresh_at - restarted_at:.2f} s")
        )
        for homes in (int(h) for h in args.doc_homes.split(",") if h):
            n, ms, size = document_cost(homes)
            rows.append(
                (f"leader: build + encode one document, {n:,} devices", f"{ms:.1f} ms, {size:,} B")
            )
        print_table("replica figures", ["figure", "value"], rows)
    finally:
        for s in (leader, replica):
            s.cleanup()
        bus.stop()
        schema.drop()
    console.print(f"logs in {root}")


if __name__ == "__main__":
    main()
