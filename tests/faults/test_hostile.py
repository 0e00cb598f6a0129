"""A hostile gateway next to well-behaved ones, on the broker configuration Gridflock writes.

Real parts only: PostgreSQL, a private Mosquitto with the generated accounts and ACLs,
``gridflock serve`` and ``gridflock sim gateways`` (one connection per gateway, each
logged in as itself) as subprocesses; the hostile gateway is a plain MQTT client with
a valid account of its own.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ._hostile import hostile_gateway

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_a_hostile_gateway_leaves_the_others_data_intact(tmp_path: Path) -> None:
    """Share-group hijack, forged acks, an oversize message, a future-stamped reading and a
    flood above the rate limit, from one gateway with a valid account.

    Lost: nothing of the well-behaved gateways. Every reading they published is stored;
    no command record of theirs changes; the broker refuses the hijacking subscription,
    so no telemetry of theirs reaches the hostile gateway or is withheld from the
    service. The service stays connected throughout (it connects once); the oversize
    message and the flood beyond the gateway's rate limit are refused with reasons (the
    count a limit, not a speed: what the limit allows over the time the flood took to
    arrive is all that may pass); a future-stamped reading does not
    freeze the device: the present reading after it is applied. Recovery: none needed.
    """
    f = hostile_gateway(tmp_path)
    assert not f.hijack_granted, f
    assert f.telemetry_seen_by_hostile == 0, f
    assert f.good_published > 0, f
    assert f.good_lost == 0, f
    assert f.forged_acks > 0, f
    assert f.good_commands_changed == 0, f
    assert f.oversize_bytes > 3_000_000, f
    assert f.rejected["too_large"] >= 1, f
    assert not f.future_reading_froze_device, f
    assert f.flood_sent - f.rate_limited <= f.flood_allowed, f  # refused beyond the limit
    assert f.service_connections == 1, f
    assert f.mqtt_at_end == "connected", f
