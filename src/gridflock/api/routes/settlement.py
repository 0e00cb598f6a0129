"""Settlement: an event's statement (JSON or CSV), its sites' contributions, a year's value."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from gridflock.api._convert import jsonable
from gridflock.api.auth import Viewer
from gridflock.api.deps import PageDep, RuntimeDep
from gridflock.api.schemas import PageOut, ProblemOut
from gridflock.mv.baselines import Method

__all__ = ["router"]

router = APIRouter(tags=["settlement"])

_CSV = "text/csv"
EventId = Annotated[str, Path(description="Event id.", max_length=200)]
MethodQ = Annotated[
    Method | None,
    Query(description="Baseline method; the recommended one for this fleet if absent."),
]
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ProblemOut, "description": "Unknown event."},
    409: {
        "model": ProblemOut,
        "description": "The event has not started, or its meter history cannot carry a baseline.",
    },
}


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class AccuracyOut(_Out):
    """How accurate the baseline method is at this fleet (placebo days)."""

    bias_pct: float | None = Field(description="Mean error on days without event [% of baseline].")
    rmse_pct: float | None = Field(description="Root mean square error [% of baseline].")
    basis: str = Field(description="Where the figures were measured.")


class BaselineOut(_Out):
    """The baseline method a statement settles on, and why."""

    method: str
    label: str
    chosen_by: Literal["recommended", "requested"]
    reason: str
    accuracy: AccuracyOut


class TotalsOut(_Out):
    """The event's totals over its participating sites (kW: means over the event)."""

    target_kw: float
    baseline_kw: float
    actual_kw: float
    delivered_kw: float = Field(description="Actual - baseline [kW, > 0 up].")
    delivered_kwh: float
    uncertainty_kw: float = Field(description="Half-width of the confidence interval [kW].")
    uncertainty_kwh: float
    delivered_pct: float
    sites: int
    responders: int
    non_responders: int
    sites_without_data: int
    reward: float


class PeakerOut(_Out):
    """The fossil peaker the event made unnecessary."""

    avoided_mwh: float = Field(description="Generation avoided at the plant [MWh].")
    co2_avoided_t: float = Field(description="CO2 avoided [t].")
    peak_capacity_mw: float = Field(description="Peaking capacity made unnecessary [MW].")
    kg_co2_per_mwh: float
    factor_source: str
    loss_fraction: float


class SiteOut(_Out):
    """One site's contribution to an event (kW: means over the event)."""

    rank: int
    site_id: str
    grid_node: str
    status: Literal["responder", "non_responder", "no_data"]
    coverage: float = Field(description="Share of the event its meter data covers (0..1).")
    baseline_kw: float | None
    actual_kw: float | None
    delivered_kw: float
    delivered_kwh: float
    uncertainty_kw: float | None = Field(
        description="Null where the method has no per-site figure."
    )
    uncertainty_kwh: float | None
    share_pct: float
    reward: float


class StatementOut(_Out):
    """A settlement statement (docs/settlement.md lists every field)."""

    format: str
    event: dict[str, Any]
    baseline: BaselineOut
    statement: str = Field(description="The statement in plain words.")
    confidence: float
    interval_s: float
    totals: TotalsOut
    rewards: dict[str, Any]
    peaker: PeakerOut
    methods: list[dict[str, Any]]
    grid_nodes: list[dict[str, Any]]
    notes: list[str]
    sites: list[SiteOut]
    intervals: list[dict[str, Any]]


class YearOut(_Out):
    """A year's value: energy delivered, rewards and the fossil peaker avoided."""

    year: int
    events: int
    up_events: int
    delivered_mwh: float
    avoided_mwh: float
    co2_avoided_t: float
    peak_capacity_mw: float
    peak_capacity_mw_max: float
    rewards: float
    currency: str
    methods: dict[str, int]
    by_month: list[dict[str, Any]]


@router.get(
    "/events/{event_id}/statement",
    summary="An event's settlement statement",
    description=(
        "What the event delivered per site and in total against the baseline of the "
        "recommended method (or `method`), with the uncertainty, the method's accuracy "
        "and why it was chosen; every method's totals; rewards; the fossil peaker avoided. "
        "Computed from the stored meter data. JSON by default; the per-site table as CSV "
        "with `Accept: text/csv` or `?format=csv`. Format: docs/settlement.md. Role: viewer."
    ),
    response_model=StatementOut,
    responses={
        **_ERRORS,
        200: {"content": {_CSV: {"schema": {"type": "string"}}}},
        422: {"model": ProblemOut, "description": "Invalid method or format."},
    },
)
def event_statement(
    request: Request,
    event_id: EventId,
    runtime: RuntimeDep,
    _: Viewer,
    method: MethodQ = None,
    format: Annotated[
        Literal["json", "csv"] | None,
        Query(description="Output format; overrides the Accept header."),
    ] = None,
) -> Any:
    """Report ``runtime.event_statement`` as JSON or CSV."""
    st = runtime.event_statement(event_id, method.value if method else None)
    wants_csv = format == "csv" or (
        format is None and _CSV in request.headers.get("accept", "").lower()
    )
    if wants_csv:
        return Response(
            st.to_csv(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="statement-{event_id}.csv"'},
        )
    return JSONResponse(jsonable(st.as_dict()))


@router.get(
    "/events/{event_id}/statement/sites",
    summary="Sites' contributions to an event",
    description=(
        "One row per participating site, best delivery first: baseline, actual and "
        "delivered kW (means over the event), kWh, uncertainty, share, reward and status "
        "(`responder`, `non_responder`, `no_data`); `status` filters. Role: viewer."
    ),
    response_model=PageOut[SiteOut],
    responses={**_ERRORS, 422: {"model": ProblemOut, "description": "Invalid method."}},
)
def statement_sites(
    event_id: EventId,
    runtime: RuntimeDep,
    _: Viewer,
    page: PageDep,
    method: MethodQ = None,
    status: Annotated[
        Literal["responder", "non_responder", "no_data"] | None,
        Query(description="Only sites with this status."),
    ] = None,
) -> Any:
    """Page ``runtime.event_statement(...).sites``."""
    sites = runtime.event_statement(event_id, method.value if method else None).sites
    if status is not None:
        sites = sites[sites["status"] == status]
    rows = jsonable(sites.iloc[page.slice()].to_dict("records"))
    return {"items": rows, "total": len(sites), "limit": page.limit, "offset": page.offset}


@router.get(
    "/value/{year}",
    summary="A year's value",
    description=(
        "The completed events that started in `year` (UTC), each settled on its recommended "
        "baseline: energy delivered [MWh], rewards, and the fossil peaker avoided (MWh not "
        "generated, t CO2, peaking MW made unnecessary), with a row per month. Events whose "
        "meter history cannot carry a baseline are left out. Role: viewer."
    ),
    response_model=YearOut,
)
def year_value(
    year: Annotated[int, Path(ge=2000, le=2100, description="Calendar year (UTC).")],
    runtime: RuntimeDep,
    _: Viewer,
) -> Any:
    """Report ``runtime.yearly_value``."""
    return jsonable(runtime.yearly_value(year).as_dict())
