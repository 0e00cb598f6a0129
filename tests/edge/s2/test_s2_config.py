"""S2 device configuration: validation that names every problem at once."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from gridflock.edge.driver import DriverError
from gridflock.edge.s2 import S2DeviceConfig, build_s2_driver

RM = uuid.uuid4()


def test_defaults_and_endpoint() -> None:
    c = S2DeviceConfig(device_id="bat-1", resource_id=RM)
    assert c.protocol == "s2"
    assert c.kind == "battery"
    assert c.safe_mode == "rm_control"
    assert c.endpoint == ("127.0.0.1", 8765, "/s2")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("kind", "pv", "cannot be an S2 device"),
        ("kind", "toaster", "cannot be an S2 device"),
        ("resource_id", "not-a-uuid", "UUID"),
        ("listen_port", 70000, "less than or equal"),
        ("path", "no-slash", "pattern"),
        ("safe_mode", "explode", "rm_control"),
        ("protocol", "sunspec", "'s2'"),
        ("colour", "red", "Extra inputs"),
    ],
)
def test_bad_fields_say_what_is_wrong(field: str, value: object, message: str) -> None:
    base: dict[str, object] = {"device_id": "bat-1", "resource_id": str(RM)}
    with pytest.raises(ValidationError, match=message):
        S2DeviceConfig.model_validate({**base, field: value})


def test_every_clash_is_reported_at_once() -> None:
    other = uuid.uuid4()
    configs = [
        S2DeviceConfig(device_id="a", resource_id=RM, listen_port=9000),
        S2DeviceConfig(device_id="a", resource_id=other, listen_port=9000),
        S2DeviceConfig(device_id="b", resource_id=RM, listen_port=9000),
        S2DeviceConfig(device_id="c", resource_id=uuid.uuid4(), listen_port=9000, path="/x"),
    ]
    with pytest.raises(DriverError) as err:
        build_s2_driver(configs)
    text = str(err.value)
    assert "s2 device 1 (a): device_id already used by s2 device 0" in text
    assert f"s2 device 2 (b): resource_id {RM} already used" in text
    assert "s2 device 3 (c): 127.0.0.1:9000 already serves path '/s2'" in text
