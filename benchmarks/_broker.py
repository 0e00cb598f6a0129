"""A private Mosquitto broker for the MQTT benchmarks (127.0.0.1 only, no persistence).

The shared broker on 127.0.0.1:1883 is used by other processes (simulated gateways and
services with the same shared-subscription group ``gridflock``): a benchmark there would
have its telemetry split with foreign services and would answer foreign gateways. So the
MQTT benchmarks start their own ``mosquitto`` with the **default limits** (no
``max_queued_messages`` / ``max_inflight_messages`` overrides) on a free port and stop it
(by its pid) when done. ``--broker host:port`` uses an existing broker instead.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def private_broker(existing: str | None = None, extra: str = "") -> Iterator[tuple[str, int]]:
    """``(host, port)`` of a broker: ``existing`` ("host:port") or a fresh local one.

    ``extra``: more config lines for the fresh one, separated by ``;``.
    """
    if existing:
        host, port = existing.rsplit(":", 1)
        yield host, int(port)
        return
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n"
            + extra.replace(";", "\n")
            + "\n",
            encoding="utf-8",
        )
        proc = subprocess.Popen(
            [exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", port), 0.2),
                ):
                    break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"private mosquitto did not start (rc {proc.poll()})")
                time.sleep(0.05)
            yield "127.0.0.1", port
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()


# ---------------------------------------------------------------- raw MQTT 3.1.1 packets
# The load generators speak MQTT over plain sockets so they stay light on the shared cores.
def varint(n: int) -> bytes:
    """MQTT remaining-length encoding."""
    out = bytearray()
    while True:
        b, n = n % 128, n // 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def utf8(s: str) -> bytes:
    """MQTT length-prefixed UTF-8 string."""
    b = s.encode()
    return struct.pack("!H", len(b)) + b


def connect_packet(client_id: str) -> bytes:
    """CONNECT, MQTT 3.1.1, clean session, no keep-alive."""
    body = utf8("MQTT") + bytes([4, 0x02]) + struct.pack("!H", 0) + utf8(client_id)
    return b"\x10" + varint(len(body)) + body
