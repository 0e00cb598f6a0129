"""Grid-code settings messages: service → gateway ``settings``, gateway → service ``settings_ack``.

The service builds each device's item from the settings document of its site's grid code
(``gridcode.device_settings``: plain JSON, so this module needs nothing of ``gridcode``)
with :func:`settings_item`. A gateway decodes leniently item by item
(:func:`decode_settings`): the envelope must be right, but one bad item is refused with
its reason (``out_of_range``, ``invalid``) while the others go on, and
:func:`screen_settings` refuses unknown devices, stale and expired items and answers a
repeated item (same id and seq) as it did before.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from gridflock.gateways.mqtt._errors import ProtocolError, load_json
from gridflock.gateways.mqtt.protocol import (
    MAX_ID_LEN,
    MAX_PAYLOAD_BYTES,
    MAX_SETTINGS,
    VERSION,
    DeviceSettings,
    SettingsAck,
    SettingsAcks,
    SettingsMessage,
)

__all__ = [
    "DecodedSettings",
    "SettingsSeen",
    "decode_settings",
    "encode_settings",
    "encode_settings_ack",
    "screen_settings",
    "settings_item",
]

#: Functions a settings item carries, in the order acks list them.
FUNCTIONS: tuple[str, ...] = ("volt_var", "volt_watt", "freq_watt", "ffr")


def settings_item(
    doc: Mapping[str, Any],
    settings_id: str,
    seq: int,
    effective_from: float,
    valid_until: float | None = None,
) -> DeviceSettings:
    """One device's protocol item from its settings document (``gridflock.settings/1``).

    ``ValueError`` (pydantic's) when the document's numbers leave protocol v1's ranges.
    """
    vv, vw = doc.get("volt_var"), doc.get("volt_watt")
    fw, ffr = doc.get("freq_watt"), doc.get("ffr")
    obj: dict[str, Any] = {
        "id": settings_id,
        "device": doc["device_id"],
        "seq": int(seq),
        "profile": doc["grid_code"],
        "f_nom_hz": int(doc["f_nom_hz"]),
        "effective_from": float(effective_from),
        "valid_until": None if valid_until is None else float(valid_until),
    }
    if vv:
        obj["volt_var"] = _curve(vv, "q_pu")
    if vw:
        obj["volt_watt"] = _curve(vw, "p_pu")
    if fw:
        obj["freq_watt"] = {
            "enabled": bool(fw.get("enabled", True)),
            "db_over_hz": float(fw["db_over_hz"]),
            "droop_over": float(fw["droop_over"]),
            "db_under_hz": _opt(fw.get("db_under_hz")),
            "droop_under": _opt(fw.get("droop_under")),
            "response_s": float(fw["response_s"]),
            "clause": str(fw["clause"])[:256],
        }
    if ffr:
        obj["ffr"] = {
            "product": ffr["product"],
            **{
                k: float(ffr[k])
                for k in (
                    "deadband_hz",
                    "knee_hz",
                    "knee_pu",
                    "full_hz",
                    "up_kw",
                    "down_kw",
                    "full_s",
                )
            },
            "clause": str(ffr["clause"])[:256],
        }
    return DeviceSettings.model_validate(obj)


def _opt(x: Any) -> float | None:
    return None if x is None else float(x)


def _curve(c: Mapping[str, Any], y_key: str) -> dict[str, Any]:
    return {
        "enabled": bool(c.get("enabled", True)),
        "v_pu": [float(v) for v in c["v_pu"]],
        "y_pu": [float(v) for v in c[y_key]],
        "response_s": float(c["response_s"]),
        "clause": str(c["clause"])[:256],
    }


def encode_settings(items: Sequence[DeviceSettings], issued_at: float) -> list[bytes]:
    """``settings`` payloads for one gateway: ``MAX_SETTINGS`` items each at most."""
    if not all(isinstance(it, DeviceSettings) for it in items):
        raise TypeError("encode_settings takes DeviceSettings items (see settings_item)")
    out = []
    for a in range(0, max(len(items), 1), MAX_SETTINGS):
        # the items are models already (validated, or copies of a validated template):
        # the envelope is not validated again, item by item
        msg = SettingsMessage.model_construct(
            v=VERSION,
            type="settings",
            issued_at=float(issued_at),
            settings=list(items[a : a + MAX_SETTINGS]),
        )
        out.append(msg.model_dump_json().encode())
    return out


@dataclass(frozen=True)
class DecodedSettings:
    """A ``settings`` message as a gateway takes it: the valid items and the refused ones."""

    issued_at: float
    settings: list[DeviceSettings]
    refused: list[SettingsAck] = field(default_factory=list)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _refusal(raw: Any, e: PydanticValidationError) -> SettingsAck | None:
    """The ack refusing an invalid item, or None if it has no id, device and seq to answer to."""
    if not isinstance(raw, dict):
        return None
    sid, dev, seq = raw.get("id"), raw.get("device"), raw.get("seq")
    if not (isinstance(sid, str) and 0 < len(sid) <= 128 and isinstance(dev, str) and dev):
        return None
    if type(seq) is not int or seq < 0:
        return None
    errs = e.errors(include_url=False)
    ranged = all(
        x["type"].endswith(("_than", "_than_equal", "_equal", "too_long", "too_short"))
        or "literal" in x["type"]
        or x["type"] == "value_error"
        for x in errs
    )
    detail = "; ".join(
        f"{'.'.join(str(p) for p in x['loc']) or '(item)'}: {x['msg']}" for x in errs[:3]
    )
    return SettingsAck(
        id=sid,
        device=_cut(dev, MAX_ID_LEN * 4 + 3),
        seq=seq,
        status="rejected",
        reason="out_of_range" if ranged else "invalid",
        detail=_cut(detail, 512),
    )


def decode_settings(payload: bytes | str | dict[str, Any]) -> DecodedSettings:
    """A ``settings`` payload, item by item; :class:`ProtocolError` if the envelope is wrong."""
    obj = payload if isinstance(payload, dict) else load_json(payload, MAX_PAYLOAD_BYTES, "cmd")
    extra = set(obj) - {"v", "type", "issued_at", "settings"}
    if obj.get("type") != "settings" or extra:
        raise ProtocolError(
            'settings does not match protocol v1: need "type": "settings"'
            + (f"; unknown field(s) {sorted(extra)[:5]}" if extra else "")
        )
    raw_issued, items = obj.get("issued_at"), obj.get("settings")
    number = isinstance(raw_issued, (int, float)) and not isinstance(raw_issued, bool)
    issued = float(raw_issued) if number else math.nan  # type: ignore[arg-type]
    if not math.isfinite(issued) or not isinstance(items, list):
        raise ProtocolError(
            "settings does not match protocol v1: issued_at must be a finite number and "
            "settings a list"
        )
    if len(items) > MAX_SETTINGS:
        raise ProtocolError(f"settings carries {len(items)} items, more than {MAX_SETTINGS}")
    good: list[DeviceSettings] = []
    refused: list[SettingsAck] = []
    for raw in items:
        try:
            good.append(DeviceSettings.model_validate(raw))
        except PydanticValidationError as e:
            r = _refusal(raw, e)
            if r is not None:
                refused.append(r)
    return DecodedSettings(issued, good, refused)


@dataclass
class SettingsSeen:
    """What a gateway last took for one device: its id, seq and the answer it gave."""

    id: str
    seq: int
    ack: SettingsAck


def screen_settings(
    items: Iterable[DeviceSettings],
    seen: Mapping[str, SettingsSeen],
    now: float,
    known_devices: Callable[[str], bool],
) -> list[tuple[DeviceSettings, SettingsAck | None]]:
    """The reference gateway rules: each item with its answer, None for one to apply.

    An item for a device the gateway does not carry is ``unknown_device``; received after
    its ``valid_until`` ``expired``; with a seq below the last taken (or the same seq
    under another id) ``stale``; the same id and seq as the last taken is answered with
    the same ack again (a re-send of settings already applied: idempotent).
    """
    out: list[tuple[DeviceSettings, SettingsAck | None]] = []
    for s in items:
        last = seen.get(s.device)
        reason = None
        if not known_devices(s.device):
            reason = "unknown_device"
        elif last is not None and s.seq == last.seq and s.id == last.id:
            out.append((s, last.ack))
            continue
        elif last is not None and s.seq <= last.seq:
            reason = "stale"
        elif s.valid_until is not None and s.valid_until <= now:
            reason = "expired"
        if reason is None:
            out.append((s, None))
        else:
            ack = SettingsAck(id=s.id, device=s.device, seq=s.seq, status="rejected", reason=reason)
            out.append((s, ack))
    return out


def encode_settings_ack(acks: Iterable[SettingsAck]) -> bytes:
    """A ``settings_ack`` payload (gateway → service)."""
    return SettingsAcks(v=VERSION, type="settings_ack", acks=list(acks)).model_dump_json().encode()
