"""Events: create, list, read, cancel; performance series and the commands sent."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse

from gridflock.api._convert import epoch, frame_csv, frame_rows, iso, jsonable
from gridflock.api.auth import Operator, Viewer
from gridflock.api.deps import PageDep, RuntimeDep
from gridflock.api.errors import ProblemError
from gridflock.api.runtime import EventView, Runtime
from gridflock.api.schemas import (
    CommandOut,
    EventCreate,
    EventOut,
    PageOut,
    ProblemOut,
    SeriesPointOut,
)
from gridflock.domain.errors import NotFoundError, clip
from gridflock.domain.events import Event, EventSource, EventStatus, Scope

__all__ = ["router"]

router = APIRouter(tags=["events"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ProblemOut}}
EventId = Annotated[str, Path(description="Event id.")]


def _out(event: Event, view: EventView | None) -> dict[str, Any]:
    """An event and its live figures as the API shows them."""
    out: dict[str, Any] = {
        "id": event.id,
        "status": event.status.value,
        "target_kw": event.target_kw,
        "delivered_kw": view.delivered_kw if view else None,
        "delivered_pct": view.delivered_pct if view else None,
        "start": iso(event.start),
        "end": iso(event.end),
        "duration_s": event.duration_s,
        "scope": str(event.scope),
        "source": event.source.value,
        "created_by": event.created_by,
        "tracking_rmse_pct": view.tracking_rmse_pct if view else None,
        "time_to_90pct_s": view.time_to_90pct_s if view else None,
        "non_responders": view.non_responders if view else 0,
        "shortfall_kw": view.shortfall_kw if view else 0.0,
        "commands_sent": view.commands_sent if view else 0,
    }
    result: dict[str, Any] = jsonable(out)
    return result


def _view(runtime: Runtime, event_id: str) -> EventView:
    try:
        return runtime.event(event_id)
    except NotFoundError:
        raise ProblemError(
            404, f"unknown event {clip(event_id)!r}: list events at /api/v1/events"
        ) from None


@router.post(
    "/events",
    summary="Create an event",
    description=(
        "Ask the fleet to move its power by `target_kw` relative to baseline over "
        "`[start, start + duration_s)`, within `scope`. Answers 201 with the event and its "
        "URL in `Location`. A request the fleet cannot carry out (unknown grid node, no "
        "site with the tag, ...) is a 422 problem saying why. Role: operator."
    ),
    status_code=status.HTTP_201_CREATED,
    response_model=EventOut,
    responses={422: {"model": ProblemOut, "description": "Invalid or impossible request."}},
)
async def create_event(
    body: EventCreate, runtime: RuntimeDep, principal: Operator, response: Response
) -> Any:
    """Schedule through ``runtime.create_event``."""
    event = await runtime.create_event(
        body.target_kw,
        epoch(body.start) if body.start is not None else None,
        body.duration_s,
        Scope.parse(body.scope),
        principal,
    )
    response.headers["Location"] = f"/api/v1/events/{event.id}"
    try:
        view = runtime.event(event.id)
    except NotFoundError:
        return _out(event, None)
    return _out(view.event, view)


@router.get(
    "/events",
    summary="List events",
    description="Events newest first, with their live figures; filtered and paged. Role: viewer.",
    response_model=PageOut[EventOut],
)
async def list_events(
    runtime: RuntimeDep,
    _: Viewer,
    page: PageDep,
    status: Annotated[
        list[EventStatus] | None, Query(description="Only these statuses (repeatable).")
    ] = None,
    source: Annotated[EventSource | None, Query(description="Only from this source.")] = None,
) -> Any:
    """Filter ``runtime.events()`` and page."""
    views = runtime.events()
    if status:
        wanted = set(status)
        views = [v for v in views if v.event.status in wanted]
    if source is not None:
        views = [v for v in views if v.event.source == source]
    return {
        "items": [_out(v.event, v) for v in views[page.slice()]],
        "total": len(views),
        "limit": page.limit,
        "offset": page.offset,
    }


@router.get(
    "/events/{event_id}",
    summary="One event",
    description=(
        "An event's status, target and measured performance: `delivered_kw` (latest), "
        "`delivered_pct` (mean so far), tracking error, time to 90 %, non-responders. "
        "Role: viewer."
    ),
    response_model=EventOut,
    responses=_NOT_FOUND,
)
async def get_event(event_id: EventId, runtime: RuntimeDep, _: Viewer) -> Any:
    """Report ``runtime.event``."""
    view = _view(runtime, event_id)
    return _out(view.event, view)


@router.post(
    "/events/{event_id}/cancel",
    summary="Cancel an event",
    description=(
        "Cancel a scheduled or active event; its devices are released. An event already "
        "over cannot be cancelled (409). Role: operator."
    ),
    response_model=EventOut,
    responses={**_NOT_FOUND, 409: {"model": ProblemOut, "description": "Already over."}},
)
async def cancel_event(event_id: EventId, runtime: RuntimeDep, principal: Operator) -> Any:
    """Cancel through ``runtime.cancel_event``."""
    _view(runtime, event_id)
    event = await runtime.cancel_event(event_id, principal)
    try:
        view = runtime.event(event.id)
    except NotFoundError:
        return _out(event, None)
    return _out(view.event, view)


_CSV = "text/csv"


@router.get(
    "/events/{event_id}/performance",
    summary="An event's target against delivered",
    description=(
        "The tracking series of an event: target and delivered kW at each control step. "
        "JSON by default; CSV with `Accept: text/csv` or `?format=csv`. Role: viewer."
    ),
    response_model=list[SeriesPointOut],
    responses={
        **_NOT_FOUND,
        200: {
            "content": {
                _CSV: {
                    "schema": {"type": "string"},
                    "example": "ts,target_kw,delivered_kw\n2026-06-01T12:00:00Z,100.0,92.5\n",
                }
            }
        },
    },
)
async def event_performance(
    request: Request,
    event_id: EventId,
    runtime: RuntimeDep,
    _: Viewer,
    format: Annotated[
        Literal["json", "csv"] | None,
        Query(description="Output format; overrides the Accept header."),
    ] = None,
) -> Any:
    """Report ``runtime.event_series`` as JSON or CSV."""
    _view(runtime, event_id)
    df = runtime.event_series(event_id)
    cols = [c for c in ("ts", "target_kw", "delivered_kw") if c in df.columns]
    df = df[cols]
    wants_csv = format == "csv" or (
        format is None and _CSV in request.headers.get("accept", "").lower()
    )
    if wants_csv:
        return Response(
            frame_csv(df),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{event_id}.csv"'},
        )
    return JSONResponse(frame_rows(df))


@router.get(
    "/events/{event_id}/commands",
    summary="Commands sent for an event",
    description=(
        "Every setpoint command the event sent (audit): device, setpoint [kW], sequence, "
        "validity and delivery status, by issue time. Role: viewer."
    ),
    response_model=PageOut[CommandOut],
    responses=_NOT_FOUND,
)
def event_commands(event_id: EventId, runtime: RuntimeDep, _: Viewer, page: PageDep) -> Any:
    """Report ``store.commands_for_event``, paged."""
    _view(runtime, event_id)
    df = runtime.store.commands_for_event(event_id)
    return {
        "items": frame_rows(df.iloc[page.slice()]),
        "total": len(df),
        "limit": page.limit,
        "offset": page.offset,
    }
