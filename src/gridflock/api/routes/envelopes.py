"""Operating envelopes: the grid operator's import/export limits (docs/envelopes.md)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from gridflock.api._convert import epoch
from gridflock.api.auth import Operator, Viewer
from gridflock.api.deps import RuntimeDep
from gridflock.api.errors import ProblemError
from gridflock.api.schemas import ProblemOut
from gridflock.domain.envelopes import (
    Envelope,
    TargetType,
    parse_csip,
    parse_csv,
    parse_envelopes,
)

__all__ = ["router"]

router = APIRouter(tags=["envelopes"])

_JSON = {"application/json"}
_CSV = {"text/csv", "application/csv"}
_EXAMPLE = [
    {
        "id": "doe-f1-0800",
        "target_type": "node",
        "target_id": "F1",
        "start": "2026-06-01T08:00:00Z",
        "end": "2026-06-01T08:15:00Z",
        "export_limit_kw": 150.0,
        "kind": "doe",
    },
    {
        "target_type": "site",
        "target_id": "S0001",
        "start": "2026-06-01T17:00:00Z",
        "end": "2026-06-01T19:00:00Z",
        "import_limit_kw": 0.0,
        "kind": "para14a",
    },
]


def _out(e: Envelope, now: float) -> dict[str, Any]:
    return {**e.as_dict(), "in_force": e.start <= now < e.end}


async def _body(request: Request) -> bytes:
    body = await request.body()
    if not body.strip():
        raise ProblemError(
            422, "the body is empty: send envelopes", errors=[{"field": "body", "message": "empty"}]
        )
    return body


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProblemError(
            422,
            f"the body is not JSON ({exc}); send a list of envelopes",
            errors=[{"field": "body", "message": "not JSON"}],
        ) from None


def _saved(envs: list[Envelope], n: int) -> dict[str, Any]:
    return {"saved": n, "ids": [e.id for e in envs[:100]]}


@router.put(
    "/envelopes",
    summary="Set operating envelopes (a batch)",
    description=(
        "Insert or replace (by `id`) a batch of operating envelopes: import and/or export "
        "limits [kW, >= 0] on a site's connection point or a grid node over `[start, end)` "
        '(ISO 8601 with offset). JSON: a list (or `{"envelopes": [...]}`); CSV '
        "(`text/csv`) with the columns of docs/envelopes.md. Every problem is reported at "
        "once (422, entry, field and message each), nothing is stored then. Dispatch, "
        "plans and flexibility honour them from the next control cycle. Role: operator."
    ),
    responses={
        415: {"model": ProblemOut, "description": "Neither JSON nor CSV."},
        422: {"model": ProblemOut, "description": "Each problem listed."},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "array", "items": {"type": "object"}},
                    "example": _EXAMPLE,
                },
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
)
async def put_envelopes(request: Request, runtime: RuntimeDep, principal: Operator) -> Any:
    """Parse, validate and hand the batch to ``runtime.envelopes.put``."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await _body(request)
    now = runtime.now()
    if ctype in _CSV:
        text = body.decode("utf-8", errors="replace")
        envs = await run_in_threadpool(lambda: parse_csv(text, now=now))
    elif ctype in _JSON or not ctype:
        raw = _json(body)
        if isinstance(raw, dict) and "envelopes" in raw:
            raw = raw["envelopes"]
        envs = await run_in_threadpool(lambda: parse_envelopes(raw, now=now))
    else:
        raise ProblemError(415, f"send application/json or text/csv, not {ctype!r}")
    n = await runtime.envelopes.put(envs, principal)
    return _saved(envs, n)


@router.put(
    "/envelopes/csip",
    summary="Import a CSIP-AUS DERControlList",
    description=(
        "Import the `DERControl`s of a CSIP-AUS (IEEE 2030.5) `DERControlList` in JSON as "
        "envelopes on one site or grid node: `csipaus:opModImpLimW` / `opModExpLimW` "
        "(ActivePower: value x 10^multiplier W), `interval.start` + `duration`, "
        "`creationTime` as issued, `mRID` as id. Cancelled and superseded controls are "
        "skipped. Role: operator."
    ),
    responses={422: {"model": ProblemOut, "description": "Each problem listed."}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def put_csip(
    request: Request,
    runtime: RuntimeDep,
    principal: Operator,
    target_type: Annotated[TargetType, Query(description="site or node")],
    target_id: Annotated[str, Query(min_length=1, max_length=128, description="Its id.")],
) -> Any:
    """Parse the DERControlList and hand its envelopes to ``runtime.envelopes.put``."""
    doc = _json(await _body(request))
    now = runtime.now()
    envs = await run_in_threadpool(
        lambda: parse_csip(doc, target_type=target_type, target_id=target_id, now=now)
    )
    n = await runtime.envelopes.put(envs, principal)
    return _saved(envs, n)


@router.get(
    "/envelopes",
    summary="Operating envelopes in force and upcoming",
    description=(
        "The envelopes that have not ended, by start; `active_at` keeps those in force "
        "at that time, `target_id` those of one site or node. Role: viewer."
    ),
)
async def get_envelopes(
    runtime: RuntimeDep,
    _: Viewer,
    active_at: Annotated[datetime | None, Query(description="ISO 8601 with offset.")] = None,
    target_id: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> Any:
    """List ``runtime.envelopes.find``."""
    if active_at is not None and active_at.tzinfo is None:
        raise ProblemError(422, "active_at needs a UTC offset (add Z or +hh:mm)")
    at = epoch(active_at) if active_at is not None else None
    envs = runtime.envelopes.find(at)
    if target_id is not None:
        envs = [e for e in envs if e.target_id == target_id]
    now = runtime.now()
    return {"total": len(envs), "items": [_out(e, now) for e in envs[:limit]]}


@router.get(
    "/envelopes/holds",
    summary="Sites and nodes held within their envelopes",
    description=(
        "With no event or plan holding them, sites and grid nodes that break an envelope "
        "in force are brought back inside it each control cycle (PV curtailed, batteries "
        "charged or discharged, EV chargers and heat pumps dimmed, §14a never below 4.2 kW "
        "per device). Per site: `breach_kw` before the hold [kW, + export past the export "
        "limit, - import past the import limit], `left_kw` what the free devices could not "
        "remove, `devices_held`, `moved_kw` [kW, generator sign], `since`; nodes in breach; "
        "`log`: when sites were held and released, newest first. Role: viewer."
    ),
)
async def get_holds(runtime: RuntimeDep, _: Viewer) -> Any:
    """``runtime.envelopes.holds()``."""
    return runtime.envelopes.holds()


@router.delete(
    "/envelopes",
    summary="Delete operating envelopes",
    description="Delete envelopes by id (`?id=a&id=b`); 404 if none exists. Role: operator.",
    responses={404: {"model": ProblemOut}},
)
async def delete_envelopes(
    runtime: RuntimeDep,
    principal: Operator,
    id: Annotated[list[str], Query(min_length=1, max_length=10_000, description="Ids.")],
) -> Any:
    """Hand the ids to ``runtime.envelopes.delete``."""
    found = await runtime.envelopes.delete(id, principal)
    return {"deleted": len(found), "ids": found[:100]}
