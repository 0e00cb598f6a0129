"""Operating envelopes: time-varying import/export limits a grid operator sets.

An envelope limits the net power at a site's connection point, or the flow through a
grid node, over ``[start, end)`` (UTC epoch seconds): ``import_limit_kw`` caps the
power drawn from the grid, ``export_limit_kw`` the power fed into it (both magnitudes
[kW, >= 0]; export 0 is zero export; None leaves that direction to the static limit).

Overlaps (docs/envelopes.md). IEEE 2030.5 (clause 10.2.3), on which CSIP-AUS builds,
lets a newer control of the same program supersede an older one where they overlap, and
ranks different programs by primacy. Gridflock follows it per direction:

* envelopes of the **same target and source** (one issuer's programme): the newest
  ``issued_at`` wins where they overlap, so an operator may relax an envelope by
  issuing a new one; equal ``issued_at`` keep the tightest;
* envelopes from **different sources** (api, csip, file), and the static limit, all
  hold at once: the tightest wins (there is no primacy between them to rank);
* an envelope on a **grid node** and one on a **site below it** are different targets:
  both hold.

German §14a EnWG (kind ``para14a``): the operator may dim the consumption of
controllable devices (heat pumps, EV chargers, batteries), but never below 4.2 kW per
device; an import limit of this kind is raised to that floor where it is applied to a
fleet (``fleet.envelopes``).

:func:`resolve` turns envelopes into one limit per target and time step, vectorised
over every envelope at once (fleet-scale: one envelope per site and 15 minutes).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from gridflock.domain.errors import Problem, ValidationError
from gridflock.domain.messages import FloatArray, IntArray, StrArray

__all__ = [
    "CSV_COLUMNS",
    "MAX_AHEAD_S",
    "MAX_LIMIT_KW",
    "PARA14A_FLOOR_KW",
    "Envelope",
    "EnvelopeArrays",
    "EnvelopeKind",
    "EnvelopeSource",
    "Resolved",
    "TargetType",
    "parse_csip",
    "parse_csv",
    "parse_envelopes",
    "resolve",
]

#: §14a EnWG: a controllable device may be dimmed to no less than this [kW].
PARA14A_FLOOR_KW = 4.2
#: Largest limit accepted [kW]: 1 GW, far above any distribution node.
MAX_LIMIT_KW = 1_000_000.0
#: An envelope may end at most this far after the time it is received [s] (366 days).
MAX_AHEAD_S = 366 * 86400.0
#: Earliest start accepted (2000-01-01 UTC) [epoch s].
MIN_TS = 946_684_800.0
#: Most envelopes in one batch.
MAX_BATCH = 200_000

CSV_COLUMNS = (
    "id",
    "target_type",
    "target_id",
    "start",
    "end",
    "import_limit_kw",
    "export_limit_kw",
    "kind",
    "issued_at",
)


class TargetType(StrEnum):
    """What an envelope limits: a site's connection point or a grid node's flow."""

    SITE = "site"
    NODE = "node"


class EnvelopeKind(StrEnum):
    """Why the operator set it."""

    DOE = "doe"  #: dynamic operating envelope (import and/or export)
    FLEXIBLE_EXPORT = "flexible_export"  #: a flexible-export connection (export only)
    PARA14A = "para14a"  #: German §14a EnWG dimming (import only, 4.2 kW floor per device)


class EnvelopeSource(StrEnum):
    """How it arrived."""

    API = "api"
    CSIP = "csip"
    FILE = "file"


@dataclass(frozen=True)
class Envelope:
    """One operating envelope; times are UTC epoch seconds, limits magnitudes [kW]."""

    id: str
    target_type: TargetType
    target_id: str
    start: float
    end: float
    import_limit_kw: float | None
    export_limit_kw: float | None
    kind: EnvelopeKind = EnvelopeKind.DOE
    source: EnvelopeSource = EnvelopeSource.API
    issued_at: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The envelope as JSON-ready values (times ISO 8601 UTC)."""
        return {
            "id": self.id,
            "target_type": self.target_type.value,
            "target_id": self.target_id,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "import_limit_kw": self.import_limit_kw,
            "export_limit_kw": self.export_limit_kw,
            "kind": self.kind.value,
            "source": self.source.value,
            "issued_at": _iso(self.issued_at),
        }


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


# ------------------------------------------------------------------------------ parsing


def _time(value: Any, field: str, problems: list[Problem], src: str, entry: str) -> float | None:
    """An ISO 8601 time with its offset, or UTC epoch seconds, as epoch seconds."""
    if isinstance(value, bool) or value is None or value == "":
        problems.append(Problem(src, entry, field, "is required (ISO 8601 with offset, UTC)"))
        return None
    if isinstance(value, int | float):
        ts = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            problems.append(Problem(src, entry, field, f"is not an ISO 8601 time: {text[:40]!r}"))
            return None
        if dt.tzinfo is None:
            problems.append(
                Problem(src, entry, field, f"{text[:40]!r} has no UTC offset; add Z or +hh:mm")
            )
            return None
        ts = dt.timestamp()
    else:
        problems.append(Problem(src, entry, field, f"must be a time, got {type(value).__name__}"))
        return None
    if not math.isfinite(ts):
        problems.append(Problem(src, entry, field, "must be a finite time"))
        return None
    return ts


def _limit(value: Any, field: str, problems: list[Problem], src: str, entry: str) -> float | None:
    """A limit [kW]: None/empty for none, else a finite number in [0, MAX_LIMIT_KW]."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        problems.append(Problem(src, entry, field, "must be a number of kW, got a boolean"))
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        problems.append(Problem(src, entry, field, f"must be a number of kW, got {value!r:.40}"))
        return None
    if not math.isfinite(x) or x < 0 or x > MAX_LIMIT_KW:
        problems.append(
            Problem(
                src,
                entry,
                field,
                f"must be within [0, {MAX_LIMIT_KW:g}] kW (a magnitude; 0 = none allowed), "
                f"got {x:g}",
            )
        )
        return None
    return x


def _enum(
    cls: type[StrEnum], value: Any, default: StrEnum, problems: list[Problem], src: str, entry: str
) -> Any:
    if value is None or value == "":
        return default
    try:
        return cls(str(value))
    except ValueError:
        names = ", ".join(m.value for m in cls)
        problems.append(Problem(src, entry, cls.__name__, f"must be one of {names}, got {value!r}"))
        return default


def _one(
    raw: Any, k: int, source: EnvelopeSource, now: float, problems: list[Problem], src: str
) -> Envelope | None:
    """One envelope from its mapping, every problem of it appended."""
    entry = f"envelope {k}"
    if not isinstance(raw, Mapping):
        problems.append(Problem(src, entry, "", "must be an object"))
        return None
    if raw.get("id"):
        entry = f"envelope {str(raw['id'])[:64]!r}"
    before = len(problems)
    eid = str(raw.get("id") or uuid.uuid4().hex)
    if len(eid) > 128:
        problems.append(Problem(src, entry, "id", "must be at most 128 characters"))
    ttype = _enum(TargetType, raw.get("target_type"), TargetType.SITE, problems, src, entry)
    target = raw.get("target_id")
    if not isinstance(target, str) or not target.strip():
        problems.append(Problem(src, entry, "target_id", "is required: a site or grid node id"))
        target = ""
    kind = _enum(EnvelopeKind, raw.get("kind"), EnvelopeKind.DOE, problems, src, entry)
    start = _time(raw.get("start"), "start", problems, src, entry)
    end = _time(raw.get("end"), "end", problems, src, entry)
    issued = (
        now
        if raw.get("issued_at") in (None, "")
        else _time(raw.get("issued_at"), "issued_at", problems, src, entry)
    )
    imp = _limit(raw.get("import_limit_kw"), "import_limit_kw", problems, src, entry)
    exp = _limit(raw.get("export_limit_kw"), "export_limit_kw", problems, src, entry)
    if imp is None and exp is None and len(problems) == before:
        problems.append(
            Problem(src, entry, "import_limit_kw/export_limit_kw", "give at least one limit")
        )
    if kind is EnvelopeKind.PARA14A and exp is not None:
        problems.append(
            Problem(src, entry, "export_limit_kw", "§14a dimming limits consumption only")
        )
    if kind is EnvelopeKind.FLEXIBLE_EXPORT and imp is not None:
        problems.append(Problem(src, entry, "import_limit_kw", "a flexible export is export only"))
    if start is not None and end is not None:
        if not end > start:
            problems.append(Problem(src, entry, "end", "must be after start"))
        if start < MIN_TS:
            problems.append(Problem(src, entry, "start", "must be after 2000-01-01"))
        if end > now + MAX_AHEAD_S:
            problems.append(
                Problem(src, entry, "end", "is more than 366 days ahead; send it nearer the time")
            )
    if issued is not None and issued > now + 300.0:
        problems.append(Problem(src, entry, "issued_at", "is in the future (beyond 5 minutes)"))
    if len(problems) > before or start is None or end is None or issued is None:
        return None
    return Envelope(eid, ttype, target.strip(), start, end, imp, exp, kind, source, issued)


def parse_envelopes(
    raw: Any, *, source: EnvelopeSource = EnvelopeSource.API, now: float, src: str = "envelopes"
) -> list[Envelope]:
    """Validate a batch (a list of objects); raises ``ValidationError`` with every problem.

    ``now`` [UTC epoch s] bounds how far ahead an envelope may end, and is the
    ``issued_at`` of an envelope that gives none.
    """
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
        raise ValidationError([Problem(src, "", "", "must be a list of envelopes")])
    if len(raw) > MAX_BATCH:
        raise ValidationError(
            [Problem(src, "", "", f"at most {MAX_BATCH} envelopes per batch, got {len(raw)}")]
        )
    problems: list[Problem] = []
    out = [_one(r, k, source, now, problems, src) for k, r in enumerate(raw)]
    seen: set[str] = set()
    for e in out:
        if e is not None:
            if e.id in seen:
                problems.append(Problem(src, f"envelope {e.id!r}", "id", "appears twice"))
            seen.add(e.id)
    if problems:
        raise ValidationError(problems)
    return [e for e in out if e is not None]


def parse_csv(text: str, *, now: float, src: str = "envelopes.csv") -> list[Envelope]:
    """Envelopes from CSV with a header of :data:`CSV_COLUMNS`.

    ``id``, ``kind`` and ``issued_at`` are optional; times ISO 8601 with an offset,
    limits in kW, an empty cell is no limit.
    """
    reader = csv.DictReader(io.StringIO(text))
    fields = set(reader.fieldnames or ())
    missing = {"target_type", "target_id", "start", "end"} - fields
    if missing:
        raise ValidationError(
            [Problem(src, "header", ", ".join(sorted(missing)), "missing column(s)")]
        )
    rows = [{k: (v.strip() if isinstance(v, str) else v) for k, v in r.items()} for r in reader]
    return parse_envelopes(rows, source=EnvelopeSource.FILE, now=now, src=src)


# IEEE 2030.5 EventStatus.currentStatus: 2/3 cancelled, 4 superseded
_DROPPED_STATUS = {2, 3, 4}


def _active_power_kw(value: Any, field: str, problems: list[Problem], entry: str) -> float | None:
    """A 2030.5 ActivePower ``{"value": v, "multiplier": m}`` (W = v * 10^m) in kW."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        problems.append(Problem("csip", entry, field, "must be {value, multiplier}"))
        return None
    v, m = value.get("value"), value.get("multiplier", 0)
    if isinstance(v, bool) or not isinstance(v, int | float) or not isinstance(m, int):
        problems.append(Problem("csip", entry, field, "value must be a number, multiplier an int"))
        return None
    if not -9 <= m <= 9:
        problems.append(Problem("csip", entry, field, f"multiplier must be in [-9, 9], got {m}"))
        return None
    return float(v) * 10.0**m / 1000.0


def parse_csip(doc: Any, *, target_type: TargetType, target_id: str, now: float) -> list[Envelope]:
    """Envelopes from a CSIP-AUS ``DERControlList`` in JSON (docs/envelopes.md).

    Each ``DERControl`` with ``csipaus:opModImpLimW`` / ``csipaus:opModExpLimW`` (the
    prefix is optional) in its ``DERControlBase`` becomes one envelope on the given
    target: ``mRID`` its id, ``creationTime`` its ``issued_at``, ``interval.start`` and
    ``interval.duration`` its window. Cancelled and superseded controls are skipped.
    """
    problems: list[Problem] = []
    controls = doc.get("DERControl") if isinstance(doc, Mapping) else None
    if isinstance(controls, Mapping):
        controls = [controls]
    if not isinstance(controls, list):
        raise ValidationError([Problem("csip", "", "DERControl", "must be a list of controls")])
    raw: list[dict[str, Any]] = []
    for k, c in enumerate(controls):
        entry = f"DERControl {k}"
        if not isinstance(c, Mapping):
            problems.append(Problem("csip", entry, "", "must be an object"))
            continue
        status = (c.get("EventStatus") or {}).get("currentStatus")
        if status in _DROPPED_STATUS:
            continue
        base = c.get("DERControlBase") or {}
        interval = c.get("interval") or {}
        if not isinstance(base, Mapping) or not isinstance(interval, Mapping):
            problems.append(Problem("csip", entry, "", "DERControlBase and interval are objects"))
            continue
        imp = _active_power_kw(
            base.get("csipaus:opModImpLimW", base.get("opModImpLimW")),
            "opModImpLimW",
            problems,
            entry,
        )
        exp = _active_power_kw(
            base.get("csipaus:opModExpLimW", base.get("opModExpLimW")),
            "opModExpLimW",
            problems,
            entry,
        )
        start, duration = interval.get("start"), interval.get("duration")
        if not isinstance(start, int | float) or not isinstance(duration, int | float):
            problems.append(Problem("csip", entry, "interval", "needs numeric start and duration"))
            continue
        raw.append(
            {
                "id": c.get("mRID") or None,
                "target_type": target_type.value,
                "target_id": target_id,
                "start": start,
                "end": start + duration,
                "import_limit_kw": imp,
                "export_limit_kw": exp,
                "kind": EnvelopeKind.DOE.value,
                "issued_at": c.get("creationTime"),
            }
        )
    try:
        out = parse_envelopes(raw, source=EnvelopeSource.CSIP, now=now, src="csip")
    except ValidationError as exc:
        problems.extend(exc.problems)
        out = []
    if problems:
        raise ValidationError(problems)
    return out


# ------------------------------------------------------------------------------ the rule


@dataclass(frozen=True)
class Resolved:
    """Limits per target and step after the overlap rule [kW, inf = no envelope].

    ``target_type``/``target_id`` name the rows of ``import_kw``/``export_kw``
    (n_targets, n_steps); step ``k`` is ``[edges[k], edges[k + 1])``.
    """

    target_type: StrArray
    target_id: StrArray
    edges: FloatArray
    import_kw: FloatArray
    export_kw: FloatArray


@dataclass(frozen=True)
class EnvelopeArrays:
    """Envelopes as columns, built once per batch so that resolving them is array work.

    ``target_type``/``target_id`` (n_targets,) name the distinct targets; per envelope:
    ``tgt`` its target's row, ``src``/``kind`` the positions of its source and kind in
    their enums, times [UTC epoch s], limits [kW, NaN = none in that direction].
    """

    target_type: StrArray
    target_id: StrArray
    tgt: IntArray
    src: IntArray
    kind: IntArray
    start: FloatArray
    end: FloatArray
    issued: FloatArray
    imp: FloatArray
    exp: FloatArray

    def __len__(self) -> int:
        return len(self.tgt)

    @staticmethod
    def of(envelopes: Iterable[Envelope]) -> EnvelopeArrays:
        """The columns of ``envelopes`` (one pass over the objects)."""
        env = list(envelopes)
        # targets by (type, id) through hashing, not sorting: this runs once per batch
        # over every envelope (hundreds of thousands at fleet scale)
        is_node = np.array([x.target_type is TargetType.NODE for x in env], bool)
        ids = np.array([x.target_id for x in env], dtype=object)
        id_code, id_uniq = pd.factorize(ids) if len(env) else (np.zeros(0, np.int64), [])
        tgt, pair = pd.factorize(np.asarray(id_code, np.int64) * 2 + is_node)
        pair = np.asarray(pair, np.int64)
        id_uniq = np.asarray(id_uniq, dtype=object)
        sources = {m: i for i, m in enumerate(EnvelopeSource)}
        kinds = {m: i for i, m in enumerate(EnvelopeKind)}
        return EnvelopeArrays(
            np.where(pair % 2 == 1, TargetType.NODE.value, TargetType.SITE.value).astype(object),
            id_uniq[pair // 2] if len(pair) else np.zeros(0, dtype=object),
            np.asarray(tgt, np.int64),
            np.array([sources[x.source] for x in env], np.int64),
            np.array([kinds[x.kind] for x in env], np.int64),
            np.array([x.start for x in env], np.float64),
            np.array([x.end for x in env], np.float64),
            np.array([x.issued_at for x in env], np.float64),
            np.array([np.nan if x.import_limit_kw is None else x.import_limit_kw for x in env]),
            np.array([np.nan if x.export_limit_kw is None else x.export_limit_kw for x in env]),
        )

    def take(self, rows: IntArray) -> EnvelopeArrays:
        """The envelopes at ``rows`` (the same target table)."""
        return dataclasses.replace(
            self,
            tgt=self.tgt[rows],
            src=self.src[rows],
            kind=self.kind[rows],
            start=self.start[rows],
            end=self.end[rows],
            issued=self.issued[rows],
            imp=self.imp[rows],
            exp=self.exp[rows],
        )


def resolve(envelopes: Iterable[Envelope] | EnvelopeArrays, edges: FloatArray) -> Resolved:
    """The limit of every target over each step ``[edges[k], edges[k + 1])``.

    The strictest limit that holds at any instant of the step (a step is a hard limit
    throughout): per direction, the newest envelope of each (target, source) holds at
    each instant, and of those, from every source, the smallest limit.
    """
    a = envelopes if isinstance(envelopes, EnvelopeArrays) else EnvelopeArrays.of(envelopes)
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or len(e) < 2 or not (np.diff(e) > 0).all():
        raise ValueError("edges must be at least two increasing times")
    k = len(a.target_id)
    return Resolved(
        a.target_type,
        a.target_id,
        e,
        _resolve_one(a.tgt, a.src, a.start, a.end, a.issued, a.imp, e, k),
        _resolve_one(a.tgt, a.src, a.start, a.end, a.issued, a.exp, e, k),
    )


def _resolve_one(
    tgt: IntArray,
    src: IntArray,
    start: FloatArray,
    end: FloatArray,
    issued: FloatArray,
    limit: FloatArray,
    edges: FloatArray,
    n_targets: int,
) -> FloatArray:
    """One direction of :func:`resolve`; rows with a NaN limit say nothing here.

    The steps are first cut at every envelope boundary inside them, so that on each
    piece an envelope covers all or nothing and "newest wins" is exact there; the
    pieces' minimum is the step's limit.
    """
    n_steps = len(edges) - 1
    has = np.isfinite(limit)
    if not has.any():
        return np.full((n_targets, n_steps), np.inf)
    tgt, src = tgt[has], src[has]
    start, end, issued, limit = start[has], end[has], issued[has], limit[has]
    cuts = np.concatenate([start, end])
    cuts = cuts[(cuts > edges[0]) & (cuts < edges[-1])]
    fine = np.union1d(edges, cuts)
    out = _resolve_pieces(tgt, src, start, end, issued, limit, fine, n_targets)
    first = np.searchsorted(fine, edges[:-1])
    reduced: FloatArray = np.minimum.reduceat(out, first, axis=1)
    return reduced


def _resolve_pieces(
    tgt: IntArray,
    src: IntArray,
    start: FloatArray,
    end: FloatArray,
    issued: FloatArray,
    limit: FloatArray,
    edges: FloatArray,
    n_targets: int,
) -> FloatArray:
    """Limits over pieces no envelope boundary cuts (each envelope covers all or none)."""
    n_steps = len(edges) - 1
    out = np.full((n_targets, n_steps), np.inf)
    k0 = np.searchsorted(edges[1:], start, side="right")  # first step ending after start
    k1 = np.searchsorted(edges[:-1], end, side="left")  # steps starting before end
    count = np.maximum(k1 - k0, 0)
    row = np.repeat(np.arange(len(tgt)), count)
    first = np.cumsum(count) - count
    step = k0[row] + (np.arange(len(row)) - first[row])
    if not len(row):
        return out
    n_src = len(EnvelopeSource)
    cell = tgt[row] * n_steps + step
    group = (cell * n_src) + src[row]
    iss, lim = issued[row], limit[row]
    # sorted by (group, issued): per group the newest issue is its last entry
    order = np.lexsort((iss, group))
    g_sorted = group[order]
    last = np.flatnonzero(np.r_[g_sorted[1:] != g_sorted[:-1], True])
    newest = np.empty(len(group))
    newest[order] = np.repeat(iss[order][last], np.diff(np.r_[-1, last]))
    keep = iss >= newest
    # per (target, step) the smallest limit kept: sorted segments and one reduceat
    c, v = cell[keep], lim[keep]
    o = np.argsort(c, kind="stable")
    c, v = c[o], v[o]
    heads = np.flatnonzero(np.r_[True, c[1:] != c[:-1]])
    out.reshape(-1)[c[heads]] = np.minimum.reduceat(v, heads)
    return out
