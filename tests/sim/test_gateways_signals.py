"""`gridflock sim gateways` stops gracefully on Ctrl-C and SIGTERM, whatever its parent did."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

GRIDFLOCK = str(Path(sys.executable).with_name("gridflock"))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stops_and_reports_offline_even_when_started_with_sigint_ignored(
    tmp_path: Path, sig: signal.Signals
) -> None:
    # a background job of a shell without job control starts with SIGINT ignored
    log = tmp_path / "sim.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                GRIDFLOCK,
                "sim",
                "gateways",
                "--mqtt",
                "mqtt://127.0.0.1:1883",
                "--homes",
                "5",
                "--step",
                "1s",
                "--ideal",
                "--connections",
                "1",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
            env={**os.environ, "COLUMNS": "200"},
        )
    try:
        deadline = time.monotonic() + 60
        while "Ctrl-C stops" not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.2)
        time.sleep(1.5)  # connected and publishing
        proc.send_signal(sig)
        assert proc.wait(timeout=20) == 0, log.read_text()
        assert "gateways reported offline" in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
