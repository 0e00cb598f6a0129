"""The edge configuration file: every problem reported at once, with its place."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridflock.domain import ValidationError
from gridflock.edge.config import SunSpecDevice, load_config, parse_config, protocols

GOOD = """
gateway:
  id: gw-site-7
  broker: mqtts://broker.example.org:8883
  password_file: secret.txt
  tls_ca: ca.crt
buffer:
  max_readings_per_device: 1000
failsafe:
  silence_s: 60
devices:
  - id: site7-pv
    kind: pv
    protocol: sunspec
    host: 192.168.1.20
    unit: 1
    models: [103, 123]
    poll_interval_s: 2
  - id: site7-bat
    kind: battery
    protocol: sunspec
    host: 192.168.1.21
    port: 1502
    unit: 3
    safe_mode: zero
"""


def test_a_good_file_loads(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("s3cret\n")
    p = tmp_path / "edge.yaml"
    p.write_text(GOOD.replace("secret.txt", str(tmp_path / "secret.txt")))
    cfg = load_config(p)
    assert cfg.gateway.id == "gw-site-7"
    assert cfg.gateway.secret() == "s3cret"
    assert cfg.buffer.max_readings_per_device == 1000
    pv, bat = cfg.devices
    assert isinstance(pv, SunSpecDevice)
    assert (pv.port, pv.unit, pv.poll_interval_s, pv.safe_mode) == (502, 1, 2.0, "own_control")
    assert isinstance(bat, SunSpecDevice)
    assert (bat.port, bat.safe_mode) == (1502, "zero")
    assert [d.id for d in cfg.devices_of("sunspec")] == ["site7-pv", "site7-bat"]
    assert "sunspec" in protocols()


def test_every_problem_is_reported_with_its_place(tmp_path: Path) -> None:
    raw = {
        "gateway": {"id": "bad id!", "broker": "http://x", "colour": "red"},
        "failsafe": {"silence_s": -1},
        "devices": [
            {"id": "pv", "kind": "pv", "protocol": "sunspec", "host": "h", "port": 70000},
            {"id": "pv", "kind": "pv", "protocol": "sunspec", "host": "h2", "poll_interval_s": 0.1},
            {"id": "bat", "kind": "fridge", "protocol": "sunspec", "host": "h", "models": [999]},
            {"id": "s2-thing", "kind": "battery", "protocol": "s3"},
            {"id": "m", "kind": "meter", "protocol": "sunspec", "host": "h3", "safe_mode": "zero"},
            {"id": "m2", "kind": "meter", "protocol": "sunspec", "host": "h3"},
            "not a mapping",
        ],
    }
    with pytest.raises(ValidationError) as e:
        parse_config(raw, "edge.yaml")
    text = [str(p) for p in e.value.problems]
    joined = "\n".join(text)
    assert "edge.yaml: gateway: id:" in joined
    assert "edge.yaml: gateway: broker: use mqtt://host:port" in joined
    assert "edge.yaml: gateway: colour: unknown key" in joined
    assert "edge.yaml: failsafe: silence_s:" in joined
    assert "edge.yaml: device pv: port:" in joined
    assert "edge.yaml: device pv: poll_interval_s:" in joined
    assert "edge.yaml: device pv: id: device id used twice" in joined
    assert "edge.yaml: device bat: kind:" in joined
    assert "unsupported SunSpec model(s) [999]" in joined
    assert "edge.yaml: device s2-thing: protocol:" in joined
    assert "edge.yaml: device m: safe_mode: a meter takes no setpoints" in joined
    assert "edge.yaml: device m2: unit: h3:502 unit 1 is also device m" in joined
    assert "edge.yaml: devices[6]" in joined
    assert len(text) >= 13


def test_file_errors_say_where(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="file not found"):
        load_config(tmp_path / "missing.yaml")
    p = tmp_path / "broken.yaml"
    p.write_text("gateway: {id: [\n")
    with pytest.raises(ValidationError, match=r"line \d+: YAML syntax error"):
        load_config(p)
    p.write_text("- just\n- a list\n")
    with pytest.raises(ValidationError, match="must be a mapping"):
        load_config(p)
    p.write_text("gateway: {id: g, broker: 'mqtt://g:pw@h'}\ndevices: [{}]\n")
    with pytest.raises(ValidationError) as e:
        load_config(p)
    assert "no credentials in the URL" in str(e.value)
    assert "pw" not in str(e.value).replace("password", "")
    p.write_text("gateway: {id: g, broker: 'mqtt://h'}\ndevices: []\n")
    with pytest.raises(ValidationError, match="at least one device"):
        load_config(p)
