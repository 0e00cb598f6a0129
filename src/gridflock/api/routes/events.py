"""Events: create, list, read, cancel; performance series and the commands sent."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse

from gridflock.api._convert import epoch, frame_csv, frame_rows, iso, jsonable
from gridflock.api.auth import Operator, Viewer
from gridflock.api.deps import PageDep, RuntimeDep
from gridflock.api.errors import PROBLEM_JSON, ProblemError
from gridflock.api.runtime import EventView, Runtime
from gridflock.api.schemas import (
    AvailableOut,
    CommandOut,
    EventCreate,
    EventOut,
    PageOut,
    ProblemOut,
    SeriesPointOut,
)
from gridflock.domain.errors import NotFoundError, clip
from gridflock.domain.events import (
    AdmissionError,
    Event,
    EventConflictError,
    EventSource,
    EventStatus,
    Scope,
)

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
        "priority": event.priority,
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


#: Longest event window [s] (7 days), as ``POST /events`` allows.
MAX_EVENT_S = 7 * 86400.0


def _problem(request: Request, detail: str, *, title: str, slug: str, **extra: Any) -> JSONResponse:
    """A 422 problem document with machine-readable ``extra`` members (RFC 9457)."""
    body = {
        "type": f"https://gridflock.dev/problems/{slug}",
        "title": title,
        "status": 422,
        "detail": detail,
        "instance": request.url.path,
        **extra,
    }
    return JSONResponse(jsonable(body), status_code=422, media_type=PROBLEM_JSON)


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
        "URL in `Location`. A target above what the scope can still deliver over the window "
        "(held for its length, within every limit, net of the events it overlaps; see "
        "`GET /events/available`) is a 422 problem whose `available_kw` states what it can, "
        'unless the request says `"allow_partial": true`. An event in the opposite direction '
        "of one sharing its devices and time is a 422 naming that event. Any other request "
        "the fleet cannot carry out (unknown grid node, no site with the tag, ...) is a 422 "
        "problem saying why. Role: operator."
    ),
    status_code=status.HTTP_201_CREATED,
    response_model=EventOut,
    responses={
        422: {
            "model": ProblemOut,
            "description": "Invalid or impossible request; `available_kw` when too large.",
        }
    },
)
async def create_event(
    request: Request,
    body: EventCreate,
    runtime: RuntimeDep,
    principal: Operator,
    response: Response,
) -> Any:
    """Admit and schedule through ``runtime.create_event``."""
    try:
        event = await runtime.create_event(
            body.target_kw,
            epoch(body.start) if body.start is not None else None,
            body.duration_s,
            Scope.parse(body.scope),
            principal,
            priority=body.priority,
            allow_partial=body.allow_partial,
        )
    except AdmissionError as e:
        return _problem(
            request,
            str(e),
            title="Target above what the scope can deliver",
            slug="not-enough-flexibility",
            available_kw=e.available_kw,
        )
    except EventConflictError as e:
        return _problem(
            request,
            str(e),
            title="Clashes with another event",
            slug="event-conflict",
            event=e.other,
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
    "/events/available",
    summary="Flexibility left for a new event",
    description=(
        "What an event over `scope` and `[start, start + duration_s)` could still get, in "
        "`direction`: the kW the scope's devices can hold for the window's length, from the "
        "fleet as it is now, within every site and grid-node limit, net of the events it "
        "would overlap. `POST /events` refuses a larger target unless `allow_partial`. "
        "Role: viewer."
    ),
    response_model=AvailableOut,
    responses={422: {"model": ProblemOut, "description": "Invalid scope or window."}},
)
async def available(
    runtime: RuntimeDep,
    _: Viewer,
    scope: Annotated[
        str,
        Query(
            max_length=200, description="'fleet', 'grid_node:ID', 'program:TAG' or 'region:TAG'."
        ),
    ] = "fleet",
    direction: Annotated[Literal["up", "down"], Query(description="up or down.")] = "up",
    start: Annotated[
        datetime | None, Query(description="Start (ISO 8601 with offset); now if absent.")
    ] = None,
    duration_s: Annotated[
        float, Query(ge=1, le=MAX_EVENT_S, allow_inf_nan=False, description="Length [s].")
    ] = 3600.0,
) -> Any:
    """Report ``runtime.available_kw``."""
    if start is not None and start.tzinfo is None:
        raise ProblemError(422, "start needs a UTC offset, e.g. 2026-06-01T17:00:00Z")
    parsed = Scope.parse(scope)
    begin = epoch(start) if start is not None else None
    kw = runtime.available_kw(parsed, begin, duration_s, direction == "up")
    first = begin if begin is not None else runtime.now()
    return jsonable(
        {
            "available_kw": kw,
            "direction": direction,
            "scope": str(parsed),
            "start": iso(first),
            "end": iso(first + duration_s),
            "duration_s": duration_s,
        }
    )


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
