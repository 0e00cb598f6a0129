"""What the store's service tables give back: API keys, gateways, audit records, dead letters.

Plain frozen dataclasses (never ORM rows), with aware UTC datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gridflock.domain.auth import Role

__all__ = [
    "ApiKey",
    "AuditRecord",
    "AutopilotDecision",
    "AutopilotProposal",
    "DeadLetter",
    "GatewayRecord",
]


@dataclass(frozen=True)
class ApiKey:
    """An API key's stored facts; never its secret, which is shown once at creation."""

    id: str
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    @property
    def active(self) -> bool:
        """Whether the key still authenticates (not revoked)."""
        return self.revoked_at is None


@dataclass(frozen=True)
class GatewayRecord:
    """A gateway allowed on the broker.

    ``password_hash`` is in Mosquitto's PBKDF2-SHA512 format (``$7$...``), made by the
    caller; ``groups`` are the broadcast groups whose activations it may read.
    """

    id: str
    kind: str
    site_id: str | None
    groups: tuple[str, ...]
    password_hash: str
    created_at: datetime
    last_seen_at: datetime | None = None


@dataclass(frozen=True)
class AuditRecord:
    """One audit record: ``actor`` did ``action`` to ``subject`` at ``ts``."""

    id: int
    ts: datetime
    actor: str
    action: str
    subject: str
    detail: dict[str, Any] | None = None


@dataclass(frozen=True)
class DeadLetter:
    """A write the database refused for its content: what it was, why, and the records."""

    id: int
    ts: datetime
    what: str
    reason: str
    rows: int
    payload: str
    """The refused records as JSON text (cut to a bounded size)."""


@dataclass(frozen=True)
class AutopilotProposal:
    """A block of the autopilot's plan, proposed ahead (kW relative to baseline, + up)."""

    id: str
    created_at: datetime
    start: datetime
    end: datetime
    action: str
    target_kw: float
    energy_kwh: float
    scope: str
    policy: str
    reason: str
    status: str
    decided_by: str | None = None
    decided_at: datetime | None = None
    event_id: str | None = None


@dataclass(frozen=True)
class AutopilotDecision:
    """One entry of the autopilot's decision log."""

    id: int
    ts: datetime
    kind: str
    actor: str
    proposal_id: str | None
    reason: str
    detail: dict[str, Any] | None
