"""The device protocol over MQTT, version 1: topics, limits and the message models.

The pydantic models here are the reference definition of every payload: they document it,
export the JSON Schemas in ``docs/schemas/`` and validate the small, rare messages
(commands on a gateway, acknowledgements, status). The hot telemetry path does not go
through them: ``codec.decode_telemetry`` applies the same rules column by column.

Times are UTC seconds since the Unix epoch (float); power in kW with the generator sign
convention (``p_kw > 0`` delivered to the grid, ``p_kw < 0`` taken from it).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, create_model, model_validator

from gridflock.domain.kinds import telemetry_extras_text
from gridflock.domain.schedules import (
    MAX_SCHEDULE_STEPS,
    MAX_STEP_S,
    MIN_STEP_S,
    SCHEDULE_REJECT_REASONS,
)

__all__ = [
    "COMMAND_REJECT_REASONS",
    "EXTRAS_KEYS",
    "ID_PATTERN",
    "MAX_ACK_BYTES",
    "MAX_ACK_REJECTIONS",
    "MAX_CLOCK_SKEW_S",
    "MAX_COMMANDS",
    "MAX_GATEWAY_MESSAGE_BYTES",
    "MAX_ID_LEN",
    "MAX_PAYLOAD_BYTES",
    "MAX_P_KW",
    "MAX_READINGS",
    "MAX_READING_AGE_S",
    "MAX_SCHEDULES",
    "MAX_SCHEDULE_SLOTS_PER_MESSAGE",
    "MAX_SCHEDULE_STEPS",
    "MAX_SETTINGS",
    "SCHEDULE_REJECT_REASONS",
    "SCHEMA_MODELS",
    "SETTINGS_ACK_STATUSES",
    "SETTINGS_REJECT_REASONS",
    "SUPPORTED_VERSIONS",
    "VERSION",
    "Activate",
    "Command",
    "CommandAck",
    "CommandAcks",
    "CommandMessage",
    "CurveSetting",
    "DeviceSettings",
    "DroopSetting",
    "Extras",
    "FfrSetting",
    "Reading",
    "Schedule",
    "ScheduleMessage",
    "SettingsAck",
    "SettingsAcks",
    "SettingsMessage",
    "Status",
    "Telemetry",
    "TelemetryAck",
    "TelemetryRejection",
    "ack_topic",
    "activate_topic",
    "check_id",
    "cmd_topic",
    "gateway_of",
    "group_of",
    "shared_telemetry_subscription",
    "status_topic",
    "telemetry_topic",
    "write_schemas",
]

#: Protocol version this module speaks; every payload carries it as ``"v"``.
VERSION: Final = 1
#: Versions the decoders accept.
SUPPORTED_VERSIONS: tuple[int, ...] = (1,)
#: Gateway and group ids: safe in a topic level, a broker user name, a client id and a
#: configuration line (a letter or digit first, then up to 63 of letters, digits ``_ . -``).
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
#: Longest gateway or group id [characters].
MAX_ID_LEN = 64
#: Most readings one telemetry message may carry.
MAX_READINGS = 10_000
#: Most commands one command message carries (the encoder splits nothing: one per gateway).
MAX_COMMANDS = 10_000
#: Most schedules one schedule message carries.
MAX_SCHEDULES = 1_000
#: Most slots (schedules x steps) the encoder puts in one schedule message: with setpoints
#: written to 1 W, a message stays under ``MAX_GATEWAY_MESSAGE_BYTES`` (2 MiB) even so.
MAX_SCHEDULE_SLOTS_PER_MESSAGE = 100_000
#: Largest payload the broker carries [bytes]: the service's own command messages (up to
#: ``MAX_COMMANDS`` commands) stay under it; larger packets make the broker drop the sender.
MAX_PAYLOAD_BYTES = 4 * 1024 * 1024
#: Largest message a gateway may send (telemetry, acks, status) [bytes]; a larger one is
#: refused whole, with one short reason, before it is parsed.
MAX_GATEWAY_MESSAGE_BYTES = 2 * 1024 * 1024
#: Largest answer the service sends a gateway (a ``telemetry_ack``) [bytes].
MAX_ACK_BYTES = 16 * 1024
#: Refused readings a ``telemetry_ack`` lists one by one; the rest are only counted.
MAX_ACK_REJECTIONS = 20
#: How far ahead of the service clock a reading's ``ts`` may be [s] (clock skew).
MAX_CLOCK_SKEW_S = 30.0
#: How far behind the service clock a reading's ``ts`` may be [s] (a gateway's backlog).
MAX_READING_AGE_S = 7 * 86400.0
#: Largest magnitude of a power value [kW]: beyond it a reading is a unit or wiring error.
MAX_P_KW = 100_000.0
#: Telemetry ``extras`` a reading may carry, with their units: those the device kinds declare.
EXTRAS_KEYS: dict[str, str] = telemetry_extras_text()
#: Well-known reasons a gateway gives for rejecting a command (others are allowed).
COMMAND_REJECT_REASONS: dict[str, str] = {
    "expired": "valid_until had passed when the command arrived",
    "replayed": "seq not greater than the last seq seen for the device",
    "unknown_device": "the gateway does not carry this device",
    "out_of_range": "setpoint outside what the device can do",
    "not_controllable": "the device cannot be commanded (for example a plain meter)",
    "customer_override": "the customer overrode remote control locally",
    "device_error": "the device failed to apply the setpoint",
    "deposed_leader": "epoch lower than the highest the gateway has seen: a deposed leader sent it",
}

#: Most device settings one ``settings`` message carries.
MAX_SETTINGS = 1_000
#: What a gateway answers for one device's settings.
SETTINGS_ACK_STATUSES: tuple[str, ...] = ("accepted", "rejected", "unsupported")
#: Well-known reasons a gateway gives for refusing a device's settings (others are allowed).
SETTINGS_REJECT_REASONS: dict[str, str] = {
    "unknown_device": "the gateway does not carry this device",
    "stale": "seq lower than the last settings seq seen for the device (or the same seq "
    "with another id)",
    "expired": "valid_until had passed when the settings arrived",
    "out_of_range": "a value outside protocol v1's ranges (the item failed validation)",
    "invalid": "the item is not a settings item (fields missing or of the wrong type)",
    "not_adopted": "the device refused the settings or reads back other values",
    "device_error": "the device could not be reached or failed while writing",
    "no_der_functions": "the device offers none of the functions pushed (SunSpec 705/706/711)",
    "local_protocol": "the device's local protocol has no way to carry these settings",
}

_ID_RE = re.compile(ID_PATTERN[:-1] + r"\Z")
_PREFIX = "gf/v1/"

GatewayId = Annotated[str, Field(pattern=ID_PATTERN, description="Gateway id.")]
GroupId = Annotated[str, Field(pattern=ID_PATTERN, description="Group id.")]
DeviceId = Annotated[str, Field(min_length=1, max_length=256, description="Device id.")]
EpochS = Annotated[float, Field(description="UTC seconds since the Unix epoch.")]
Reason = Annotated[
    str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="Short snake_case reason code.")
]
Version = Annotated[Literal[1], Field(description="Protocol version.")]
Epoch = Annotated[
    int | None,
    Field(
        None,
        ge=0,
        description="Fencing token of the control leader that sent it; a gateway refuses "
        "(reason deposed_leader) a message whose epoch is lower than the highest it has "
        "seen. Absent when one process runs the whole service.",
    ),
]


# ---------------------------------------------------------------------------------------
# Topics


def check_id(value: str, what: str) -> str:
    """``value`` if it is a valid gateway or group id, else ``ValueError`` naming ``what``."""
    if not isinstance(value, str) or not _ID_RE.match(value):
        shown = str(value) if len(str(value)) <= 80 else str(value)[:77] + "..."
        raise ValueError(
            f"invalid {what} id {shown!r}: use 1-64 characters of A-Z a-z 0-9 _ . -, "
            "starting with a letter or digit"
        )
    return value


def telemetry_topic(gateway: str) -> str:
    """Topic the gateway publishes its readings to."""
    return f"{_PREFIX}{check_id(gateway, 'gateway')}/telemetry"


def cmd_topic(gateway: str) -> str:
    """Topic the service publishes the gateway's commands to."""
    return f"{_PREFIX}{check_id(gateway, 'gateway')}/cmd"


def ack_topic(gateway: str) -> str:
    """Topic of acknowledgements both ways (command acks up, telemetry acks down)."""
    return f"{_PREFIX}{check_id(gateway, 'gateway')}/ack"


def status_topic(gateway: str) -> str:
    """Retained online/offline status of the gateway (its Last Will)."""
    return f"{_PREFIX}{check_id(gateway, 'gateway')}/status"


def activate_topic(group: str) -> str:
    """Broadcast that fires a plan armed in advance on every gateway of ``group``."""
    return f"{_PREFIX}groups/{check_id(group, 'group')}/activate"


def shared_telemetry_subscription(share: str = "gridflock") -> str:
    """MQTT v5 shared subscription that splits all telemetry among ingest workers."""
    return f"$share/{check_id(share, 'share')}/{_PREFIX}+/telemetry"


_ID = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}"
_GATEWAY_TOPIC_RE = re.compile(rf"gf/v1/(?!groups/)({_ID})/(?:telemetry|cmd|ack|status)\Z")
_GROUP_TOPIC_RE = re.compile(rf"gf/v1/groups/({_ID})/activate\Z")


def gateway_of(topic: str) -> str | None:
    """The gateway id of a per-gateway topic, ``None`` for any other topic."""
    m = _GATEWAY_TOPIC_RE.match(topic)
    return m.group(1) if m else None


def group_of(topic: str) -> str | None:
    """The group id of an ``activate`` broadcast topic, ``None`` for any other topic."""
    m = _GROUP_TOPIC_RE.match(topic)
    return m.group(1) if m else None


# ---------------------------------------------------------------------------------------
# Models


class _Strict(BaseModel):
    """Strict, closed, immutable: unknown fields, coercions and NaN/inf are refused."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


if TYPE_CHECKING:

    class Extras(_Strict):
        """Optional kind-specific values of a reading; ``null`` or absent means not measured."""

else:  # one optional float field per declared extra (``domain.kinds``)
    Extras = create_model(
        "Extras",
        __base__=_Strict,
        __doc__="Optional kind-specific values of a reading; ``null`` or absent means "
        "not measured.",
        **{k: (float | None, Field(None, description=v)) for k, v in EXTRAS_KEYS.items()},
    )


class Reading(_Strict):
    """One measurement of one device."""

    device: DeviceId
    ts: float | AwareDatetime = Field(
        description="When measured: UTC epoch seconds, or ISO 8601 with a UTC offset."
    )
    p_kw: float = Field(
        ge=-MAX_P_KW,
        le=MAX_P_KW,
        description="Active power [kW]; > 0 delivered to the grid, < 0 taken from it.",
    )
    soc: float | None = Field(None, ge=0.0, le=1.0, description="State of charge [0..1].")
    p_baseline_kw: float | None = Field(
        None,
        ge=-MAX_P_KW,
        le=MAX_P_KW,
        description="Power the device would have on its own control [kW], same sign.",
    )
    extras: Extras | None = None


class Telemetry(_Strict):
    """Gateway → service on ``gf/v1/{gateway}/telemetry``: a batch of readings."""

    v: Version
    gateway: GatewayId = Field(description="Must equal the gateway of the topic.")
    readings: list[Reading] = Field(max_length=MAX_READINGS)


class Command(_Strict):
    """One setpoint for one device, held until ``valid_until``."""

    id: str = Field(min_length=1, max_length=128, description="Unique command id.")
    device: DeviceId
    seq: int = Field(ge=0, description="Increases per device; drop seq <= last seen.")
    p_setpoint_kw: float | None = Field(
        ge=-MAX_P_KW,
        le=MAX_P_KW,
        description="Power to hold [kW], generator sign; null releases the device.",
    )
    valid_until: EpochS = Field(description="After it the device returns to its own control.")
    event: str | None = Field(None, description="Event the command serves, if any.")


class CommandMessage(_Strict):
    """Service → gateway on ``gf/v1/{gateway}/cmd``: a batch of commands."""

    v: Version
    issued_at: EpochS
    epoch: Epoch = None
    commands: list[Command] = Field(max_length=MAX_COMMANDS)


class CommandAck(_Strict):
    """The gateway's verdict on one command."""

    id: str = Field(min_length=1, max_length=128)
    device: DeviceId
    seq: int = Field(ge=0)
    status: Literal["accepted", "rejected"]
    reason: Reason | None = Field(None, description="Why rejected; null when accepted.")


class CommandAcks(_Strict):
    """Gateway → service on ``gf/v1/{gateway}/ack``: verdicts on commands received."""

    v: Version
    type: Literal["command_ack"]
    acks: list[CommandAck] = Field(max_length=MAX_COMMANDS)


class TelemetryRejection(_Strict):
    """One reading the service refused, by its index in the message."""

    index: int = Field(ge=0)
    device: str | None = Field(
        max_length=MAX_ID_LEN + 3,
        description=f"Device id (cut to {MAX_ID_LEN} characters and '...'), null if none.",
    )
    reason: Reason
    message: str | None = Field(
        None, max_length=256, description="What was wrong, for people (cut to 256 characters)."
    )


class TelemetryAck(_Strict):
    """Service → gateway on ``gf/v1/{gateway}/ack``: what became of a telemetry message.

    Bounded: at most ``MAX_ACK_REJECTIONS`` refused readings are listed one by one (the
    first ones, by index), all of them are counted by reason, and the whole payload stays
    under ``MAX_ACK_BYTES``.
    """

    v: Version
    type: Literal["telemetry_ack"]
    received: int = Field(ge=0, description="Readings in the message.")
    accepted: int = Field(ge=0, description="Readings taken into the fleet state.")
    rejected: list[TelemetryRejection] = Field(
        max_length=MAX_ACK_REJECTIONS,
        description=f"The first {MAX_ACK_REJECTIONS} refused readings, by index.",
    )
    rejected_total: int = Field(0, ge=0, description="Refused readings, listed or not.")
    reasons: dict[str, int] = Field(
        default_factory=dict, description="Refused readings by reason code (all of them)."
    )
    error: str | None = Field(
        None, max_length=512, description="Why the whole message was refused, if it was."
    )


class Status(_Strict):
    """Gateway → service on ``gf/v1/{gateway}/status``, retained; offline is the Last Will."""

    v: Version
    status: Literal["online", "offline"]
    ts: EpochS | None = Field(None, description="When the status was set [UTC epoch s].")


class Activate(_Strict):
    """Service → gateways on ``gf/v1/groups/{group}/activate``: start the armed plan."""

    v: Version
    plan: str = Field(min_length=1, max_length=128, description="Id of the armed plan.")
    ts: EpochS = Field(description="When the plan starts.")


class Schedule(_Strict):
    """One device's plan: a setpoint per slot from ``start``, followed until ``valid_until``."""

    id: str = Field(min_length=1, max_length=128, description="Unique schedule id.")
    device: DeviceId
    seq: int = Field(
        ge=0,
        description="Increases per device (apart from commands' seq); drop seq <= last seen.",
    )
    plan: str = Field(min_length=1, max_length=128, description="Id of the plan it comes from.")
    start: EpochS = Field(description="Start of the first slot [UTC epoch s].")
    step_s: float = Field(ge=MIN_STEP_S, le=MAX_STEP_S, description="Slot length [s].")
    p_kw: list[Annotated[float, Field(ge=-MAX_P_KW, le=MAX_P_KW)] | None] = Field(
        min_length=1,
        max_length=MAX_SCHEDULE_STEPS,
        description="Setpoint of each slot [kW], generator sign; null = own control then.",
    )
    valid_until: EpochS = Field(
        description="End of the plan: after it the device returns to its own control "
        "(at most start + len(p_kw) * step_s)."
    )
    p_min_kw: list[Annotated[float, Field(ge=-MAX_P_KW, le=MAX_P_KW)] | None] | None = Field(
        None,
        max_length=MAX_SCHEDULE_STEPS,
        description="Lower limit of each slot without a setpoint [kW] (negative: an import "
        "cap); null = none. As long as p_kw.",
    )
    p_max_kw: list[Annotated[float, Field(ge=-MAX_P_KW, le=MAX_P_KW)] | None] | None = Field(
        None,
        max_length=MAX_SCHEDULE_STEPS,
        description="Upper limit of each slot without a setpoint [kW] (an export cap); "
        "null = none. As long as p_kw.",
    )

    @model_validator(mode="after")
    def _within_slots(self) -> Schedule:
        for name, lim in (("p_min_kw", self.p_min_kw), ("p_max_kw", self.p_max_kw)):
            if lim is not None and len(lim) != len(self.p_kw):
                raise ValueError(f"{name} has {len(lim)} slots, p_kw {len(self.p_kw)}")
        if self.p_min_kw is not None and self.p_max_kw is not None:
            for k, (lo, hi) in enumerate(zip(self.p_min_kw, self.p_max_kw, strict=True)):
                if lo is not None and hi is not None and lo > hi:
                    raise ValueError(f"slot {k}: p_min_kw {lo!r} is above p_max_kw {hi!r}")
        end = self.start + len(self.p_kw) * self.step_s
        if not self.start < self.valid_until <= end + 1e-6:
            raise ValueError(
                f"valid_until {self.valid_until!r} must be after start {self.start!r} and at "
                f"most the end of the last slot ({end!r})"
            )
        return self


class ScheduleMessage(_Strict):
    """Service → gateway on ``gf/v1/{gateway}/cmd``: schedules from a plan (``type`` tells)."""

    v: Version
    type: Literal["schedule"]
    issued_at: EpochS
    epoch: Epoch = None
    schedules: list[Schedule] = Field(max_length=MAX_SCHEDULES)


Clause = Annotated[
    str, Field(min_length=1, max_length=256, description="The standard's clause it comes from.")
]
ResponseS = Annotated[
    float, Field(gt=0, le=90, description="Open-loop response time [s] (to 90 % of a step).")
]


class CurveSetting(_Strict):
    """A volt-var or volt-watt curve in per unit: ``y_pu`` at each ``v_pu``, flat beyond."""

    enabled: bool
    v_pu: list[Annotated[float, Field(ge=0.5, le=1.5)]] = Field(
        min_length=2, max_length=10, description="Voltages [pu of nominal], increasing."
    )
    y_pu: list[Annotated[float, Field(ge=-1.0, le=1.0)]] = Field(
        min_length=2,
        max_length=10,
        description="Reactive power [pu of rated apparent power, > 0 injected] (volt-var) or "
        "active power [pu of rated] (volt-watt) at each voltage.",
    )
    response_s: ResponseS
    clause: Clause

    @model_validator(mode="after")
    def _points(self) -> CurveSetting:
        if len(self.v_pu) != len(self.y_pu):
            raise ValueError(f"v_pu has {len(self.v_pu)} points, y_pu {len(self.y_pu)}")
        if any(b <= a for a, b in zip(self.v_pu, self.v_pu[1:], strict=False)):
            raise ValueError("v_pu must increase strictly")
        return self


class DroopSetting(_Strict):
    """Frequency-watt (droop): outside the deadband, 1/droop of rated power per f_nom."""

    enabled: bool
    db_over_hz: float = Field(ge=0, le=2, description="Over-frequency deadband [Hz].")
    droop_over: float = Field(gt=0, le=0.2, description="Over-frequency droop [1]: 0.05 is 5 %.")
    db_under_hz: float | None = Field(
        None, ge=0, le=2, description="Under-frequency deadband [Hz]; null: no response asked."
    )
    droop_under: float | None = Field(None, gt=0, le=0.2, description="Under-frequency droop [1].")
    response_s: ResponseS
    clause: Clause

    @model_validator(mode="after")
    def _pair(self) -> DroopSetting:
        if (self.db_under_hz is None) != (self.droop_under is None):
            raise ValueError("db_under_hz and droop_under are given together or not at all")
        return self


class FfrSetting(_Strict):
    """A fast frequency product's droop the device is contracted for, and its limits."""

    product: str = Field(pattern=r"^[A-Z0-9][A-Z0-9_.-]{1,31}$", description="Product code.")
    deadband_hz: float = Field(ge=0, le=1, description="No response within it [Hz].")
    knee_hz: float = Field(gt=0, le=2, description="Deviation of the knee [Hz].")
    knee_pu: float = Field(ge=0, le=1, description="Response at the knee [pu of contracted].")
    full_hz: float = Field(gt=0, le=2, description="Deviation of full response [Hz].")
    up_kw: float = Field(ge=0, le=MAX_P_KW, description="Contracted under-frequency kW (limit).")
    down_kw: float = Field(ge=0, le=MAX_P_KW, description="Contracted over-frequency kW (limit).")
    full_s: float = Field(gt=0, le=60, description="Full response by [s].")
    clause: Clause

    @model_validator(mode="after")
    def _order(self) -> FfrSetting:
        if not self.deadband_hz <= self.knee_hz <= self.full_hz:
            raise ValueError("need deadband_hz <= knee_hz <= full_hz")
        return self


class DeviceSettings(_Strict):
    """One device's grid-code settings, from its site's profile (and a frequency product)."""

    id: str = Field(min_length=1, max_length=128, description="Unique settings id.")
    device: DeviceId
    seq: int = Field(
        ge=0,
        description="Increases per device (apart from commands' and schedules' seq); a lower "
        "seq is stale, the same id and seq again is answered as before (idempotent).",
    )
    profile: str = Field(
        pattern=r"^[A-Z0-9][A-Z0-9_.-]{1,31}$", description="Grid-code profile id (its source)."
    )
    f_nom_hz: Literal[50, 60] = Field(description="Nominal grid frequency [Hz].")
    volt_var: CurveSetting | None = Field(None, description="Null: leave as it is.")
    volt_watt: CurveSetting | None = Field(None, description="Null: leave as it is.")
    freq_watt: DroopSetting | None = Field(None, description="Null: leave as it is.")
    ffr: FfrSetting | None = Field(None, description="A fast frequency product, if contracted.")
    effective_from: EpochS = Field(description="Applied from then on (at once if past).")
    valid_until: EpochS | None = Field(
        None, description="Refused if received after it; null: until replaced."
    )


class SettingsMessage(_Strict):
    """Service → gateway on ``gf/v1/{gateway}/cmd``: grid-code settings (``type`` tells).

    A gateway checks each item on its own: one that fails validation, names a device it
    does not carry or is stale is refused with its reason, the others are applied.
    """

    v: Version
    type: Literal["settings"]
    issued_at: EpochS
    settings: list[DeviceSettings] = Field(max_length=MAX_SETTINGS)


class SettingsAck(_Strict):
    """The gateway's verdict on one device's settings, with what the device adopted."""

    id: str = Field(min_length=1, max_length=128)
    device: str = Field(min_length=1, max_length=MAX_ID_LEN * 4 + 3)
    seq: int = Field(ge=0)
    status: Literal["accepted", "rejected", "unsupported"] = Field(
        description="accepted: applied (see adopted); rejected: refused (see reason); "
        "unsupported: the device's local protocol cannot take them."
    )
    reason: Reason | None = Field(None, description="Why not accepted; null when accepted.")
    adopted: dict[
        Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")],
        Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")],
    ] = Field(
        default_factory=dict,
        max_length=8,
        description="Per function (volt_var, volt_watt, freq_watt, ffr): verified, absent, "
        "refused, failed, not_configured or held.",
    )
    detail: str | None = Field(None, max_length=512, description="For people: what happened.")


class SettingsAcks(_Strict):
    """Gateway → service on ``gf/v1/{gateway}/ack``: verdicts on settings received."""

    v: Version
    type: Literal["settings_ack"]
    acks: list[SettingsAck] = Field(max_length=MAX_SETTINGS)


#: Schema file name (under ``docs/schemas/``) of each model.
SCHEMA_MODELS: dict[str, type[BaseModel]] = {
    "telemetry.json": Telemetry,
    "commands.json": CommandMessage,
    "schedule.json": ScheduleMessage,
    "settings.json": SettingsMessage,
    "command_ack.json": CommandAcks,
    "settings_ack.json": SettingsAcks,
    "telemetry_ack.json": TelemetryAck,
    "status.json": Status,
    "activate.json": Activate,
}


def write_schemas(out_dir: str | Path) -> list[Path]:
    """Write the JSON Schema of every payload to ``out_dir`` (the docs keep them).

    Regenerate with ``python -c "from gridflock.gateways.mqtt.protocol import
    write_schemas; write_schemas('docs/schemas')"``; a test fails when they drift.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in SCHEMA_MODELS.items():
        path = out / name
        path.write_text(json.dumps(model.model_json_schema(), indent=2) + "\n")
        written.append(path)
    return written
