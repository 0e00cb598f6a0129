"""What the API needs from the running service: a protocol, so routes stay thin.

``gridflock.service.Runtime`` implements it; the API never imports the service.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import pandas as pd

from gridflock.domain.auth import Principal
from gridflock.domain.envelopes import Envelope
from gridflock.domain.events import Event, EventSource, Scope
from gridflock.domain.spec import FleetSpec
from gridflock.fleet.state import FleetState
from gridflock.mv.statement import Statement
from gridflock.mv.value import YearValue
from gridflock.store import Store
from gridflock.store.records import (
    AutopilotDecision,
    AutopilotProposal,
    IssuedForecast,
    SupportWindowRecord,
)

__all__ = ["Envelopes", "EventView", "Forecasts", "Runtime"]


@dataclass(frozen=True)
class EventView:
    """An event with its live figures (kW with the event's sign; % of target)."""

    event: Event
    delivered_kw: float | None  # latest measured response
    delivered_pct: float | None  # mean over the window so far
    tracking_rmse_pct: float | None
    time_to_90pct_s: float | None
    non_responders: int
    shortfall_kw: float
    commands_sent: int


class Forecasts(Protocol):
    """The service's forecasts as the API sees them (group totals, kW, generator sign)."""

    groups: dict[str, list[str]]
    """Grouping (fleet, grid_node, program, region) -> the groups it has."""

    def status(self) -> dict[str, Any]:
        """State, model in use, last and next issues, last error, timings."""
        ...

    def quantities(self) -> tuple[str, ...]:
        """Quantities forecast (empty before the first model)."""
        ...

    def latest(
        self,
        horizon: str | None = None,
        quantity: str | None = None,
        group_by: str | None = None,
        group: str | None = None,
        before: datetime | None = None,
    ) -> list[IssuedForecast]:
        """The latest issued group forecasts matching the filters (issued before ``before``)."""
        ...

    def site(self, horizon: str, quantity: str, site_id: str) -> IssuedForecast | None:
        """One site's latest forecast (``None``: not issued yet, or no such site)."""
        ...

    def actuals(self, forecast: IssuedForecast) -> Any:
        """What happened over the forecast's steps so far (array, NaN where unknown)."""
        ...

    def support(self, horizon: str | None = None) -> list[SupportWindowRecord]:
        """Need-for-support windows of the latest issue."""
        ...

    def error_ar(self, quantity: str, horizon: str, kind: str) -> list[float] | None:
        """The model's learned error process ``[phi, sd]`` of ``kind`` site or group."""
        ...

    def request_retrain(self) -> bool:
        """Retrain as soon as possible; ``False`` if already asked or running."""
        ...


class Envelopes(Protocol):
    """The grid operator's operating envelopes (docs/envelopes.md)."""

    def find(self, active_at: float | None = None) -> list[Envelope]:
        """Envelopes not yet ended (those in force at ``active_at``, if given)."""
        ...

    async def put(self, envelopes: Sequence[Envelope], principal: Principal) -> int:
        """Store and apply a validated batch; ``ValidationError`` names unknown targets."""
        ...

    async def delete(self, ids: Sequence[str], principal: Principal) -> list[str]:
        """Delete by id; the ids that existed (``NotFoundError`` if none)."""
        ...

    def holds(self) -> dict[str, Any]:
        """The envelope hold now: sites and nodes held or in breach, and its log."""
        ...


class Runtime(Protocol):
    """The live VPP as the API sees it. Times are UTC epoch seconds, power kW."""

    @property
    def state(self) -> FleetState:
        """The fleet state (read only for the API)."""
        ...

    @property
    def spec(self) -> FleetSpec:
        """The fleet as provisioned."""
        ...

    @property
    def store(self) -> Store:
        """The database: sites, devices, gateways, telemetry, events, commands, audit."""
        ...

    def now(self) -> float:
        """The service clock."""
        ...

    @property
    def envelopes(self) -> Envelopes:
        """The grid operator's operating envelopes."""
        ...

    @property
    def forecasts(self) -> Forecasts:
        """Forecasts: latest issues, support windows, retraining."""
        ...

    def authenticate(self, api_key: str) -> Principal | None:
        """The caller behind an API key, or None (unknown, malformed or revoked).

        Raises :class:`gridflock.store.errors.DatabaseUnavailableError` (503) when the key
        cannot be checked because the database is away.
        """
        ...

    async def import_fleet(self, spec: FleetSpec, principal: Principal) -> None:
        """Replace the provisioned fleet (sites, devices, grid nodes).

        Live values of the devices that stay are kept; ``ConflictError`` while events are
        in progress.
        """
        ...

    async def provision_gateway(
        self,
        gateway_id: str,
        *,
        kind: str,
        site_id: str | None,
        groups: list[str],
        principal: Principal,
    ) -> str:
        """Register a gateway; returns its MQTT password (shown once, stored hashed)."""
        ...

    def metrics(self) -> bytes:
        """Prometheus text exposition of the service's metrics."""
        ...

    def health(self) -> dict[str, Any]:
        """``status`` ("ok" or "degraded") and the state of each part and dependency.

        ``degraded`` names the parts not fully served, ``parts`` gives each part's state.
        """
        ...

    def fleet_summary(self) -> dict[str, Any]:
        """The fleet now.

        Keys: ``ts``, ``p_kw``, ``flex_up_kw``, ``flex_down_kw``, ``committed_up_kw``,
        ``committed_down_kw``, ``remaining_up_kw``, ``remaining_down_kw``,
        ``flex_duration_h``, ``devices_online``, ``devices_total``, ``by_kind`` (list).
        """
        ...

    def flexibility(self, duration_h: float, by: str, scope: str = "fleet") -> pd.DataFrame:
        """Flexibility held for ``duration_h`` within ``scope``, by group (``fleet.GROUP_BY``).

        Columns: the group, ``devices``, ``online``, ``flex_up_kw``, ``flex_down_kw``,
        ``committed_up_kw``, ``committed_down_kw``, ``remaining_up_kw``,
        ``remaining_down_kw`` and ``p_kw``; ``ValueError`` for an unknown scope.
        """
        ...

    def fleet_history(self, start: float, end: float) -> pd.DataFrame:
        """Fleet power by kind over ``[start, end)``: columns ts, p_kw, and one per kind."""
        ...

    def group_history(self, start: float, end: float, by: str) -> pd.DataFrame:
        """Power by ``grid_node``, ``program`` or ``region``: columns ts, group, p_kw."""
        ...

    async def create_event(
        self,
        target_kw: float,
        start: float | None,
        duration_s: float,
        scope: Scope,
        principal: Principal,
        source: EventSource = EventSource.OPERATOR,
        *,
        priority: int = 50,
        allow_partial: bool = False,
    ) -> Event:
        """Admit and schedule an event (``InvalidError`` with a message a person can act on).

        A target above what the scope can still deliver raises ``AdmissionError`` (with
        ``available_kw``) unless ``allow_partial``.
        """
        ...

    def available_kw(self, scope: Scope, start: float | None, duration_s: float, up: bool) -> float:
        """What a new event over ``scope`` and ``[start, start + duration_s)`` could get [kW].

        Signed like the direction (> 0 up); within every limit, net of the live events
        it would overlap; ``start`` None means now.
        """
        ...

    async def cancel_event(self, event_id: str, principal: Principal) -> Event:
        """Cancel an event (``NotFoundError`` if unknown, ``ConflictError`` if already over)."""
        ...

    def events(self) -> list[EventView]:
        """Every event tracked, and the latest finished ones from before a restart; newest first."""
        ...

    def event(self, event_id: str) -> EventView:
        """One event, finished ones from before a restart included (else ``NotFoundError``)."""
        ...

    def event_series(self, event_id: str) -> pd.DataFrame:
        """Target against delivered: columns ts (UTC), target_kw, delivered_kw."""
        ...

    def event_statement(self, event_id: str, method: str | None = None) -> Statement:
        """The settlement statement of an event on the store's meter data.

        The recommended baseline method unless ``method``; ``NotFoundError`` for an unknown
        event, ``InvalidError`` for an unknown method, ``ConflictError`` before the event
        starts or when its meter history cannot carry any baseline.
        """
        ...

    def yearly_value(self, year: int) -> YearValue:
        """Energy delivered, rewards and the peaker avoided by the year's completed events."""
        ...

    def updates(self) -> AsyncIterator[dict[str, Any]]:
        """Live fleet and event updates, one dict per control cycle."""
        ...

    # ------------------------------------------------------------------ OpenADR
    def openadr_status(self) -> dict[str, Any]:
        """The OpenADR VEN (``ven``: None when off), the utility events taken up, prices."""
        ...

    # ------------------------------------------------------------------ grid codes
    async def push_grid_settings(
        self,
        product: str | None,
        deadband_hz: float | None,
        droop: float | None,
        principal: Principal,
    ) -> dict[str, Any]:
        """Push every device's grid-code settings to its gateway again (new seq).

        ``product`` lays a frequency product's droop and each device's contracted kW over
        the profiles; ``deadband_hz`` / ``droop`` replace the profiles' frequency-watt ones.
        ``InvalidError`` for an unknown product or a value out of range. Returns a summary.
        """
        ...

    def grid_settings(self) -> dict[str, Any]:
        """Each device's latest settings and its gateway's answer, with counts."""
        ...

    # ------------------------------------------------------------------ autopilot
    def autopilot_status(self) -> dict[str, Any]:
        """On or off, mode, when it planned and plans next, proposals counted by status."""
        ...

    def autopilot_settings(self) -> dict[str, Any]:
        """The autopilot's settings: ``enabled``, ``mode``, ``policies``, ``tariff``..."""
        ...

    async def set_autopilot_settings(
        self, settings: dict[str, Any], principal: Principal
    ) -> dict[str, Any]:
        """Replace the settings (``InvalidError`` saying what is wrong); returns them."""
        ...

    def autopilot_plan(self) -> tuple[float | None, pd.DataFrame]:
        """When the current plan was made, and the plan by quarter hour.

        Columns: ts, forecast_import_kw, price_eur_per_kwh, charge_kw, discharge_kw,
        stored_kwh, import_kw, support_kw, soc (0..1); empty before the first plan.
        """
        ...

    def autopilot_proposals(self, status: str | None) -> list[AutopilotProposal]:
        """Proposals of the last day and ahead, by start; optionally of one status."""
        ...

    async def approve_proposal(self, proposal_id: str, principal: Principal) -> AutopilotProposal:
        """Approve: its event is created (``NotFoundError``; ``ConflictError`` if not pending)."""
        ...

    async def veto_proposal(
        self, proposal_id: str, principal: Principal, reason: str
    ) -> AutopilotProposal:
        """Veto a pending proposal (``NotFoundError``; ``ConflictError`` if not pending)."""
        ...

    async def autopilot_replan(self, principal: Principal) -> dict[str, Any]:
        """Re-plan now (``ConflictError`` while the autopilot is off); returns the status."""
        ...

    def autopilot_decisions(
        self, kind: str | None, limit: int, offset: int
    ) -> tuple[list[AutopilotDecision], int]:
        """The decision log, newest first, and its total."""
        ...
