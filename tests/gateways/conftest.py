"""Private Mosquitto brokers for the gateway tests, configured by ``write_broker_config``.

Each broker listens on a free loopback port with the files Gridflock generates (dynamic
security plugin: accounts, per-gateway ACLs); tests can stop and restart it. Mosquitto
must be installed: these tests fail rather than skip without it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gridflock.gateways.mqtt import GatewayCredential, hash_password, write_broker_config

MOSQUITTO = "/usr/sbin/mosquitto"
HOST = "127.0.0.1"
#: Passwords of the accounts every test broker has: gateways A (group north), B (south),
#: H (a hostile gateway, no group) and the service ``svc``.
SECRETS = {"A": "secret-of-A", "B": "secret-of-B", "H": "secret-of-H", "svc": "service-secret"}
GROUPS = {"A": ["north"], "B": ["south"], "H": []}


def free_port() -> int:
    """A TCP port nothing listens on now (on 127.0.0.1)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_until(cond: Callable[[], Any], timeout: float, what: str, every: float = 0.02) -> Any:
    """Poll ``cond`` until truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}", pytrace=False)
        time.sleep(every)


class PrivateBroker:
    """A Mosquitto on a free loopback port, with the generated configuration."""

    def __init__(self, workdir: Path, **config: Any) -> None:
        self.exe = shutil.which(MOSQUITTO) or pytest.fail(f"{MOSQUITTO} is not installed")
        self.port = free_port()
        self.workdir = workdir
        config.setdefault("persistence", False)
        config.setdefault("run_as_user", "root" if os.geteuid() == 0 else None)
        self.paths = write_broker_config(
            workdir / "broker",
            [GatewayCredential(g, hash_password(SECRETS[g]), GROUPS[g]) for g in GROUPS],
            "svc",
            hash_password(SECRETS["svc"]),
            port=self.port,
            **config,
        )
        self.log = workdir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [self.exe, "-c", str(self.paths.conf)], stdout=log, stderr=subprocess.STDOUT
            )
        proc = self.proc

        def listening() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"mosquitto exited: {self.log.read_text()[-2000:]}", pytrace=False)
            try:
                socket.create_connection((HOST, self.port), timeout=0.2).close()
            except OSError:
                return False
            return True

        wait_until(listening, 10, "mosquitto to listen")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop it (SIGTERM saves its persistence file; SIGKILL does not)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture
def make_broker(tmp_path: Path) -> Iterator[Callable[..., PrivateBroker]]:
    """Factory of started private brokers (``make_broker(persistence=True)``); all stopped after."""
    made: list[PrivateBroker] = []

    def make(**config: Any) -> PrivateBroker:
        b = PrivateBroker(tmp_path / f"b{len(made)}", **config)
        b.workdir.mkdir(parents=True, exist_ok=True)
        made.append(b)
        b.start()
        return b

    yield make
    for b in made:
        b.stop()


@pytest.fixture
def broker(make_broker: Callable[..., PrivateBroker]) -> int:
    """The port of a started private broker with gateways A, B, H and the service ``svc``."""
    return make_broker().port
