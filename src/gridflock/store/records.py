"""What the store's service tables give back: keys, gateways, audit, dead letters, forecasts.

Plain frozen dataclasses (never ORM rows), with aware UTC datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from gridflock.domain.auth import Role

__all__ = [
    "ApiKey",
    "AuditRecord",
    "AutopilotDecision",
    "AutopilotProposal",
    "DeadLetter",
    "ForecastModelRecord",
    "GatewayRecord",
    "IssuedForecast",
    "SupportWindowRecord",
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


@dataclass(frozen=True)
class ForecastModelRecord:
    """A stored forecast model version (its bundle is read apart: it may be large)."""

    id: str
    quantity: str
    trained_at: datetime
    data_start: datetime
    data_end: datetime
    params: dict[str, Any]
    backtest: dict[str, Any]
    size_bytes: int


@dataclass(frozen=True)
class IssuedForecast:
    """One issued forecast of one quantity for one group.

    ``values_kw`` has one row per ``step_s`` step from ``start`` and one column per level in
    ``quantiles`` (kW, generator sign convention; NaN where unknown).
    """

    issued_at: datetime
    horizon: str
    quantity: str
    group_by: str
    group: str
    model_id: str | None
    start: datetime
    step_s: int
    quantiles: tuple[float, ...]
    values_kw: npt.NDArray[np.float64]


@dataclass(frozen=True)
class SupportWindowRecord:
    """A window ``[start, end)`` in which the grid is forecast to need the plant."""

    issued_at: datetime
    horizon: str
    scope: str
    start: datetime
    end: datetime
    probability: float
    kw_needed: float
    reason: str
    kw_needed_p90: float = 0.0
    """What the plant should hold in reserve: the largest P90 excess [kW]."""
