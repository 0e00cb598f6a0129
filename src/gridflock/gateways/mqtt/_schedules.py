"""Schedule payloads: a plan's per-device setpoint series on the gateways' ``cmd`` topic.

:func:`encode_schedules` groups a :class:`ScheduleBatch` by gateway with NumPy and writes
JSON by string formatting (setpoints to 1 W), splitting a gateway's schedules over several
messages so each stays under the gateway's size limit. Gateways decode with
:func:`decode_cmd` (commands or schedules, told apart by ``"type"``) and screen with
:func:`screen_schedules`, the reference rules.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from json.encoder import encode_basestring_ascii
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import ValidationError as PydanticValidationError

from gridflock.domain.schedules import ScheduleBatch
from gridflock.gateways.mqtt._control import gateways_of, problems
from gridflock.gateways.mqtt._errors import ProtocolError, load_json
from gridflock.gateways.mqtt._settings import DecodedSettings, decode_settings
from gridflock.gateways.mqtt.protocol import (
    MAX_PAYLOAD_BYTES,
    MAX_SCHEDULE_SLOTS_PER_MESSAGE,
    MAX_SCHEDULES,
    VERSION,
    CommandAck,
    CommandMessage,
    Schedule,
    ScheduleMessage,
    check_id,
)

__all__ = ["decode_cmd", "decode_schedules", "encode_schedules", "screen_schedules"]


def _slots(p_kw: np.ndarray) -> list[str]:
    """Each schedule's setpoints as a JSON array, to 1 W; NaN as ``null``."""
    p = np.asarray(p_kw, dtype=np.float64)
    if np.isinf(p).any():
        raise ValueError("a schedule setpoint is infinite: give finite kW, or NaN for own control")
    values = np.round(p, 3).astype(object)
    values[np.isnan(p)] = None
    return [json.dumps(row, separators=(",", ":")) for row in values.tolist()]


def encode_schedules(
    batch: ScheduleBatch,
    gateway_of_device: Mapping[str, str] | Callable[[str], str],
) -> dict[str, list[bytes]]:
    """Split a schedule batch by gateway: the ``cmd`` payloads of each gateway id.

    A gateway gets one message for all its devices' schedules unless they exceed
    ``MAX_SCHEDULES`` or ``MAX_SCHEDULE_SLOTS_PER_MESSAGE`` slots; then several.

    Raises
    ------
    UnknownDeviceError
        If a device has no gateway.
    ValueError
        If a time of the batch is not finite, or a setpoint is infinite.

    """
    n = len(batch)
    if n == 0:
        return {}
    devices = batch.device_ids.tolist()
    gateways = gateways_of(devices, gateway_of_device)
    times = (batch.start, batch.step_s, batch.valid_until, batch.issued_at)
    if not all(np.isfinite(t) for t in times):
        raise ValueError("start, step_s, valid_until and issued_at must be finite")
    codes, names = pd.factorize(np.asarray(gateways, dtype=object))
    for g in names.tolist():
        check_id(str(g), "gateway")
    plan = encode_basestring_ascii(batch.plan_id)
    tail = (
        f',"plan":{plan},"start":{float(batch.start)!r},"step_s":{float(batch.step_s)!r},'
        f'"valid_until":{float(batch.valid_until)!r},"p_kw":'
    )
    limits = [
        [f',"{name}":{x}' for x in _slots(lim)]
        for name, lim in (("p_min_kw", batch.p_min_kw), ("p_max_kw", batch.p_max_kw))
        if lim is not None
    ]
    extra = ["".join(x) for x in zip(*limits, strict=True)] if limits else [""] * n
    parts = [
        f'{{"id":{encode_basestring_ascii(c)},"device":{encode_basestring_ascii(d)},'
        f'"seq":{s}{tail}{row}{more}}}'
        for c, d, s, row, more in zip(
            batch.schedule_ids.tolist(),
            devices,
            np.asarray(batch.seq, dtype=np.int64).tolist(),
            _slots(batch.p_kw),
            extra,
            strict=True,
        )
    ]
    per_message = max(1, min(MAX_SCHEDULES, MAX_SCHEDULE_SLOTS_PER_MESSAGE // max(batch.steps, 1)))
    epoch = "" if batch.epoch is None else f',"epoch":{int(batch.epoch)}'
    head = (
        f'{{"v":{VERSION},"type":"schedule","issued_at":{float(batch.issued_at)!r}{epoch},'
        '"schedules":['
    )
    out: dict[str, list[bytes]] = {}
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order].tolist()
    for pos, i in enumerate(order.tolist()):
        gw = str(names[sorted_codes[pos]])
        out.setdefault(gw, []).append(parts[i].encode())
    return {
        gw: [
            head.encode() + b",".join(items[a : a + per_message]) + b"]}"
            for a in range(0, len(items), per_message)
        ]
        for gw, items in out.items()
    }


def decode_cmd(payload: bytes | str) -> CommandMessage | ScheduleMessage | DecodedSettings:
    """A ``cmd`` payload (for gateways): commands, or schedules or settings by ``"type"``."""
    obj = load_json(payload, MAX_PAYLOAD_BYTES, "cmd")
    if obj.get("type") == "settings":
        return decode_settings(obj)
    model: type[CommandMessage] | type[ScheduleMessage] = (
        ScheduleMessage if obj.get("type") == "schedule" else CommandMessage
    )
    what = "schedule" if model is ScheduleMessage else "commands"
    try:
        return model.model_validate(obj)
    except PydanticValidationError as e:
        raise ProtocolError(f"{what} does not match protocol v1: {problems(e)}") from None


def decode_schedules(payload: bytes | str) -> list[Schedule]:
    """Schedules of a ``schedule`` payload, validated strictly (for gateways)."""
    msg = decode_cmd(payload)
    if not isinstance(msg, ScheduleMessage):
        raise ProtocolError('not a schedule message: it has no "type": "schedule"')
    return list(msg.schedules)


def screen_schedules(
    schedules: Iterable[Schedule],
    last_seq: dict[str, int],
    now: float,
    known_devices: Callable[[str], bool] | None = None,
    limits: Callable[[str], tuple[float, float]] | None = None,
    *,
    deposed: bool = False,
) -> list[CommandAck]:
    """The reference gateway rules for schedules: accept or reject each, in order.

    ``deposed`` (the message's epoch is below the highest seen, :class:`EpochFence`)
    rejects them all as ``deposed_leader``.

    Rejects schedules of unknown devices, past ``valid_until`` (``expired``), with ``seq``
    not above the last schedule seq seen for the device (``replayed``; kept apart from the
    commands' seq), and, when ``limits`` gives a device's ``(p_min_kw, p_max_kw)``, with a
    slot outside them (``out_of_range``). Updates ``last_seq`` for accepted ones.
    """
    acks = []
    for s in schedules:
        reason: str | None = None
        if deposed:
            reason = "deposed_leader"
        elif known_devices is not None and not known_devices(s.device):
            reason = "unknown_device"
        elif s.valid_until <= now:
            reason = "expired"
        elif s.seq <= last_seq.get(s.device, -1):
            reason = "replayed"
        elif limits is not None:
            lo, hi = limits(s.device)
            vals = [x for x in s.p_kw if x is not None]
            if vals and (min(vals) < lo - 1e-6 or max(vals) > hi + 1e-6):
                reason = "out_of_range"
        if reason is None:
            last_seq[s.device] = s.seq
        status: Literal["accepted", "rejected"] = "accepted" if reason is None else "rejected"
        acks.append(CommandAck(id=s.id, device=s.device, seq=s.seq, status=status, reason=reason))
    return acks
