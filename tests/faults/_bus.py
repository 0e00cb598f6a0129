"""A private NATS server (JetStream on) on a free loopback port, killed and restarted by pid.

Shared by the replica tests and ``benchmarks/bench_replica.py``; nothing here needs pytest.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

from tests._net import HOST, free_port, port_open, tail

from ._harness import ScenarioError, wait_until

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


class NatsServer:
    """``nats-server -js`` on its own port and store folder (restarts keep both)."""

    def __init__(self, workdir: Path) -> None:
        if not Path(NATS_SERVER).exists():
            raise ScenarioError(f"nats-server is not installed (looked for {NATS_SERVER})")
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"nats://{HOST}:{self.port}"
        self.log = workdir / "nats.log"
        self.store = workdir / "jetstream"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it (again, on the same port and store) and wait until it listens."""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [NATS_SERVER, "-a", HOST, "-p", str(self.port), "-js", "-sd", str(self.store)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        proc = self.proc

        def listening() -> bool:
            if proc.poll() is not None:
                raise ScenarioError(f"nats-server exited: {tail(self.log)}")
            return port_open(self.port)

        wait_until(listening, 15, "nats-server to listen", every=0.05)

    def stop(self, sig: int = signal.SIGKILL) -> None:
        """Stop it (SIGKILL by default: a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
