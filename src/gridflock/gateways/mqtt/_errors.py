"""Errors and rejections of the MQTT codec."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from gridflock.domain import GridflockError
from gridflock.gateways.mqtt.protocol import SUPPORTED_VERSIONS, VERSION

__all__ = ["ProtocolError", "Rejection", "load_json", "require_version", "short_repr"]


class ProtocolError(GridflockError, ValueError):
    """A whole message that cannot be used: the text says what is wrong and what to send."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """One reading refused, the rest of its message kept.

    ``index`` is the reading's position in ``readings``; ``reason`` a short snake_case
    code (see ``codec.REJECT_REASONS``); ``message`` what was wrong, for people.
    """

    index: int
    device: str | None
    reason: str
    message: str


def load_json(payload: bytes | str, max_bytes: int, what: str) -> dict[str, Any]:
    """Parse ``payload`` as one JSON object, or raise :class:`ProtocolError`."""
    if len(payload) > max_bytes:
        raise ProtocolError(
            f"{what} payload is {len(payload)} bytes, more than the {max_bytes} allowed: "
            "split it into several messages"
        )
    try:
        obj = json.loads(payload)
    except (ValueError, RecursionError) as e:
        raise ProtocolError(f"{what} payload is not valid UTF-8 JSON: {e}") from None
    if type(obj) is not dict:
        raise ProtocolError(
            f"{what} payload must be a JSON object, got {_json_type(obj)}: "
            f'send {{"v": {VERSION}, ...}}'
        )
    require_version(obj, what)
    return obj


def require_version(obj: dict[str, Any], what: str) -> None:
    """Raise :class:`ProtocolError` unless ``obj["v"]`` is a supported version."""
    v = obj.get("v")
    if type(v) is int and v in SUPPORTED_VERSIONS:
        return
    supported = ", ".join(str(s) for s in SUPPORTED_VERSIONS)
    got = 'no "v" field' if "v" not in obj else f'"v": {short_repr(v)}'
    raise ProtocolError(
        f"{what}: unsupported protocol version ({got}); this service supports "
        f'"v" = {supported} (an integer)'
    )


def _json_type(obj: object) -> str:
    """JSON name of the type of a decoded value."""
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(obj), "a number")


def short_repr(value: object, limit: int = 60) -> str:
    """``repr`` of ``value``, cut to ``limit`` characters for error messages."""
    r = repr(value)
    return r if len(r) <= limit else r[: limit - 3] + "..."
