"""The autopilot: its settings and policies, the plan, proposals to approve or veto, the log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import Field, field_validator

from gridflock.api._convert import jsonable
from gridflock.api.auth import Operator, Viewer
from gridflock.api.deps import PageDep, RuntimeDep
from gridflock.api.schemas import PageOut, ProblemOut, _In, _Out
from gridflock.store.records import AutopilotDecision, AutopilotProposal

__all__ = ["router"]

router = APIRouter(tags=["autopilot"])

ProposalId = Annotated[str, Path(description="Proposal id (e.g. ap-1f3a9c0d2b4e).", max_length=64)]
_EUR = "EUR/kWh"
_STATUSES = ("pending", "approved", "vetoed", "executed", "superseded", "expired", "failed")
_KINDS = (
    "plan",
    "schedule",
    "propose",
    "approve",
    "veto",
    "execute",
    "supersede",
    "expire",
    "settings",
    "error",
)


# ---------------------------------------------------------------------- schemas
def _num(default: float, lo: float, hi: float, what: str) -> Any:
    return Field(default, ge=lo, le=hi, allow_inf_nan=False, description=what)


class PeakShavingIn(_In):
    """Keep the net import of the fleet (or of a grid node) under a limit."""

    enabled: bool = Field(True, strict=True)
    limit_kw: float | None = Field(
        None,
        ge=0,
        le=1e7,
        allow_inf_nan=False,
        description="Net import limit [kW]; null: as low as the storage allows.",
    )
    scope: str = Field(
        "fleet",
        max_length=200,
        description="Where the events act: fleet, grid_node:ID, program:TAG or region:TAG.",
    )
    peak_eur_per_kw: float = _num(10.0, 0, 1e4, "What a kW of peak is worth [EUR/kW].")


class ArbitrageIn(_In):
    """Buy energy when cheap and use it when dear."""

    enabled: bool = Field(True, strict=True)
    min_spread_eur_per_kwh: float = _num(0.05, 0, 100, "Smallest price spread to trade on.")


class SurplusIn(_In):
    """Soak up local PV surplus and negative prices."""

    enabled: bool = Field(True, strict=True)
    value_eur_per_kwh: float = _num(0.02, 0, 100, "What a kWh of surplus taken in is worth.")


class SupportWindowIn(_In):
    """A committed window: deliver ``kw`` up (> 0) or down (< 0) over [start, end)."""

    start: datetime = Field(description="ISO 8601 with offset.")
    end: datetime = Field(description="ISO 8601 with offset, after start.")
    kw: float = Field(ge=-1e7, le=1e7, allow_inf_nan=False, description="Non-zero [kW].")
    source: str = Field("operator", max_length=100)


class SupportWindowsIn(_In):
    """Deliver the committed support windows."""

    enabled: bool = Field(True, strict=True)
    windows: list[SupportWindowIn] = Field(default_factory=list, max_length=200)


class PoliciesIn(_In):
    """The operator's policies, each on or off with its parameters."""

    peak_shaving: PeakShavingIn = Field(default_factory=PeakShavingIn)
    arbitrage: ArbitrageIn = Field(default_factory=ArbitrageIn)
    surplus: SurplusIn = Field(default_factory=SurplusIn)
    support_windows: SupportWindowsIn = Field(default_factory=SupportWindowsIn)
    wear_eur_per_kwh: float = _num(0.01, 0, 100, "Battery wear per kWh through the cells.")
    quantile: float = Field(
        0.5, gt=0, lt=1, allow_inf_nan=False, description="Forecast quantile to plan on."
    )


class TariffIn(_In):
    """The tariff the plan minimises: time-of-use bands (local hours) or flat."""

    kind: Literal["tou", "flat"] = "tou"
    flat_eur_per_kwh: float = _num(0.30, -10, 10, f"Flat import price [{_EUR}].")
    bands: list[tuple[float, float, float]] = Field(
        default_factory=lambda: [
            (0.0, 7.0, 0.18),
            (7.0, 16.0, 0.28),
            (16.0, 21.0, 0.42),
            (21.0, 24.0, 0.28),
        ],
        max_length=48,
        description="[from_hour, to_hour, EUR/kWh] in local time, covering 0-24.",
    )
    feed_in_eur_per_kwh: float = _num(0.08, -10, 10, f"Feed-in price [{_EUR}].")

    @field_validator("bands")
    @classmethod
    def _finite(cls, v: list[tuple[float, float, float]]) -> list[tuple[float, float, float]]:
        for band in v:
            if not all(abs(x) < 1e6 for x in band):
                raise ValueError("band values must be finite hours and prices")
        return v


class AutopilotSettingsIn(_In):
    """The autopilot's settings."""

    enabled: bool = Field(True, strict=True, description="Plan and propose at all.")
    mode: Literal["automatic", "approval"] = Field(
        "approval",
        description="automatic: proposals become events on their own; approval: an operator "
        "approves or vetoes each.",
    )
    policies: PoliciesIn = Field(default_factory=PoliciesIn)
    tariff: TariffIn = Field(default_factory=TariffIn)
    horizon_h: float = _num(24.0, 1, 72, "How far ahead each plan looks [h].")
    replan_interval_s: float = _num(900.0, 60, 86400, "How often it re-plans [s].")
    lead_s: float = _num(900.0, 0, 86400, "Automatic mode: how long before its start [s].")
    execute_as: Literal["events", "schedules"] = Field(
        "events",
        description="How proposals are carried out: as events through the dispatcher, or as "
        "schedules to the batteries (the whole plan in automatic mode, each approved block "
        "in approval mode).",
    )


class AutopilotSettingsOut(_Out):
    """The autopilot's settings as in force."""

    enabled: bool
    mode: str
    policies: dict[str, Any]
    tariff: dict[str, Any]
    horizon_h: float
    replan_interval_s: float
    lead_s: float
    execute_as: str = "events"


class AutopilotStatusOut(_Out):
    """The autopilot now."""

    enabled: bool
    mode: str
    planned_at: datetime | None = None
    next_plan_at: datetime | None = None
    proposals: dict[str, int] = Field(description="Proposals held, by status.")
    planned_peak_kw: float | None = None
    forecast_peak_kw: float | None = None
    per_device: bool = Field(
        False, description="Whether the plan is the optimiser's per device (else the sketch)."
    )
    forecast: str = Field("none yet", description="Where the last plan's forecast came from.")


class PlanPointOut(_Out):
    """One quarter hour of the plan (kW; + import for the import columns)."""

    ts: datetime
    forecast_import_kw: float = Field(description="Forecast net import without batteries.")
    price_eur_per_kwh: float
    charge_kw: float
    discharge_kw: float
    stored_kwh: float = Field(description="Energy stored above the floors at the end.")
    import_kw: float = Field(description="Net import with the plan.")
    support_kw: float = Field(description="Committed support window [kW, + up].")
    soc: float | None = Field(
        None, description="Stored energy as a share of the storage planned on (0..1)."
    )


class PlanOut(_Out):
    """The current plan; ``planned_at`` null and no points before the first plan."""

    planned_at: datetime | None = None
    points: list[PlanPointOut]


class ProposalOut(_Out):
    """A block of the plan proposed ahead, with its reason and fate."""

    id: str
    created_at: datetime
    start: datetime
    end: datetime
    action: str = Field(description="precharge (target < 0) or discharge (target > 0).")
    target_kw: float
    energy_kwh: float
    scope: str
    policy: str
    reason: str
    status: str = Field(description=", ".join(_STATUSES) + ".")
    decided_by: str | None = None
    decided_at: datetime | None = None
    event_id: str | None = None


class VetoIn(_In):
    """Why the operator says no (kept in the decision log)."""

    reason: str = Field("", max_length=500)


class DecisionOut(_Out):
    """One entry of the decision log."""

    id: int
    ts: datetime
    kind: str = Field(description=", ".join(_KINDS) + ".")
    actor: str
    proposal_id: str | None = None
    reason: str
    detail: dict[str, Any] | None = None


def _proposal(p: AutopilotProposal) -> dict[str, Any]:
    out: dict[str, Any] = jsonable(dict(p.__dict__))
    return out


def _decision(d: AutopilotDecision) -> dict[str, Any]:
    out: dict[str, Any] = jsonable(dict(d.__dict__))
    return out


_ERR: dict[int | str, dict[str, Any]] = {
    404: {"model": ProblemOut, "description": "Unknown proposal."},
    409: {"model": ProblemOut, "description": "The proposal is not pending."},
}


# ---------------------------------------------------------------------- routes
@router.get(
    "/autopilot",
    summary="The autopilot now",
    description="On or off, its mode, when it planned and plans next, proposals by status. "
    "Role: viewer.",
    response_model=AutopilotStatusOut,
)
def autopilot_status(runtime: RuntimeDep, _: Viewer) -> Any:
    """Report ``runtime.autopilot_status``."""
    return jsonable(runtime.autopilot_status())


@router.get(
    "/autopilot/policies",
    summary="The autopilot's settings and policies",
    description="Mode, policies (peak shaving, arbitrage, surplus, support windows) and the "
    "tariff it plans with. Role: viewer.",
    response_model=AutopilotSettingsOut,
)
def get_policies(runtime: RuntimeDep, _: Viewer) -> Any:
    """Report ``runtime.autopilot_settings``."""
    return jsonable(runtime.autopilot_settings())


@router.put(
    "/autopilot/policies",
    summary="Set the autopilot's settings and policies",
    description="Replace them all (omitted fields take their defaults); the autopilot "
    "re-plans at the next control cycle and the change is logged with who made it. A value "
    "it cannot use (time-of-use bands not covering the day, a support window ending before "
    "it starts, an unknown scope) is a 422 saying which. Role: operator.",
    response_model=AutopilotSettingsOut,
    responses={422: {"model": ProblemOut}},
)
async def put_policies(body: AutopilotSettingsIn, runtime: RuntimeDep, principal: Operator) -> Any:
    """Validate and hand to ``runtime.set_autopilot_settings``."""
    return jsonable(await runtime.set_autopilot_settings(body.model_dump(mode="json"), principal))


@router.get(
    "/autopilot/plan",
    summary="The current plan",
    description="The fleet's storage plan by quarter hour: forecast import, price, charge, "
    "discharge, stored energy, the import with the plan and committed support windows. "
    "Role: viewer.",
    response_model=PlanOut,
)
def get_plan(runtime: RuntimeDep, _: Viewer) -> Any:
    """Report ``runtime.autopilot_plan``."""
    planned_at, df = runtime.autopilot_plan()
    return jsonable(
        {
            "planned_at": None if planned_at is None else datetime.fromtimestamp(planned_at, UTC),
            "points": df.to_dict(orient="records"),
        }
    )


@router.post(
    "/autopilot/replan",
    summary="Re-plan now",
    description="Forecast, solve and propose now instead of at the next scheduled re-plan. "
    "409 while the autopilot is off. Role: operator.",
    response_model=AutopilotStatusOut,
    responses={409: {"model": ProblemOut, "description": "The autopilot is off."}},
)
async def replan(runtime: RuntimeDep, principal: Operator) -> Any:
    """Call ``runtime.autopilot_replan``."""
    return jsonable(await runtime.autopilot_replan(principal))


@router.get(
    "/autopilot/proposals",
    summary="Proposals",
    description="What the autopilot proposes ahead (and what became of the proposals of the "
    "last day), by start: pre-charge and discharge blocks with the policy that asked and "
    "the reason. Role: viewer.",
    response_model=PageOut[ProposalOut],
)
def list_proposals(
    runtime: RuntimeDep,
    _: Viewer,
    page: PageDep,
    status: Annotated[
        Literal["pending", "approved", "vetoed", "executed", "superseded", "expired", "failed"]
        | None,
        Query(description="Only proposals with this status."),
    ] = None,
) -> Any:
    """Report ``runtime.autopilot_proposals``."""
    items = runtime.autopilot_proposals(status)
    return {
        "items": [_proposal(p) for p in items[page.slice()]],
        "total": len(items),
        "limit": page.limit,
        "offset": page.offset,
    }


@router.post(
    "/autopilot/proposals/{proposal_id}/approve",
    summary="Approve a proposal",
    description="Its event (`source: autopilot`) is created at once, scheduled for the "
    "proposal's window; the answer shows the proposal `executed` with its `event_id`, or "
    "`failed` when the event was refused (the reason is in the decision log). 409 when the "
    "proposal is not pending (superseded by a newer plan, or decided already). "
    "Role: operator.",
    response_model=ProposalOut,
    responses=_ERR,
)
async def approve(proposal_id: ProposalId, runtime: RuntimeDep, principal: Operator) -> Any:
    """Call ``runtime.approve_proposal``."""
    return _proposal(await runtime.approve_proposal(proposal_id, principal))


@router.post(
    "/autopilot/proposals/{proposal_id}/veto",
    summary="Veto a proposal",
    description="Nothing of its kind is proposed over its window again; the reason is kept "
    "in the decision log. 409 when it is not pending. Role: operator.",
    response_model=ProposalOut,
    responses=_ERR,
)
async def veto(
    proposal_id: ProposalId, runtime: RuntimeDep, principal: Operator, body: VetoIn | None = None
) -> Any:
    """Call ``runtime.veto_proposal``."""
    reason = body.reason if body is not None else ""
    return _proposal(await runtime.veto_proposal(proposal_id, principal, reason))


@router.get(
    "/autopilot/decisions",
    summary="The decision log",
    description="Everything the autopilot decided and why, and every operator decision on "
    "it (approve, veto, settings), newest first. Role: viewer.",
    response_model=PageOut[DecisionOut],
)
def decisions(
    runtime: RuntimeDep,
    _: Viewer,
    page: PageDep,
    kind: Annotated[
        Literal[
            "plan",
            "schedule",
            "propose",
            "approve",
            "veto",
            "execute",
            "supersede",
            "expire",
            "settings",
            "error",
        ]
        | None,
        Query(description="Only entries of this kind."),
    ] = None,
) -> Any:
    """Report ``runtime.autopilot_decisions``."""
    items, total = runtime.autopilot_decisions(kind, page.limit, page.offset)
    return {
        "items": [_decision(d) for d in items],
        "total": total,
        "limit": page.limit,
        "offset": page.offset,
    }
