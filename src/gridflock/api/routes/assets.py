"""Sites and devices: lists with filters, one by id, and their telemetry."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from fastapi import APIRouter, Path, Query, Request, Response

from gridflock.api._catalog import Catalog, CatalogCache
from gridflock.api._convert import frame_rows
from gridflock.api._time import window
from gridflock.api.auth import Admin, Viewer
from gridflock.api.deps import PageDep, RuntimeDep
from gridflock.api.errors import ProblemError
from gridflock.api.runtime import Runtime
from gridflock.api.schemas import (
    DeviceDetailOut,
    DeviceOut,
    PageOut,
    ProblemOut,
    SiteDetailOut,
    SiteOut,
    TelemetryOut,
)
from gridflock.domain.kinds import DeviceKind
from gridflock.domain.spec import FleetSpec

__all__ = ["router"]

router = APIRouter(tags=["sites and devices"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ProblemOut}}
_ISO = "ISO 8601 time; with no offset it is read as UTC."
_EVERY = (
    "Resampling step [s, whole seconds]: mean power per step. Absent: raw readings (devices only)."
)


def _catalog(request: Request, runtime: Runtime) -> Catalog:
    cache: CatalogCache = request.app.state.catalog
    return cache.get(runtime)


@router.get(
    "/sites",
    summary="List sites",
    description=(
        "Sites with their connection, tags and live net power, filtered and paged. Role: viewer."
    ),
    response_model=PageOut[SiteOut],
)
async def list_sites(
    request: Request,
    runtime: RuntimeDep,
    _: Viewer,
    page: PageDep,
    grid_node: Annotated[str | None, Query(description="Only sites on this node.")] = None,
    program: Annotated[str | None, Query(description="Only sites in this program.")] = None,
    region: Annotated[str | None, Query(description="Only sites in this region.")] = None,
    q: Annotated[str | None, Query(description="Substring of the site id.")] = None,
) -> Any:
    """Filter ``spec.sites`` and page."""
    cat = _catalog(request, runtime)
    sites = cat.spec.sites
    keep = np.ones(len(sites), bool)
    for col, value in (("grid_node", grid_node), ("program", program), ("region", region)):
        if value is not None:
            keep &= (sites[col] == value).to_numpy()
    if q:
        keep &= sites["id"].str.contains(q, regex=False).to_numpy()
    positions = np.flatnonzero(keep)
    return {
        "items": cat.sites(positions[page.slice()]),
        "total": len(positions),
        "limit": page.limit,
        "offset": page.offset,
    }


def _site_position(cat: Catalog, site_id: str) -> int:
    where = np.flatnonzero((cat.spec.sites["id"] == site_id).to_numpy())
    if not len(where):
        raise ProblemError(404, f"unknown site {site_id!r}: list sites at /api/v1/sites")
    return int(where[0])


def _device_position(cat: Catalog, device_id: str) -> int:
    where = np.flatnonzero((cat.devices["id"] == device_id).to_numpy())
    if not len(where):
        raise ProblemError(404, f"unknown device {device_id!r}: list devices at /api/v1/devices")
    return int(where[0])


@router.get(
    "/sites/{site_id}",
    summary="One site with its devices",
    description="A site, its live net power, and each device's latest values. Role: viewer.",
    response_model=SiteDetailOut,
    responses=_NOT_FOUND,
)
async def get_site(
    request: Request,
    runtime: RuntimeDep,
    _: Viewer,
    site_id: Annotated[str, Path(description="Site id.")],
) -> Any:
    """One site by id."""
    cat = _catalog(request, runtime)
    pos = _site_position(cat, site_id)
    rec = cat.sites(np.array([pos]))[0]
    mine = np.flatnonzero((cat.devices["site_id"] == site_id).to_numpy())
    rec["devices"] = cat.device_live(mine)
    return rec


@router.get(
    "/devices",
    summary="List devices",
    description=(
        "Devices with their latest values (power, state of charge, online), filtered and "
        "paged. Role: viewer."
    ),
    response_model=PageOut[DeviceOut],
)
async def list_devices(
    request: Request,
    runtime: RuntimeDep,
    _: Viewer,
    page: PageDep,
    kind: Annotated[DeviceKind | None, Query(description="Only devices of this kind.")] = None,
    site_id: Annotated[str | None, Query(description="Only devices at this site.")] = None,
    gateway_id: Annotated[str | None, Query(description="Only devices behind it.")] = None,
    protocol: Annotated[
        Literal["mqtt", "edge", "ocpp", "twin"] | None,
        Query(description="Only devices reached over this protocol."),
    ] = None,
    online: Annotated[bool | None, Query(description="Only online (or offline) ones.")] = None,
) -> Any:
    """Filter the device table and page."""
    cat = _catalog(request, runtime)
    devs = cat.devices
    keep = np.ones(len(devs), bool)
    if kind is not None:
        keep &= (devs["kind"] == kind.value).to_numpy()
    for col, value in (("site_id", site_id), ("gateway_id", gateway_id), ("protocol", protocol)):
        if value is not None:
            keep &= (devs[col] == value).to_numpy()
    if online is not None:
        keep &= cat.online() == online
    positions = np.flatnonzero(keep)
    return {
        "items": cat.device_live(positions[page.slice()]),
        "total": len(positions),
        "limit": page.limit,
        "offset": page.offset,
    }


@router.get(
    "/devices/{device_id}",
    summary="One device",
    description="A device's latest values and its capability model. Role: viewer.",
    response_model=DeviceDetailOut,
    responses=_NOT_FOUND,
)
async def get_device(
    request: Request,
    runtime: RuntimeDep,
    _: Viewer,
    device_id: Annotated[str, Path(description="Device id.")],
) -> Any:
    """One device by id."""
    cat = _catalog(request, runtime)
    pos = _device_position(cat, device_id)
    rec = cat.device_live(np.array([pos]))[0]
    rec["attributes"] = cat.attributes(device_id, rec["kind"])
    return rec


EverySDep = Annotated[int | None, Query(ge=1, le=86_400, description=_EVERY)]
StartDep = Annotated[datetime | None, Query(description=_ISO + " Default: end - 6 h.")]
EndDep = Annotated[datetime | None, Query(description=_ISO + " Default: now.")]


@router.get(
    "/devices/{device_id}/telemetry",
    summary="A device's telemetry",
    description=(
        "Stored readings of one device over `[start, end)` (default: the last 6 hours): raw, "
        "or resampled to `every_s` seconds (mean power, last state of charge). "
        "Role: viewer."
    ),
    response_model=TelemetryOut,
    responses=_NOT_FOUND,
)
def device_telemetry(
    request: Request,
    runtime: RuntimeDep,
    _: Viewer,
    device_id: Annotated[str, Path(description="Device id.")],
    start: StartDep = None,
    end: EndDep = None,
    every_s: EverySDep = None,
) -> Any:
    """Query the store, raw or resampled."""
    _device_position(_catalog(request, runtime), device_id)
    s, e = window(start, end, runtime.now(), timedelta(hours=6))
    if every_s is None:
        df = runtime.store.query_telemetry(device_id, s, e)
    else:
        df = runtime.store.query_telemetry_resampled([device_id], s, e, every_s)
        df = df.drop(columns=["device_id"], errors="ignore")
    return {"subject": device_id, "start": s, "end": e, "every_s": every_s, "items": frame_rows(df)}


@router.get(
    "/sites/{site_id}/telemetry",
    summary="A site's telemetry",
    description=(
        "Net power of a site over `[start, end)` (default: the last 6 hours): the sum over "
        "its devices of their mean power in each step of `every_s` seconds (default 300; "
        "a device with no reading in a step adds nothing to it). Role: viewer."
    ),
    response_model=TelemetryOut,
    responses=_NOT_FOUND,
)
def site_telemetry(
    request: Request,
    runtime: RuntimeDep,
    _: Viewer,
    site_id: Annotated[str, Path(description="Site id.")],
    start: StartDep = None,
    end: EndDep = None,
    every_s: Annotated[
        int, Query(ge=1, le=86_400, description="Resampling step [s, whole seconds].")
    ] = 300,
) -> Any:
    """Resample the site's devices and sum them per step."""
    cat = _catalog(request, runtime)
    _site_position(cat, site_id)
    s, e = window(start, end, runtime.now(), timedelta(hours=6))
    ids = cat.devices.loc[cat.devices["site_id"] == site_id, "id"].astype(str).tolist()
    df = runtime.store.query_telemetry_resampled(ids, s, e, every_s)
    summed = (
        df.groupby("ts", sort=True)
        .agg(p_kw=("p_kw", "sum"), devices=("device_id", "nunique"))
        .reset_index()
        if len(df)
        else pd.DataFrame({"ts": pd.Series([], dtype="datetime64[us, UTC]"), "p_kw": []})
    )
    return {
        "subject": site_id,
        "start": s,
        "end": e,
        "every_s": every_s,
        "items": frame_rows(summed),
    }


@router.delete(
    "/devices/{device_id}",
    summary="Remove a device",
    description=(
        "Remove one device from the fleet (it is no longer dispatched or listed); the rest "
        "of the fleet and its live values stay as they are. Role: admin."
    ),
    status_code=204,
    response_class=Response,
    responses=_NOT_FOUND,
)
async def delete_device(
    request: Request,
    runtime: RuntimeDep,
    principal: Admin,
    device_id: Annotated[str, Path(description="Device id.")],
) -> Response:
    """Re-import the fleet without the device (the runtime keeps state and store in step)."""
    cat = _catalog(request, runtime)
    _device_position(cat, device_id)
    spec = cat.spec
    devices = {
        k: df[df["id"] != device_id].reset_index(drop=True) for k, df in spec.devices.items()
    }
    await runtime.import_fleet(
        FleetSpec(grid_nodes=spec.grid_nodes, sites=spec.sites, devices=devices), principal
    )
    return Response(status_code=204)
