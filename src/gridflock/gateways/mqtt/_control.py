"""Command, acknowledgement, status and broadcast payloads.

Commands leave the service in bulk (100,000 devices behind 25,000 gateways for one event),
so :func:`encode_commands` groups with NumPy and writes JSON by string formatting. The
other messages are small or rare and go through the pydantic models of ``protocol``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from json.encoder import encode_basestring_ascii
from typing import Annotated, Any, Literal, TypeVar

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from gridflock.domain import UnknownDeviceError
from gridflock.domain.messages import CommandBatch
from gridflock.gateways.mqtt._errors import ProtocolError, Rejection, load_json
from gridflock.gateways.mqtt.protocol import (
    MAX_ACK_BYTES,
    MAX_ACK_REJECTIONS,
    MAX_GATEWAY_MESSAGE_BYTES,
    MAX_ID_LEN,
    MAX_PAYLOAD_BYTES,
    VERSION,
    Activate,
    Command,
    CommandAck,
    CommandAcks,
    CommandMessage,
    SettingsAcks,
    Status,
    TelemetryAck,
    check_id,
)

__all__ = [
    "EpochFence",
    "decode_ack",
    "decode_activate",
    "decode_commands",
    "decode_status",
    "encode_activate",
    "encode_command_ack",
    "encode_commands",
    "encode_status",
    "encode_telemetry_ack",
    "screen_commands",
]

M = TypeVar("M", bound=BaseModel)
_Ack = Annotated[CommandAcks | TelemetryAck | SettingsAcks, Field(discriminator="type")]
_ACK = TypeAdapter[CommandAcks | TelemetryAck | SettingsAcks](_Ack)


def _validate(
    model: type[M], payload: bytes | str, what: str, max_bytes: int = MAX_PAYLOAD_BYTES
) -> M:
    """``payload`` as ``model``, or :class:`ProtocolError` listing what is wrong."""
    obj = load_json(payload, max_bytes, what)
    try:
        return model.model_validate(obj)
    except PydanticValidationError as e:
        raise ProtocolError(f"{what} does not match protocol v1: {problems(e)}") from None


def gateways_of(
    devices: list[str], gateway_of_device: Mapping[str, str] | Callable[[str], str]
) -> list[str]:
    """Each device's gateway; ``UnknownDeviceError`` names the devices that have none."""
    if isinstance(gateway_of_device, Mapping):
        missing = [d for d in devices if d not in gateway_of_device]
        if missing:
            raise UnknownDeviceError(f"no gateway for {len(missing)} device(s): {missing[:5]}")
        return [gateway_of_device[d] for d in devices]
    return [gateway_of_device(d) for d in devices]


def problems(e: PydanticValidationError) -> str:
    """The first few errors of a pydantic validation, one line each."""
    errs = e.errors(include_url=False)
    shown = "; ".join(
        f"{'.'.join(str(p) for p in x['loc']) or '(root)'}: {x['msg']}" for x in errs[:5]
    )
    return shown + (f"; and {len(errs) - 5} more" if len(errs) > 5 else "")


def _dumps(obj: dict[str, Any]) -> bytes:
    """Compact JSON bytes (no NaN: the protocol has none)."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


# ---------------------------------------------------------------------------------------
# Commands


def encode_commands(
    batch: CommandBatch,
    gateway_of_device: Mapping[str, str] | Callable[[str], str],
) -> dict[str, bytes]:
    """Split a command batch by gateway: one ``cmd`` payload per gateway id.

    Parameters
    ----------
    batch
        Setpoints [kW, generator sign]; NaN ``p_setpoint_kw`` is encoded as ``null``
        (release the device to its own control).
    gateway_of_device
        Gateway of each device id, as a mapping or a function.

    Raises
    ------
    UnknownDeviceError
        If a device has no gateway.
    ValueError
        If ``valid_until`` or ``issued_at`` is not finite.

    """
    n = len(batch)
    if n == 0:
        return {}
    devices = batch.device_ids.tolist()
    gateways = gateways_of(devices, gateway_of_device)
    valid_until = np.asarray(batch.valid_until, dtype=np.float64)
    if not (np.isfinite(valid_until).all() and np.isfinite(batch.issued_at)):
        raise ValueError("valid_until and issued_at must be finite epoch seconds")
    codes, names = pd.factorize(np.asarray(gateways, dtype=object))
    for g in names.tolist():
        check_id(str(g), "gateway")
    event = "null" if batch.event_id is None else encode_basestring_ascii(batch.event_id)
    tail = f',"event":{event}}}'
    p = np.asarray(batch.p_setpoint_kw, dtype=np.float64)
    setpoint = [repr(x) if x - x == 0.0 else "null" for x in p.tolist()]
    parts = [
        f'{{"id":{encode_basestring_ascii(c)},"device":{encode_basestring_ascii(d)},"seq":{s},'
        f'"p_setpoint_kw":{sp},"valid_until":{v!r}{tail}'
        for c, d, s, sp, v in zip(
            batch.command_ids.tolist(),
            devices,
            np.asarray(batch.seq, dtype=np.int64).tolist(),
            setpoint,
            valid_until.tolist(),
            strict=True,
        )
    ]
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    starts = [0, *bounds.tolist()]
    ends = [*bounds.tolist(), n]
    epoch = "" if batch.epoch is None else f',"epoch":{int(batch.epoch)}'
    head = f'{{"v":{VERSION},"issued_at":{float(batch.issued_at)!r}{epoch},"commands":['
    ordered = [parts[i] for i in order.tolist()]
    first = codes[order].tolist()
    return {
        str(names[first[a]]): (head + ",".join(ordered[a:b]) + "]}").encode()
        for a, b in zip(starts, ends, strict=True)
    }


def decode_commands(payload: bytes | str) -> list[Command]:
    """Commands of a ``cmd`` payload, validated strictly (for gateways)."""
    return list(_validate(CommandMessage, payload, "commands").commands)


class EpochFence:
    """The highest control-leader epoch a gateway has seen: older epochs are deposed.

    A message without an epoch (one process runs the whole service, nobody is elected)
    is always admitted. Keep one per gateway (or per device); :attr:`highest` may be
    saved and given back after a restart.
    """

    def __init__(self, highest: int | None = None) -> None:
        self.highest = highest

    def admit(self, epoch: int | None) -> bool:
        """Whether a message of ``epoch`` may be applied (and remember the highest)."""
        if epoch is None:
            return True
        if self.highest is not None and epoch < self.highest:
            return False
        self.highest = epoch
        return True


def screen_commands(
    commands: Iterable[Command],
    last_seq: dict[str, int],
    now: float,
    known_devices: Callable[[str], bool] | None = None,
    *,
    deposed: bool = False,
) -> list[CommandAck]:
    """The reference gateway rules: accept or reject each command, in order.

    Rejects them all as ``deposed_leader`` when ``deposed`` (the message's epoch is below
    the highest seen: :class:`EpochFence`); else commands of unknown devices, past
    ``valid_until`` (``expired``) and with ``seq`` not above the last seen for the device
    (``replayed``); updates ``last_seq`` for accepted ones. Range checks against the
    device are the gateway's own.
    """
    acks = []
    for c in commands:
        reason: str | None = None
        if deposed:
            reason = "deposed_leader"
        elif known_devices is not None and not known_devices(c.device):
            reason = "unknown_device"
        elif c.valid_until <= now:
            reason = "expired"
        elif c.seq <= last_seq.get(c.device, -1):
            reason = "replayed"
        else:
            last_seq[c.device] = c.seq
        status: Literal["accepted", "rejected"] = "accepted" if reason is None else "rejected"
        acks.append(CommandAck(id=c.id, device=c.device, seq=c.seq, status=status, reason=reason))
    return acks


# ---------------------------------------------------------------------------------------
# Acknowledgements


def encode_command_ack(acks: Iterable[CommandAck]) -> bytes:
    """A ``command_ack`` payload (gateway → service) from the gateway's verdicts."""
    msg = CommandAcks(v=VERSION, type="command_ack", acks=list(acks))
    return msg.model_dump_json(exclude_none=False).encode()


def _cut(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, the cut marked with ``...``."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def encode_telemetry_ack(
    received: int, rejected: Sequence[Rejection], *, error: str | None = None
) -> bytes:
    """A ``telemetry_ack`` payload (service → gateway), never above ``MAX_ACK_BYTES``.

    ``received`` readings were in the message; all but ``rejected`` were accepted.
    ``error`` says why the whole message was refused (then nothing was accepted). The
    first ``MAX_ACK_REJECTIONS`` refusals are listed (device ids cut to ``MAX_ID_LEN``
    characters, messages to 256), all are counted by reason: a hostile message with
    10,000 bad readings gets a short answer, not one larger than itself.
    """
    accepted = 0 if error is not None else received - len(rejected)
    items = [
        {
            "index": r.index,
            "device": None if r.device is None else _cut(r.device, MAX_ID_LEN + 3),
            "reason": r.reason,
            "message": _cut(r.message, 256),
        }
        for r in rejected[:MAX_ACK_REJECTIONS]
    ]
    reasons: dict[str, int] = {}
    for r in rejected:
        reasons[r.reason] = reasons.get(r.reason, 0) + 1
    obj: dict[str, Any] = {
        "v": VERSION,
        "type": "telemetry_ack",
        "received": received,
        "accepted": accepted,
        "rejected": items,
        "rejected_total": len(rejected),
        "reasons": reasons,
    }
    if error is not None:
        obj["error"] = _cut(error, 512)
    out = _dumps(obj)
    while len(out) > MAX_ACK_BYTES and obj["rejected"]:  # only with absurd reason codes
        obj["rejected"] = obj["rejected"][: len(obj["rejected"]) // 2]
        out = _dumps(obj)
    return out


def decode_ack(payload: bytes | str) -> CommandAcks | TelemetryAck | SettingsAcks:
    """A payload of an ``ack`` topic, whichever direction it travels."""
    obj = load_json(payload, MAX_GATEWAY_MESSAGE_BYTES, "ack")
    try:
        return _ACK.validate_python(obj)
    except PydanticValidationError as e:
        raise ProtocolError(f"ack does not match protocol v1: {problems(e)}") from None


# ---------------------------------------------------------------------------------------
# Status and group broadcasts


def encode_status(status: Literal["online", "offline"], ts: float | None = None) -> bytes:
    """A ``status`` payload; publish retained, QoS 1, and set the offline one as Last Will."""
    return Status(v=VERSION, status=status, ts=ts).model_dump_json().encode()


def decode_status(payload: bytes | str) -> Status:
    """A ``status`` payload."""
    return _validate(Status, payload, "status", MAX_GATEWAY_MESSAGE_BYTES)


def encode_activate(plan: str, ts: float) -> bytes:
    """An ``activate`` broadcast: start plan ``plan`` at ``ts`` [UTC epoch s]."""
    return Activate(v=VERSION, plan=plan, ts=ts).model_dump_json().encode()


def decode_activate(payload: bytes | str) -> Activate:
    """An ``activate`` broadcast payload."""
    return _validate(Activate, payload, "activate")
