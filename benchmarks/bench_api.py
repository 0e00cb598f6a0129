"""Fleet summary API throughput: ``gridflock serve`` under ``wrk`` on GET /api/v1/fleet.

Target (docs/architecture.md): ≥ 2,000 req/s, p99 < 50 ms.

Setup: a SQLite database in a temporary directory, ``gridflock db upgrade``, the fleet
(``generate_fleet``, ≥ ``--devices`` devices) saved with ``Store.save_fleet``, a viewer key
from ``gridflock apikey create --role viewer``; then ``gridflock serve`` (no MQTT:
``GRIDFLOCK_MQTT_URL`` unset, so the devices are offline, but the control loop still
recomputes the summary every 2 s) on a free port of 127.0.0.1. ``wrk`` (C, 1 thread)
sends the requests for a fixed ``--duration`` per connection count. Client and server
share the machine's 2 cores. The server is stopped (SIGINT, by its pid) at the end.

    python benchmarks/bench_api.py [--devices 100000] [--connections 10,50] [--duration 10]
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _broker import free_port
from _common import console, homes_for, parser, print_header, print_table
from gridflock.fleet.generate import generate_fleet
from gridflock.store import Store

TARGET_RPS = 2_000
TARGET_P99_MS = 50.0
GRIDFLOCK = str(Path(sys.executable).with_name("gridflock"))


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not m:
        return float("nan")
    return float(m[1]) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m[2]]


def wrk(url: str, key: str, connections: int, duration: float) -> dict[str, float]:
    cmd = [
        "wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency", "--timeout", "5s",
        "-H", f"Authorization: Bearer {key}", url,
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30).stdout
    res = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])}
    for pct in ("50", "90", "99"):
        res[f"p{pct}"] = _ms(re.search(rf"\s{pct}%\s+(\S+)", out)[1])
    res["requests"] = float(re.search(r"(\d+) requests in", out)[1])
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["errors"] = float(non2xx[1]) if non2xx else 0.0
    return res


def main() -> None:
    p = parser(__doc__.splitlines()[0], devices=100_000, repeat=1)
    p.add_argument("--connections", default="10,50", help="wrk connections (comma-separated)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    args = p.parse_args()
    print_header("Fleet summary API: GET /api/v1/fleet")
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install -y wrk")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{Path(tmp) / 'api.db'}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDFLOCK_")}
        env |= {"GRIDFLOCK_DATABASE_URL": db, "GRIDFLOCK_LOG_LEVEL": "warning"}
        subprocess.run([GRIDFLOCK, "db", "upgrade"], env=env, check=True, capture_output=True)
        spec = generate_fleet(homes_for(args.devices), args.seed)
        store = Store(db)
        store.save_fleet(spec)
        store.close()
        key = subprocess.run(
            [GRIDFLOCK, "apikey", "create", "--role", "viewer", "--name", "bench"],
            env=env, check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        port = free_port()
        server = subprocess.Popen(
            [GRIDFLOCK, "serve", "--port", str(port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}/api/v1/fleet"
        try:
            t0 = time.monotonic()
            while True:
                try:
                    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
                    with urllib.request.urlopen(req, timeout=2) as r:
                        size = len(r.read())
                    break
                except OSError as e:
                    if server.poll() is not None or time.monotonic() - t0 > 60:
                        msg = f"server did not start: {server.stderr.read()!r}"
                        raise RuntimeError(msg) from e
                    time.sleep(0.2)
            console.print(
                f"fleet: {spec.n_devices:,} devices; `gridflock serve` up in "
                f"{time.monotonic() - t0:.1f} s; response {size:,} B; wrk -t1, "
                f"{args.duration:g} s per run; client and server share 2 cores",
                highlight=False,
            )
            wrk(url, key, 10, 2.0)  # warm-up
            for c in (int(x) for x in args.connections.split(",")):
                res = wrk(url, key, c, args.duration)
                ok = res["rps"] >= TARGET_RPS and res["p99"] < TARGET_P99_MS and not res["errors"]
                rows.append(
                    (
                        c,
                        f"{res['requests']:,.0f}",
                        f"{res['errors']:,.0f}",
                        f"{res['rps']:,.0f}",
                        f"{res['p50']:.2f}",
                        f"{res['p90']:.2f}",
                        f"{res['p99']:.2f}",
                        "[green]PASS[/]" if ok else "[red]MISS[/]",
                    )
                )
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
    print_table(
        f"GET /api/v1/fleet under wrk (target ≥ {TARGET_RPS:,} req/s, p99 < {TARGET_P99_MS:g} ms)",
        ["connections", "requests", "non-2xx", "req/s", "p50 ms", "p90 ms", "p99 ms", "verdict"],
        rows,
    )


if __name__ == "__main__":
    main()
