"""The read-model document the leader publishes on the bus, and its parts read back.

One document per control cycle (``docs/replicas.md``): version ``v``, sequence ``seq``
(+1 per document of one leader), ``ts`` (the leader's cycle time, UTC epoch s),
``sent_at`` (wall clock when built), ``leader`` (its name), then the fleet summary,
flexibility by grouping (``flex_duration_h``, whole fleet), the events with their
figures, the autopilot's status, the envelopes in force or ahead, a health subset, and the
history increments of this cycle (``history``: fleet power by kind; ``group_history``:
once a minute, power by grid node, programme and region).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from gridflock.api.runtime import EventView
from gridflock.domain.envelopes import Envelope, EnvelopeKind, EnvelopeSource, TargetType
from gridflock.domain.events import Event, EventSource, EventStatus, Scope
from gridflock.service.bus import SCHEMA_VERSION

if TYPE_CHECKING:
    from gridflock.service.runtime import Runtime

__all__ = [
    "FLEX_BY",
    "HEALTH_KEYS",
    "envelope_from_json",
    "envelope_to_json",
    "leader_document",
    "view_from_json",
    "view_to_json",
]

#: What of the leader's health a replica shows (the rest describes the leader's own links).
HEALTH_KEYS = ("status", "degraded", "parts", "database", "mqtt", "devices_online", "devices_total")

#: Events carried per document (newest first): more than any dashboard page shows.
MAX_EVENTS = 500

#: Groupings of the flexibility carried each cycle. Not ``site``: one row per site would
#: make the document grow with the fleet (and cost the leader ~0.1 s per 2,000 sites each
#: cycle); a replica forwards ``by=site`` to the leader.
FLEX_BY = ("kind", "grid_node", "program", "region")


def view_to_json(v: EventView) -> dict[str, Any]:
    """An event and its live figures as JSON values (times UTC epoch s, kW)."""
    e = v.event
    return {
        "id": e.id,
        "target_kw": e.target_kw,
        "start": e.start,
        "end": e.end,
        "scope": str(e.scope),
        "source": e.source.value,
        "status": e.status.value,
        "created_by": e.created_by,
        "priority": e.priority,
        "delivered_kw": v.delivered_kw,
        "delivered_pct": v.delivered_pct,
        "tracking_rmse_pct": v.tracking_rmse_pct,
        "time_to_90pct_s": v.time_to_90pct_s,
        "non_responders": v.non_responders,
        "shortfall_kw": v.shortfall_kw,
        "commands_sent": v.commands_sent,
    }


def view_from_json(d: dict[str, Any]) -> EventView:
    """The inverse of :func:`view_to_json`."""
    event = Event(
        id=d["id"],
        target_kw=d["target_kw"],
        start=d["start"],
        end=d["end"],
        scope=Scope.parse(d["scope"]),
        source=EventSource(d["source"]),
        status=EventStatus(d["status"]),
        created_by=d["created_by"],
        priority=d["priority"],
    )
    return EventView(
        event,
        d["delivered_kw"],
        d["delivered_pct"],
        d["tracking_rmse_pct"],
        d["time_to_90pct_s"],
        d["non_responders"],
        d["shortfall_kw"],
        d["commands_sent"],
    )


def envelope_to_json(e: Envelope) -> dict[str, Any]:
    """An envelope as JSON values (times UTC epoch s, limits kW)."""
    return {
        "id": e.id,
        "target_type": e.target_type.value,
        "target_id": e.target_id,
        "start": e.start,
        "end": e.end,
        "import_limit_kw": e.import_limit_kw,
        "export_limit_kw": e.export_limit_kw,
        "kind": e.kind.value,
        "source": e.source.value,
        "issued_at": e.issued_at,
    }


def envelope_from_json(d: dict[str, Any]) -> Envelope:
    """The inverse of :func:`envelope_to_json`."""
    return Envelope(
        id=d["id"],
        target_type=TargetType(d["target_type"]),
        target_id=d["target_id"],
        start=d["start"],
        end=d["end"],
        import_limit_kw=d["import_limit_kw"],
        export_limit_kw=d["export_limit_kw"],
        kind=EnvelopeKind(d["kind"]),
        source=EnvelopeSource(d["source"]),
        issued_at=d["issued_at"],
    )


def leader_document(runtime: Runtime, seq: int, leader: str, now: float) -> dict[str, Any]:
    """The read model after the cycle at ``now``, as the document of sequence ``seq``."""
    rm = runtime.read_model
    hours = runtime.settings.flex_duration_h
    flex = rm.flexibility_by(hours, FLEX_BY)
    fleet_sample, group_sample = rm.last_samples()
    health = runtime.health()
    doc: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "seq": seq,
        "ts": now,
        "sent_at": time.time(),
        "leader": leader,
        "interval_s": runtime.settings.control_interval_s,
        "fleet": rm.fleet_summary(),
        "flex_duration_h": hours,
        "flexibility": {
            by: {str(c): df[c].tolist() for c in df.columns} for by, df in flex.items()
        },
        "events": [view_to_json(v) for v in runtime.events()[:MAX_EVENTS]],
        "autopilot": runtime.autopilot_status(),
        "envelopes": [envelope_to_json(e) for e in runtime.envelopes.find()],
        "health": {k: health[k] for k in HEALTH_KEYS if k in health},
        "kinds": [k.value for k in runtime.state.kinds],
        "history": None,
        "group_history": None,
    }
    if fleet_sample is not None and fleet_sample[0] == now:
        doc["history"] = [fleet_sample[0], fleet_sample[1].tolist()]
    if group_sample is not None and group_sample[0] == now:
        doc["group_history"] = [
            group_sample[0],
            {by: [lab.tolist(), val.tolist()] for by, (lab, val) in group_sample[1].items()},
        ]
    return doc
