"""Gateways, API keys and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response, status
from starlette.concurrency import run_in_threadpool

from gridflock.api._convert import jsonable
from gridflock.api._time import aware
from gridflock.api.auth import Admin, Viewer, forget_key
from gridflock.api.deps import PageDep, RuntimeDep
from gridflock.api.errors import ProblemError
from gridflock.api.schemas import (
    ApiKeyOut,
    AuditEntryOut,
    GatewayCreate,
    GatewayCreatedOut,
    GatewayOut,
    PageOut,
    ProblemOut,
)
from gridflock.domain.errors import clip

__all__ = ["router"]

router = APIRouter()

_ISO = "ISO 8601 time; with no offset it is read as UTC."


def _gateway(record: Any) -> dict[str, Any]:
    """A gateway record without its password hash."""
    fields = ("id", "kind", "site_id", "groups", "created_at", "last_seen_at")
    out: dict[str, Any] = jsonable({f: getattr(record, f, None) for f in fields})
    return out


@router.get(
    "/gateways",
    tags=["gateways"],
    summary="List gateways",
    description="Provisioned gateways (never their passwords), by id. Role: viewer.",
    response_model=PageOut[GatewayOut],
)
def list_gateways(runtime: RuntimeDep, _: Viewer, page: PageDep) -> Any:
    """Report ``store.list_gateways``."""
    records = runtime.store.list_gateways()
    return {
        "items": [_gateway(g) for g in records[page.slice()]],
        "total": len(records),
        "limit": page.limit,
        "offset": page.offset,
    }


@router.post(
    "/gateways",
    tags=["gateways"],
    summary="Provision a gateway",
    description=(
        "Register a gateway on the MQTT broker. The response carries its password, "
        "**shown only this once** (only a hash is stored). Role: admin."
    ),
    status_code=status.HTTP_201_CREATED,
    response_model=GatewayCreatedOut,
    responses={
        409: {"model": ProblemOut, "description": "The id is taken."},
        422: {"model": ProblemOut, "description": "Invalid."},
    },
)
async def create_gateway(
    body: GatewayCreate, runtime: RuntimeDep, principal: Admin, response: Response
) -> Any:
    """Provision through ``runtime.provision_gateway``."""
    password = await runtime.provision_gateway(
        body.id, kind=body.kind, site_id=body.site_id, groups=body.groups, principal=principal
    )
    response.headers["Location"] = f"/api/v1/gateways/{body.id}"
    return {
        "id": body.id,
        "kind": body.kind,
        "site_id": body.site_id,
        "groups": body.groups,
        "password": password,
    }


@router.delete(
    "/gateways/{gateway_id}",
    tags=["gateways"],
    summary="Remove a gateway",
    description=(
        "Delete a gateway and audit it. Its account leaves the broker's files at the next "
        "`gridflock broker acl` (then restart the broker): from then on it cannot connect. "
        "Role: admin."
    ),
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={404: {"model": ProblemOut}},
)
def delete_gateway(
    runtime: RuntimeDep,
    principal: Admin,
    gateway_id: Annotated[str, Path(description="Gateway id.", max_length=64)],
) -> Response:
    """Delete through ``store.delete_gateway`` and audit it (``gateway.delete``)."""
    if not runtime.store.delete_gateway(gateway_id):
        raise ProblemError(404, f"unknown gateway {gateway_id!r}: list them at /api/v1/gateways")
    runtime.store.audit(principal.label, "gateway.delete", gateway_id, None)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/apikeys",
    tags=["api keys"],
    summary="List API keys",
    description=(
        "Every API key's name, role and dates (never the key). Keys are created with "
        "`gridflock apikey create` and revoked with `gridflock apikey revoke` or "
        "`POST /api/v1/apikeys/{id}/revoke`. Role: admin."
    ),
    response_model=PageOut[ApiKeyOut],
)
def list_api_keys(runtime: RuntimeDep, _: Admin, page: PageDep) -> Any:
    """Report ``store.list_api_keys``."""
    keys = runtime.store.list_api_keys()
    fields = ("id", "name", "role", "created_at", "revoked_at", "last_used_at")
    return {
        "items": [jsonable({f: getattr(k, f, None) for f in fields}) for k in keys[page.slice()]],
        "total": len(keys),
        "limit": page.limit,
        "offset": page.offset,
    }


@router.post(
    "/apikeys/{key_id}/revoke",
    tags=["api keys"],
    summary="Revoke an API key",
    description=(
        "Revoke a key: from now on it is refused (401), and so are the dashboard sessions "
        "signed in with it. Audited as `apikey.revoke`. Revoking a key already revoked is "
        "a 409. Role: admin."
    ),
    response_model=ApiKeyOut,
    responses={
        404: {"model": ProblemOut, "description": "No key has this id."},
        409: {"model": ProblemOut, "description": "The key is already revoked."},
    },
)
async def revoke_api_key(
    request: Request,
    runtime: RuntimeDep,
    principal: Admin,
    key_id: Annotated[str, Path(description="The key's id (see GET /api/v1/apikeys).")],
) -> Any:
    """Revoke through ``store.revoke_api_key``, audit, and refuse the key in this process."""
    store = runtime.store
    records = {k.id: k for k in await run_in_threadpool(store.list_api_keys)}
    record = records.get(key_id)
    if record is None:
        raise ProblemError(
            404, f"no API key has the id {clip(key_id)!r}: list them at /api/v1/apikeys"
        )
    if record.revoked_at is None and await run_in_threadpool(store.revoke_api_key, key_id):
        await run_in_threadpool(
            store.audit,
            principal.label,
            "apikey.revoke",
            key_id,
            {"name": record.name, "role": str(record.role)},
        )
    else:
        raise ProblemError(409, f"the API key {key_id} ({record.name}) is already revoked")
    forget_key(request, key_id)
    fields = ("id", "name", "role", "created_at", "revoked_at", "last_used_at")
    updated = {k.id: k for k in await run_in_threadpool(store.list_api_keys)}[key_id]
    return jsonable({f: getattr(updated, f, None) for f in fields})


@router.get(
    "/audit",
    tags=["audit"],
    summary="Audit log",
    description=(
        "Who did what to which subject, newest first. `action` ending in `.*` matches a "
        "family (`event.*`). Role: viewer."
    ),
    response_model=list[AuditEntryOut],
)
def audit_log(
    runtime: RuntimeDep,
    _: Viewer,
    page: PageDep,
    actor: Annotated[str | None, Query(description="e.g. apikey:ops-desk")] = None,
    action: Annotated[str | None, Query(description="e.g. event.create or event.*")] = None,
    subject: Annotated[str | None, Query(description="e.g. an event id")] = None,
    since: Annotated[datetime | None, Query(description=_ISO + " Inclusive.")] = None,
    until: Annotated[datetime | None, Query(description=_ISO + " Exclusive.")] = None,
) -> Any:
    """Report ``store.audit_log``."""
    records = runtime.store.audit_log(
        actor=actor,
        action=action,
        subject=subject,
        since=aware(since) if since else None,
        until=aware(until) if until else None,
        limit=page.limit,
        offset=page.offset,
    )
    fields = ("id", "ts", "actor", "action", "subject", "detail")
    return [jsonable({f: getattr(r, f, None) for f in fields}) for r in records]
