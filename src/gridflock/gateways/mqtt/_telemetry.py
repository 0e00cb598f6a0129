"""Telemetry payloads: the fast decoder into a ``TelemetryBatch`` and the encoder.

The decoder parses with ``json.loads`` and then checks column by column (one Python pass
per field to pull values out, NumPy for ranges), never a model per reading: a batch of
100 readings costs a few hundred microseconds. Bad readings are dropped one by one with
a reason; only a message that cannot be read at all raises :class:`ProtocolError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from json.encoder import encode_basestring_ascii
from typing import Any

import numpy as np
import numpy.typing as npt

from gridflock.domain.messages import BoolArray, FloatArray, IntArray, TelemetryBatch
from gridflock.gateways.mqtt._errors import ProtocolError, Rejection, load_json, short_repr
from gridflock.gateways.mqtt.protocol import (
    EXTRAS_KEYS,
    MAX_CLOCK_SKEW_S,
    MAX_GATEWAY_MESSAGE_BYTES,
    MAX_P_KW,
    MAX_READING_AGE_S,
    MAX_READINGS,
    VERSION,
    gateway_of,
    telemetry_topic,
)

__all__ = [
    "REJECT_REASONS",
    "DecodedTelemetry",
    "DecodedTelemetryMany",
    "decode_telemetry",
    "decode_telemetry_many",
    "encode_telemetry",
]

#: Why a reading is refused: code → meaning. When several apply, the first listed wins.
REJECT_REASONS: dict[str, str] = {
    "not_an_object": "the reading is not a JSON object",
    "unknown_field": "the reading has a field protocol v1 does not define",
    "bad_device": "device is missing, not a string, empty or longer than 256 characters",
    "bad_ts": "ts is missing, not a number, or not ISO 8601 with a UTC offset",
    "ts_in_future": "ts is further ahead of the service clock than the tolerance",
    "ts_too_old": "ts is further behind the service clock than the tolerance",
    "bad_p_kw": "p_kw is missing or not a finite number",
    "p_out_of_range": f"|p_kw| is above {MAX_P_KW:g} kW",
    "bad_soc": "soc is not a finite number",
    "soc_out_of_range": "soc is outside 0..1",
    "bad_p_baseline_kw": "p_baseline_kw is not a finite number",
    "p_baseline_out_of_range": f"|p_baseline_kw| is above {MAX_P_KW:g} kW",
    "bad_extras": "extras is not a JSON object",
    "unknown_extra": "extras has a key protocol v1 does not define",
    "bad_extra": "an extras value is not a finite number",
    "duplicate": "same device and ts as an earlier reading of the message",
    "unknown_device": "the fleet has no such device behind this gateway (service check)",
    "stale": "ts is older than a reading already taken for the device (service check)",
}
_CODES = list(REJECT_REASONS)
_CODE = {name: i + 1 for i, name in enumerate(_CODES)}  # 0 = valid
_FIELD = {
    "bad_device": "device",
    "bad_ts": "ts",
    "ts_in_future": "ts",
    "ts_too_old": "ts",
    "bad_p_kw": "p_kw",
    "p_out_of_range": "p_kw",
    "bad_soc": "soc",
    "soc_out_of_range": "soc",
    "bad_p_baseline_kw": "p_baseline_kw",
    "p_baseline_out_of_range": "p_baseline_kw",
    "bad_extras": "extras",
}
_READING_KEYS = frozenset({"device", "ts", "p_kw", "soc", "p_baseline_kw", "extras"})
_TOP_KEYS = frozenset({"v", "gateway", "readings"})
_EXTRAS = frozenset(EXTRAS_KEYS)
_NUMBER = frozenset({float, int})
_NUMBER_OR_NONE = frozenset({float, int, type(None)})
_EMPTY: dict[str, Any] = {}
_MAX_DEVICE_LEN = 256
Codes = npt.NDArray[np.int8]
Checks = list[tuple[BoolArray, int]]


@dataclass(frozen=True)
class DecodedTelemetry:
    """A telemetry message taken apart: the valid readings and why the others were refused."""

    gateway: str
    batch: TelemetryBatch
    rejected: list[Rejection] = field(default_factory=list)
    received: int = 0
    """Readings in the message, valid or not."""


def _mark(checks: Checks, mask: BoolArray, reason: str) -> None:
    """Note that the readings in ``mask`` fail ``reason`` (applied later, first wins)."""
    checks.append((mask, _CODE[reason]))


def _resolve(code: Codes, checks: Checks) -> None:
    """Give each reading the first reason it fails, in the order the checks were noted."""
    if not checks or not np.any([m for m, _ in checks]):
        checks.clear()
        return
    for mask, c in checks:
        if mask.any():
            code[mask & (code == 0)] = c
    checks.clear()


def _numbers(
    values: list[Any], *, required: bool, iso: bool = False
) -> tuple[FloatArray, BoolArray]:
    """Values as float64 (NaN where absent) and a mask of those present but not usable.

    Usable: a JSON number (not a boolean) that is finite, or with ``iso`` a string in ISO
    8601 with a UTC offset. Absent (missing or ``null``) is unusable only if ``required``.
    """
    n = len(values)
    types = set(map(type, values))
    if types <= _NUMBER or (not required and types <= _NUMBER_OR_NONE):
        try:
            arr = np.array(values, dtype=np.float64)
        except OverflowError:
            pass  # an integer beyond float range: take the slow path
        else:
            bad = ~np.isfinite(arr)
            if type(None) in types and bad.any():
                bad &= np.fromiter((v is not None for v in values), bool, n)
            return arr, bad
    arr = np.full(n, np.nan)
    bad = np.zeros(n, dtype=bool)
    for i, v in enumerate(values):
        t = type(v)
        if t is float or t is int:
            try:
                arr[i] = v
            except OverflowError:
                bad[i] = True
                continue
            bad[i] = not np.isfinite(arr[i])
        elif v is None:
            bad[i] = required
        elif iso and t is str:
            arr[i] = _iso_ts(v)
            bad[i] = not np.isfinite(arr[i])
        else:
            bad[i] = True
    return arr, bad


def _iso_ts(text: str) -> float:
    """UTC epoch seconds of an ISO 8601 time with an offset; NaN if not one."""
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        return np.nan
    return t.timestamp() if t.tzinfo is not None else np.nan


def _top_level(topic: str, payload: bytes | str) -> tuple[str, list[Any]]:
    """Gateway and readings of a telemetry message, or :class:`ProtocolError`."""
    gateway = gateway_of(topic)
    if gateway is None or not topic.endswith("/telemetry"):
        raise ProtocolError(
            f"{topic!r} is not a telemetry topic: publish readings to gf/v1/<gateway>/telemetry"
        )
    obj = load_json(payload, MAX_GATEWAY_MESSAGE_BYTES, f"telemetry on {topic}")
    unknown = obj.keys() - _TOP_KEYS
    if unknown:
        raise ProtocolError(
            f"telemetry on {topic}: unknown field(s) {sorted(unknown)}; "
            f"v1 allows only {sorted(_TOP_KEYS)}"
        )
    named = obj.get("gateway")
    if named != gateway:
        raise ProtocolError(
            f'telemetry on {topic}: "gateway" is {short_repr(named)} but the topic says '
            f"{gateway!r}: a gateway publishes only its own readings, under its own id"
        )
    readings = obj.get("readings")
    if type(readings) is not list:
        raise ProtocolError(
            f'telemetry on {topic}: "readings" must be an array of readings, got '
            f"{short_repr(readings)}"
        )
    if len(readings) > MAX_READINGS:
        raise ProtocolError(
            f"telemetry on {topic}: {len(readings)} readings, more than the {MAX_READINGS} "
            "allowed in one message: split them into several messages"
        )
    return gateway, readings


def decode_telemetry(
    topic: str,
    payload: bytes | str,
    now: float,
    *,
    max_future_s: float = MAX_CLOCK_SKEW_S,
    max_past_s: float = MAX_READING_AGE_S,
) -> DecodedTelemetry:
    """Decode a telemetry message into a batch of its valid readings.

    Parameters
    ----------
    topic
        Topic it arrived on, ``gf/v1/{gateway}/telemetry``; the payload must name the same
        gateway.
    payload
        The MQTT payload (UTF-8 JSON).
    now
        Service clock [UTC epoch s]; readings with ``ts`` beyond ``now + max_future_s`` or
        before ``now - max_past_s`` are refused (clock skew, replayed backlog).
    max_future_s, max_past_s
        Tolerances on ``ts`` around ``now`` [s].

    Returns
    -------
    DecodedTelemetry
        ``batch`` holds only valid readings (``rows=None``; ids are not checked against
        any fleet), ``rejected`` one :class:`Rejection` per refused reading.

    Raises
    ------
    ProtocolError
        When the message as a whole is unusable (not JSON, not an object, unsupported
        version, gateway mismatch, ``readings`` not an array or too long).

    """
    many = decode_telemetry_many(
        [(topic, payload)], now, max_future_s=max_future_s, max_past_s=max_past_s
    )
    return many.message(0)


@dataclass(frozen=True)
class DecodedTelemetryMany:
    """Several telemetry messages decoded in one pass: all their valid readings in one batch.

    Message ``j`` is ``items[j]`` of :func:`decode_telemetry_many`. Its valid readings are
    the rows of ``batch`` where ``row_message == j`` (contiguous, in reading order), its
    refused readings ``rejected[j]``; if it was unusable as a whole, ``errors[j]`` is the
    :class:`ProtocolError` (and ``gateways[j]`` is ``None``).
    """

    batch: TelemetryBatch
    """Valid readings of every message, message after message; extras columns are the union
    over all messages (NaN where a reading has no such value)."""
    row_message: IntArray
    """Message of each row of ``batch``."""
    row_index: IntArray
    """Position of each row of ``batch`` among its message's ``readings``."""
    gateways: list[str | None]
    received: list[int]
    """Readings in each message, valid or not (0 for a message refused whole)."""
    rejected: list[list[Rejection]]
    errors: list[ProtocolError | None]
    _readings: list[Any] = field(repr=False, compare=False)
    """Every reading of every usable message, flat (for per-message extras keys)."""
    _starts: list[int] = field(repr=False, compare=False)
    """Offset of each message's first reading in ``_readings``."""

    def __len__(self) -> int:
        return len(self.errors)

    def message(self, j: int) -> DecodedTelemetry:
        """Message ``j`` as :func:`decode_telemetry` gives it (raises its ProtocolError)."""
        err = self.errors[j]
        if err is not None:
            raise err
        gateway, n = self.gateways[j], self.received[j]
        assert gateway is not None
        if n == 0:
            return DecodedTelemetry(gateway, TelemetryBatch.empty(), [], 0)
        lo, hi = np.searchsorted(self.row_message, [j, j + 1]).tolist()
        start = self._starts[j]
        dicts = [r.get("extras") for r in self._readings[start : start + n] if type(r) is dict]
        keys = set().union(*(e for e in dicts if type(e) is dict)) & _EXTRAS
        b = self.batch
        batch = TelemetryBatch(
            b.device_ids[lo:hi],
            b.ts[lo:hi],
            b.p_kw[lo:hi],
            b.soc[lo:hi],
            b.p_baseline_kw[lo:hi],
            {k: b.extras[k][lo:hi] for k in sorted(keys)},
        )
        return DecodedTelemetry(gateway, batch, list(self.rejected[j]), n)


def decode_telemetry_many(
    items: Sequence[tuple[str, bytes | str]],
    now: float | npt.ArrayLike,
    *,
    max_future_s: float = MAX_CLOCK_SKEW_S,
    max_past_s: float = MAX_READING_AGE_S,
) -> DecodedTelemetryMany:
    """Decode many telemetry messages in one pass (one batch of all their valid readings).

    The whole-message checks run message by message, the per-reading checks once over all
    readings of all messages (NumPy). Same rules, reasons and messages as
    :func:`decode_telemetry` applied to each ``(topic, payload)`` in turn (duplicates are
    looked for within a message only), at a fraction of the cost per message when
    messages are small.

    Parameters
    ----------
    items
        ``(topic, payload)`` of each message.
    now
        Service clock [UTC epoch s]: one value for all messages, or one per message (e.g.
        when each was received).
    max_future_s, max_past_s
        Tolerances on ``ts`` around ``now`` [s].

    """
    m = len(items)
    nows = np.broadcast_to(np.asarray(now, dtype=np.float64), (m,))
    gateways: list[str | None] = [None] * m
    errors: list[ProtocolError | None] = [None] * m
    sizes = [0] * m
    starts = [0] * m
    rejected: list[list[Rejection]] = [[] for _ in range(m)]
    readings: list[Any] = []
    for j, (topic, payload) in enumerate(items):
        starts[j] = len(readings)
        try:
            gateway, message_readings = _top_level(topic, payload)
        except ProtocolError as e:
            errors[j] = e
            continue
        gateways[j] = gateway
        sizes[j] = len(message_readings)
        readings += message_readings
    n = len(readings)
    if n == 0:
        z = np.zeros(0, dtype=np.int64)
        return DecodedTelemetryMany(
            TelemetryBatch.empty(), z, z, gateways, sizes, rejected, errors, readings, starts
        )
    msg = np.repeat(np.arange(m, dtype=np.int64), sizes)
    index = np.arange(n, dtype=np.int64) - np.asarray(starts, dtype=np.int64)[msg]
    now_r: float | FloatArray = float(nows[0]) if m == 1 else nows[msg]

    code = np.zeros(n, dtype=np.int8)
    checks: Checks = []
    rs: list[dict[str, Any]] = readings
    if not all(type(r) is dict for r in rs):
        _mark(checks, np.fromiter((type(r) is not dict for r in rs), bool, n), "not_an_object")
        rs = [r if type(r) is dict else _EMPTY for r in rs]
    if not all(r.keys() <= _READING_KEYS for r in rs):
        odd = np.fromiter((not r.keys() <= _READING_KEYS for r in rs), bool, n)
        _mark(checks, odd, "unknown_field")

    devs = [r.get("device") for r in rs]
    if not all(type(d) is str and 0 < len(d) <= _MAX_DEVICE_LEN for d in devs):
        ok = np.fromiter((type(d) is str and 0 < len(d) <= _MAX_DEVICE_LEN for d in devs), bool, n)
        _mark(checks, ~ok, "bad_device")

    ts, bad = _numbers([r.get("ts") for r in rs], required=True, iso=True)
    _mark(checks, bad, "bad_ts")
    _mark(checks, ts > now_r + max_future_s, "ts_in_future")
    _mark(checks, ts < now_r - max_past_s, "ts_too_old")

    p_kw, bad = _numbers([r.get("p_kw") for r in rs], required=True)
    _mark(checks, bad, "bad_p_kw")
    _mark(checks, np.abs(p_kw) > MAX_P_KW, "p_out_of_range")

    soc, bad = _numbers([r.get("soc") for r in rs], required=False)
    _mark(checks, bad, "bad_soc")
    _mark(checks, (soc < 0.0) | (soc > 1.0), "soc_out_of_range")

    base, bad = _numbers([r.get("p_baseline_kw") for r in rs], required=False)
    _mark(checks, bad, "bad_p_baseline_kw")
    _mark(checks, np.abs(base) > MAX_P_KW, "p_baseline_out_of_range")

    extras = _extras([r.get("extras") for r in rs], checks)
    _resolve(code, checks)
    dup_of = _duplicates(msg, index, devs, ts, code)

    def done(batch: TelemetryBatch, msg: IntArray, index: IntArray) -> DecodedTelemetryMany:
        return DecodedTelemetryMany(
            batch, msg, index, gateways, sizes, rejected, errors, readings, starts
        )

    if not code.any():
        devices = np.fromiter(devs, dtype=object, count=n)
        return done(TelemetryBatch(devices, ts, p_kw, soc, base, extras), msg, index)
    keep = np.flatnonzero(code == 0)
    batch = TelemetryBatch(
        np.fromiter((devs[i] for i in keep.tolist()), dtype=object, count=len(keep)),
        ts[keep],
        p_kw[keep],
        soc[keep],
        base[keep],
        {k: v[keep] for k, v in extras.items()},
    )
    refused = np.flatnonzero(code)
    for i, c, j, k in zip(
        refused.tolist(),
        code[refused].tolist(),
        msg[refused].tolist(),
        index[refused].tolist(),
        strict=True,
    ):
        rejected[j].append(
            _rejection(
                k,
                readings[i],
                _CODES[c - 1],
                float(nows[j]),
                max_future_s,
                max_past_s,
                dup_of.get(i),
            )
        )
    return done(batch, msg[keep], index[keep])


def _extras(exs: list[Any], checks: Checks) -> dict[str, FloatArray]:
    """Columns of the extras present in the batch, marking readings whose extras are bad."""
    n = len(exs)
    types = set(map(type, exs))
    if types == {type(None)}:
        return {}
    if not types <= {dict, type(None)}:
        odd = np.fromiter((e is not None and type(e) is not dict for e in exs), bool, n)
        _mark(checks, odd, "bad_extras")
        exs = [e if type(e) is dict else None for e in exs]
    dicts: list[dict[str, Any]] = [e if e is not None else _EMPTY for e in exs]
    keys: set[str] = set().union(*dicts)
    if not keys <= _EXTRAS:
        odd = np.fromiter((not e.keys() <= _EXTRAS for e in dicts), bool, n)
        _mark(checks, odd, "unknown_extra")
    out = {}
    for k in sorted(keys & _EXTRAS):
        arr, bad = _numbers([e.get(k) for e in dicts], required=False)
        _mark(checks, bad, "bad_extra")
        out[k] = arr
    return out


def _duplicates(
    msg: IntArray, index: IntArray, devs: list[Any], ts: FloatArray, code: Codes
) -> dict[int, int]:
    """Mark valid readings that repeat an earlier valid (device, ts) of their own message.

    Returns reading → position in its message of the first one (both flat positions in
    the key, the value a position in the message's ``readings``).
    """
    if code.any():
        ok = np.flatnonzero(code == 0).tolist()
        triples = [
            (j, devs[i], t) for i, j, t in zip(ok, msg[ok].tolist(), ts[ok].tolist(), strict=True)
        ]
    else:
        ok = list(range(len(devs)))
        triples = list(zip(msg.tolist(), devs, ts.tolist(), strict=True))
    if len(set(triples)) == len(triples):
        return {}
    first: dict[tuple[int, Any, float], int] = {}
    dup_of: dict[int, int] = {}
    for i, triple in zip(ok, triples, strict=True):
        f = first.setdefault(triple, i)
        if f != i:
            dup_of[i] = int(index[f])
            code[i] = _CODE["duplicate"]
    return dup_of


def _rejection(
    i: int,
    reading: Any,
    reason: str,
    now: float,
    max_future_s: float,
    max_past_s: float,
    first: int | None,
) -> Rejection:
    """The :class:`Rejection` of reading ``i``, with a message naming the offending value.

    ``first`` is the position of the reading a duplicate repeats.
    """
    r: dict[str, Any] = reading if type(reading) is dict else _EMPTY
    device = r.get("device")
    device = device if type(device) is str else None
    text = REJECT_REASONS[reason]
    if reason == "not_an_object":
        text += f" (got {short_repr(reading)})"
    elif reason == "unknown_field":
        text += f": {sorted(r.keys() - _READING_KEYS)}; allowed: {sorted(_READING_KEYS)}"
    elif reason == "unknown_extra":
        text += f": {sorted(r['extras'].keys() - _EXTRAS)}; allowed: {sorted(_EXTRAS)}"
    elif reason == "bad_extra":
        bad = {k: v for k, v in r["extras"].items() if not _finite_number(v)}
        text += f" (got {short_repr(bad)})"
    elif reason == "duplicate":
        text += f" (reading {first})"
    elif reason in ("ts_in_future", "ts_too_old"):
        ts = r["ts"] if type(r["ts"]) is not str else _iso_ts(r["ts"])
        ahead = float(ts) - now
        limit = max_future_s if ahead > 0 else max_past_s
        text += (
            f": ts {short_repr(r['ts'])} is {abs(ahead):.0f} s "
            f"{'ahead of' if ahead > 0 else 'behind'} the service clock, tolerance {limit:g} s"
            " (check the gateway's clock: NTP, UTC epoch seconds)"
        )
    else:
        name = _FIELD.get(reason, "")
        text += f" (got {name}={short_repr(r.get(name))})"
    return Rejection(i, device, reason, text)


def _finite_number(v: Any) -> bool:
    """Whether ``v`` is a JSON number (not a boolean) and finite, or null."""
    return v is None or (type(v) in _NUMBER and bool(np.isfinite(float(v))))


def encode_telemetry(
    gateway: str,
    device_ids: Sequence[str] | npt.NDArray[Any],
    ts: npt.ArrayLike,
    p_kw: npt.ArrayLike,
    soc: npt.ArrayLike | None = None,
    p_baseline_kw: npt.ArrayLike | None = None,
    extras: Mapping[str, npt.ArrayLike] | None = None,
) -> bytes:
    """Encode readings as one telemetry payload (what a gateway, or a simulated one, sends).

    Arrays are aligned with ``device_ids``. NaN or infinite values of optional fields
    (``soc``, ``p_baseline_kw``, extras) are left out of the reading: JSON cannot carry
    them and absent means "not measured". ``ts`` [UTC epoch s] and ``p_kw`` [kW] must be
    finite.
    """
    topic = telemetry_topic(gateway)  # checks the id
    n = len(device_ids)
    ts_a = np.asarray(ts, dtype=np.float64)
    p_a = np.asarray(p_kw, dtype=np.float64)
    if ts_a.shape != (n,) or p_a.shape != (n,):
        raise ValueError(f"ts and p_kw must have one value per device ({n})")
    if not (np.isfinite(ts_a).all() and np.isfinite(p_a).all()):
        raise ValueError(f"{topic}: ts and p_kw must be finite; drop readings without them")
    if n > MAX_READINGS:
        raise ValueError(f"{n} readings: at most {MAX_READINGS} per message, split them")
    parts = [
        f'{{"device":{encode_basestring_ascii(d)},"ts":{t!r},"p_kw":{p!r}'
        for d, t, p in zip(list(device_ids), ts_a.tolist(), p_a.tolist(), strict=True)
    ]
    for name, values in (("soc", soc), ("p_baseline_kw", p_baseline_kw)):
        if values is not None:
            parts = [a + b for a, b in zip(parts, _fragments(name, values, n), strict=True)]
    if extras:
        unknown = extras.keys() - _EXTRAS
        if unknown:
            raise ValueError(f"unknown extras {sorted(unknown)}; allowed: {sorted(_EXTRAS)}")
        cols = [_fragments(k, v, n) for k, v in extras.items()]
        inner = ["".join(row) for row in zip(*cols, strict=True)]
        parts = [
            a + (',"extras":{' + e[1:] + "}" if e else "")
            for a, e in zip(parts, inner, strict=True)
        ]
    body = "},".join(parts) + "}" if parts else ""
    head = f'{{"v":{VERSION},"gateway":{encode_basestring_ascii(gateway)},"readings":['
    return (head + body + "]}").encode()


def _fragments(name: str, values: npt.ArrayLike, n: int) -> list[str]:
    """``,"name":value`` for each finite value, ``""`` where NaN or infinite."""
    a = np.asarray(values, dtype=np.float64)
    if a.shape != (n,):
        raise ValueError(f"{name} must have one value per device ({n})")
    key = f',"{name}":'
    return [key + repr(x) if x - x == 0.0 else "" for x in a.tolist()]
