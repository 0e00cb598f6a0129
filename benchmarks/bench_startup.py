"""Start-up of the ``gridflock`` command: light commands, and ``serve`` until it answers.

Every ``gridflock`` process pays its imports before it does anything: the test suite starts
hundreds (CLI tests, simulated gateways, services in the fault tests), and a user waits on
``gridflock --help``. Each case runs ``--repeat`` times in a fresh interpreter; the figures
are the CPU time of the process (user + system, what a loaded machine does not inflate much)
and the wall time, minimum and median.

    python benchmarks/bench_startup.py [--repeat 5] [--pythonpath SRC]

``--pythonpath`` runs another tree's ``src`` (a checkout of an older commit) for a before and
after comparison on the same machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HOST = "127.0.0.1"


def _env(pythonpath: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return env


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_command(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """CPU and wall seconds of one ``gridflock`` command run to its end."""
    cpu0, t0 = _children_cpu(), time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "gridflock", *args],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return _children_cpu() - cpu0, time.perf_counter() - t0


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) a running process has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_serve(env: dict[str, str], workdir: Path, port: int) -> tuple[float, float]:
    """CPU and wall seconds from ``gridflock serve`` launched to its health endpoint answering."""
    db = f"sqlite:///{workdir / f'serve-{port}.db'}"
    subprocess.run(
        [sys.executable, "-m", "gridflock", "db", "upgrade", "--db", db],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gridflock", "serve", "--db", db, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"gridflock serve exited with {proc.returncode}")
            try:
                httpx.get(f"http://{HOST}:{port}/api/v1/health", timeout=1.0)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        else:
            raise SystemExit("gridflock serve did not answer within 300 s")
        return _proc_cpu(proc.pid), time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--pythonpath", default=None, help="the src folder to run (default: this)")
    args = ap.parse_args()
    env = _env(args.pythonpath)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cases = {
            "gridflock --help": lambda i: run_command(["--help"], env),
            "gridflock version": lambda i: run_command(["version"], env),
            "gridflock fleet generate --homes 50": lambda i: run_command(
                ["fleet", "generate", "--homes", "50", "--out", str(work / f"f{i}.yaml")], env
            ),
            "gridflock db upgrade (SQLite)": lambda i: run_command(
                ["db", "upgrade", "--db", f"sqlite:///{work / f'u{i}.db'}"], env
            ),
            "gridflock serve, until /health answers": lambda i: run_serve(env, work, 18600 + i),
        }
        print(f"load average at start: {os.getloadavg()[0]:.1f}; {args.repeat} runs each")
        print(f"{'case':42} {'CPU min':>8} {'CPU med':>8} {'wall min':>9} {'wall med':>9}")
        for name, case in cases.items():
            runs = [case(i) for i in range(args.repeat)]
            cpu = [c for c, _ in runs]
            wall = [w for _, w in runs]
            print(
                f"{name:42} {min(cpu):7.2f}s {statistics.median(cpu):7.2f}s "
                f"{min(wall):8.2f}s {statistics.median(wall):8.2f}s",
                flush=True,
            )
        print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
