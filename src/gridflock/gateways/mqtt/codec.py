"""Encode and decode the MQTT protocol v1 payloads (the public face of the codec).

``decode_telemetry`` is the hot path of the service (≥ 100,000 readings/s on one core for
batches of about 100): it parses with ``json.loads`` and checks column by column, without
a model per reading. ``encode_commands`` splits one command batch into one payload per
gateway with NumPy grouping. The rest handles small messages through the models of
``protocol``.
"""

from __future__ import annotations

from gridflock.gateways.mqtt._control import (
    EpochFence,
    decode_ack,
    decode_activate,
    decode_commands,
    decode_status,
    encode_activate,
    encode_command_ack,
    encode_commands,
    encode_status,
    encode_telemetry_ack,
    screen_commands,
)
from gridflock.gateways.mqtt._errors import ProtocolError, Rejection
from gridflock.gateways.mqtt._schedules import (
    decode_cmd,
    decode_schedules,
    encode_schedules,
    screen_schedules,
)
from gridflock.gateways.mqtt._settings import (
    DecodedSettings,
    SettingsSeen,
    decode_settings,
    encode_settings,
    encode_settings_ack,
    screen_settings,
    settings_item,
)
from gridflock.gateways.mqtt._telemetry import (
    REJECT_REASONS,
    DecodedTelemetry,
    DecodedTelemetryMany,
    decode_telemetry,
    decode_telemetry_many,
    encode_telemetry,
)
from gridflock.gateways.mqtt.protocol import Command, CommandAck, CommandAcks, TelemetryAck

__all__ = [
    "REJECT_REASONS",
    "Command",
    "CommandAck",
    "CommandAcks",
    "DecodedSettings",
    "DecodedTelemetry",
    "DecodedTelemetryMany",
    "EpochFence",
    "ProtocolError",
    "Rejection",
    "SettingsSeen",
    "TelemetryAck",
    "decode_ack",
    "decode_activate",
    "decode_cmd",
    "decode_commands",
    "decode_schedules",
    "decode_settings",
    "decode_status",
    "decode_telemetry",
    "decode_telemetry_many",
    "encode_activate",
    "encode_command_ack",
    "encode_commands",
    "encode_schedules",
    "encode_settings",
    "encode_settings_ack",
    "encode_status",
    "encode_telemetry",
    "encode_telemetry_ack",
    "screen_commands",
    "screen_schedules",
    "screen_settings",
    "settings_item",
]
