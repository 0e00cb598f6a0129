"""Network parts the tests start on their own: a private Mosquitto and a cuttable TCP proxy.

Shared by the fault scenarios (``tests/faults``), the service's fault tests
(``tests/service``) and the edge tests. Everything listens and connects on 127.0.0.1
only; every process and thread is stopped by its own handle, and every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

HOST = "127.0.0.1"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    """A TCP port nothing listens on now (on 127.0.0.1)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    """Whether something accepts connections on ``port`` (on 127.0.0.1)."""
    try:
        socket.create_connection((HOST, port), timeout=0.5).close()
    except OSError:
        return False
    return True


def tail(path: Path, chars: int = 3000) -> str:
    """The end of a log file ('' if there is none yet)."""
    try:
        return path.read_text(errors="replace")[-chars:]
    except FileNotFoundError:
        return ""


class Broker:
    """A private Mosquitto on a free loopback port, stopped or killed by its own pid.

    ``accounts`` (gateway id → groups) with ``password`` gives the generated secured
    configuration (``write_broker_config``: one account per gateway and the service
    account ``service_user``, all with ``password``); without, an anonymous broker.
    ``persistence`` keeps sessions and retained messages across a graceful restart, as
    the generated configuration does in production.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        accounts: dict[str, list[str]] | None = None,
        password: str = "",
        service_user: str = "gridflock-service",
        persistence: bool = False,
    ) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"mqtt://{HOST}:{self.port}"
        self.log = workdir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None
        root = os.geteuid() == 0
        if accounts is None:
            self.conf = workdir / "mosquitto.conf"
            lines = [
                f"listener {self.port} {HOST}",
                "allow_anonymous true",
                f"persistence {'true' if persistence else 'false'}",
            ]
            if persistence:
                (workdir / "data").mkdir(exist_ok=True)
                lines.append(f"persistence_location {workdir / 'data'}/")
            if root:
                lines.append("user root")
            self.conf.write_text("\n".join(lines) + "\n")
        else:
            from gridflock.gateways.mqtt.acl import (
                GatewayCredential,
                hash_password,
                write_broker_config,
            )

            hashed = hash_password(password)
            creds = [GatewayCredential(g, hashed, groups) for g, groups in accounts.items()]
            paths = write_broker_config(
                workdir / "broker",
                creds,
                service_user,
                hashed,
                port=self.port,
                persistence=persistence,
                run_as_user="root" if root else None,
            )
            self.conf = paths.conf

    def start(self, timeout: float = 15.0) -> None:
        """Start it (again, on the same port) and wait until it listens; fail if it exits."""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
            if self.proc.poll() is not None:
                raise AssertionError(f"mosquitto exited: {tail(self.log)}")
            if time.monotonic() > deadline:
                raise AssertionError(f"mosquitto did not listen within {timeout:g} s")
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop it: SIGTERM saves its persistence, SIGKILL is a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: no goodbye to the clients."""
        self.stop(signal.SIGKILL)

    def connections_of(self, username: str) -> int:
        """How many times a client logged in as ``username`` connected (from the broker log)."""
        return len(re.findall(rf"\bu'{re.escape(username)}'", tail(self.log, 10**8)))


class CuttableProxy:
    """TCP proxy 127.0.0.1:<port> → a target, which a test can cut and restore.

    Cut: every open connection is closed and new ones are refused (nothing listens), as
    when the database host goes away.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._accepting: threading.Thread | None = None
        self.connections_made = 0

    def restore(self) -> None:
        """Listen (again) and pass connections through."""
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((HOST, self.port))
        ls.listen(64)
        self._listener = ls
        self._accepting = threading.Thread(target=self._accept, args=(ls,), daemon=True)
        self._accepting.start()

    def cut(self) -> None:
        """Close every connection and stop listening."""
        ls, self._listener = self._listener, None
        if ls is not None:
            with contextlib.suppress(OSError):
                ls.shutdown(socket.SHUT_RDWR)
            ls.close()
        if self._accepting is not None:
            self._accepting.join(5)
        with self._lock:
            conns, self._conns = self._conns, set()
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def _accept(self, ls: socket.socket) -> None:
        while True:
            try:
                client, _ = ls.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns |= {client, upstream}
                self.connections_made += 1
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._conns.discard(src)
                self._conns.discard(dst)
            src.close()
