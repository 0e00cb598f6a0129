"""``gridflock edge check`` and ``gridflock edge discover`` (against the twin's Modbus server)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gridflock.cli import app
from gridflock.sim.sunspec_server import BatteryUnit, MeterUnit, PvInverterUnit

from ._site import HOST, free_port, server_in_thread

runner = CliRunner()


@pytest.fixture
def modbus() -> Iterator[int]:
    """A SunSpec server (units 1-3) on a free port, in its own thread and event loop."""
    pv = PvInverterUnit(5.0)
    bat = BatteryUnit(10.0, 5.0)
    with server_in_thread({1: pv, 2: bat, 3: MeterUnit([pv, bat])}) as port:
        yield port


def test_discover_json_and_table(modbus: int) -> None:
    r = runner.invoke(
        app, ["edge", "discover", "--host", HOST, "--port", str(modbus), "--units", "1-4", "--json"]
    )
    assert r.exit_code == 0, r.output
    found = json.loads(r.stdout)
    assert [u["unit"] for u in found if u["found"]] == [1, 2, 3]
    assert found[1]["models"] == [1, 120, 103, 124, 802]
    assert found[3]["error"] == "no SunSpec map at 40000, 0 or 50000"
    r = runner.invoke(
        app, ["edge", "discover", "--host", HOST, "--port", str(modbus), "--units", "2,4"]
    )
    assert r.exit_code == 0, r.output
    assert "Battery twin" in r.stdout
    assert "no SunSpec device on unit(s) 4" in r.stdout


def test_discover_says_what_is_wrong() -> None:
    r = runner.invoke(
        app, ["edge", "discover", "--host", HOST, "--port", str(free_port()), "--units", "1-2"]
    )
    assert r.exit_code == 1
    assert "no SunSpec device at" in r.stderr
    assert "check the address" in r.stderr
    r = runner.invoke(app, ["edge", "discover", "--host", HOST, "--units", "9-3"])
    assert r.exit_code == 2
    assert "unit ids are 1-247" in r.stderr


def test_check(tmp_path: Path) -> None:
    good = tmp_path / "edge.yaml"
    good.write_text(
        "gateway: {id: gw-1, broker: 'mqtt://127.0.0.1:1883'}\n"
        "devices:\n"
        "  - {id: pv-1, kind: pv, protocol: sunspec, host: 10.0.0.5, unit: 2}\n"
    )
    r = runner.invoke(app, ["edge", "check", str(good)])
    assert r.exit_code == 0, r.output
    assert "OK: 1 device(s)" in r.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "gateway: {id: gw-1, broker: 'mqtt://127.0.0.1:1883'}\n"
        "devices:\n"
        "  - {id: pv-1, kind: pv, protocol: sunspec, host: 10.0.0.5, unit: 300}\n"
        "  - {id: pv-2, kind: pv, protocol: modbus-rtu}\n"
    )
    r = runner.invoke(app, ["edge", "check", str(bad)])
    assert r.exit_code == 2
    text = " ".join(r.stderr.split())  # without the console's line breaks
    assert "2 problem(s) found" in text
    assert "device pv-1: unit:" in text
    assert "device pv-2: protocol: unknown protocol 'modbus-rtu'" in text
