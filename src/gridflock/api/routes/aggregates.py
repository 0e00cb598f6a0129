"""Aggregates for dashboards: battery SoC distribution, sites on a map, a device's commands.

The server aggregates so a browser never receives per-device series for the whole fleet:
the SoC histogram is a handful of bins, and the map returns at most ``max_points``
points (sites, or cells of sites when the fleet is larger).
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field

from gridflock.api._catalog import CatalogCache
from gridflock.api._convert import frame_rows
from gridflock.api.auth import Viewer
from gridflock.api.deps import RuntimeDep
from gridflock.api.errors import ProblemError
from gridflock.api.schemas import CommandOut, ProblemOut
from gridflock.domain.kinds import DeviceKind
from gridflock.fleet.state import FleetState

__all__ = ["router", "site_map", "soc_histogram"]

router = APIRouter(tags=["fleet"])


class SocBinOut(BaseModel):
    """One bin of the state-of-charge histogram."""

    soc_lo: float = Field(description="Lower edge [0..1], included.")
    soc_hi: float = Field(description="Upper edge [0..1], excluded (the last bin includes 1).")
    devices: int = Field(description="Online batteries in the bin.")


class SocHistogramOut(BaseModel):
    """Online batteries by state of charge."""

    batteries: int = Field(description="Batteries provisioned.")
    online: int = Field(description="Batteries online (the histogram counts these).")
    mean_soc: float | None = Field(description="Mean state of charge of online batteries [0..1].")
    e_stored_kwh: float = Field(description="Energy stored in online batteries [kWh].")
    e_capacity_kwh: float = Field(description="Capacity of online batteries [kWh].")
    bins: list[SocBinOut]


class SiteMapOut(BaseModel):
    """Sites by position, one point per site or per cell of sites (columns as lists)."""

    binned: bool = Field(description="Whether points are cells of several sites.")
    cell_deg: float | None = Field(description="Cell size [deg] when binned.")
    sites: int = Field(description="Sites in the fleet.")
    lat: list[float] = Field(description="Latitude of each point [deg] (mean of its sites).")
    lon: list[float] = Field(description="Longitude of each point [deg] (mean of its sites).")
    count: list[int] = Field(description="Sites in each point.")
    p_kw: list[float] = Field(description="Net power of each point now [kW], > 0 towards grid.")
    online_pct: list[float] = Field(description="Devices online in each point [%].")
    id: list[str] | None = Field(description="Site id of each point (unbinned only).")


def soc_histogram(state: FleetState, bins: int) -> dict[str, Any]:
    """Histogram of the online batteries' state of charge over ``bins`` equal bins of 0..1."""
    sl = state.kind_slices.get(DeviceKind.BATTERY, slice(0, 0))
    soc = state.soc[sl]
    e_kwh = state.e_kwh[sl]
    ok = state.online[sl] & np.isfinite(soc)
    edges = np.linspace(0.0, 1.0, bins + 1)
    counts, _ = np.histogram(np.clip(soc[ok], 0.0, 1.0), bins=edges)
    cap = np.where(np.isfinite(e_kwh[ok]), e_kwh[ok], 0.0)
    return {
        "batteries": int(soc.size),
        "online": int(ok.sum()),
        "mean_soc": float(soc[ok].mean()) if ok.any() else None,
        "e_stored_kwh": float((soc[ok] * cap).sum()),
        "e_capacity_kwh": float(cap.sum()),
        "bins": [
            {"soc_lo": float(edges[i]), "soc_hi": float(edges[i + 1]), "devices": int(counts[i])}
            for i in range(bins)
        ],
    }


def site_map(state: FleetState, max_points: int) -> dict[str, Any]:
    """Sites' position, net power and devices online; binned into cells above ``max_points``."""
    grid = state.grid
    n_sites = grid.n_sites
    lat = np.asarray(grid.site_lat, dtype=float)
    lon = np.asarray(grid.site_lon, dtype=float)
    p_site = state.site_power_kw(np.where(state.online, state.p_kw, 0.0))
    has_site = state.site_idx >= 0
    dev_site = state.site_idx[has_site]
    total = np.bincount(dev_site, minlength=n_sites).astype(float)
    online = np.bincount(dev_site, weights=state.online[has_site].astype(float), minlength=n_sites)
    if n_sites <= max_points:
        return {
            "binned": False,
            "cell_deg": None,
            "sites": n_sites,
            "lat": lat.tolist(),
            "lon": lon.tolist(),
            "count": [1] * n_sites,
            "p_kw": p_site.tolist(),
            "online_pct": (100.0 * online / np.maximum(total, 1.0)).tolist(),
            "id": [str(s) for s in grid.site_ids],
        }
    # square cells sized so the occupied ones number at most about max_points
    span = max(float(np.ptp(lat)), float(np.ptp(lon)), 1e-6)
    cells_per_side = max(int(np.sqrt(max_points)), 1)
    cell = span / cells_per_side * 1.0001
    i = np.floor((lat - lat.min()) / cell).astype(np.int64)
    j = np.floor((lon - lon.min()) / cell).astype(np.int64)
    code = i * (cells_per_side + 1) + j
    cells, inverse = np.unique(code, return_inverse=True)
    k = len(cells)
    count = np.bincount(inverse, minlength=k).astype(float)

    def total_of(values: np.ndarray) -> np.ndarray:
        return np.bincount(inverse, weights=values, minlength=k)

    return {
        "binned": True,
        "cell_deg": cell,
        "sites": n_sites,
        "lat": (total_of(lat) / count).tolist(),
        "lon": (total_of(lon) / count).tolist(),
        "count": count.astype(int).tolist(),
        "p_kw": total_of(p_site).tolist(),
        "online_pct": (100.0 * total_of(online) / np.maximum(total_of(total), 1.0)).tolist(),
        "id": None,
    }


@router.get(
    "/fleet/soc",
    summary="Battery state of charge distribution",
    description=(
        "Online batteries counted by state of charge in `bins` equal bins of 0..1, with the "
        "energy they store. Role: viewer."
    ),
    response_model=SocHistogramOut,
)
async def fleet_soc(
    runtime: RuntimeDep,
    _: Viewer,
    bins: Annotated[int, Query(ge=1, le=100, description="Number of bins.")] = 10,
) -> Any:
    """Report :func:`soc_histogram` of the fleet state."""
    return soc_histogram(runtime.state, bins)


@router.get(
    "/fleet/map",
    summary="Sites on a map",
    description=(
        "Every site's position, net power and share of devices online; a fleet with more "
        "than `max_points` sites is binned into square cells (position: mean of the sites "
        "in the cell, power: their sum). Lists are columns: the i-th point is the i-th "
        "entry of each. Role: viewer."
    ),
    response_model=SiteMapOut,
)
async def fleet_map(
    runtime: RuntimeDep,
    _: Viewer,
    max_points: Annotated[
        int, Query(ge=1, le=20_000, description="Most sites returned before binning.")
    ] = 2000,
) -> Any:
    """Report :func:`site_map` of the fleet state."""
    return site_map(runtime.state, max_points)


@router.get(
    "/devices/{device_id}/commands",
    summary="Commands sent to a device",
    description=(
        "The latest commands sent to one device, newest first, with their acknowledgement "
        "(status accepted / rejected with reason, acked_at). Role: viewer."
    ),
    response_model=list[CommandOut],
    responses={404: {"model": ProblemOut}},
)
def device_commands(
    request: Request,
    runtime: RuntimeDep,
    _: Viewer,
    device_id: Annotated[str, Path(description="Device id.")],
    limit: Annotated[int, Query(ge=1, le=1000, description="Most commands returned.")] = 50,
) -> Any:
    """Report ``store.commands_for_device``."""
    cache: CatalogCache = request.app.state.catalog
    devices = cache.get(runtime).devices
    if not (devices["id"] == device_id).any():
        raise ProblemError(404, f"unknown device {device_id!r}: list devices at /api/v1/devices")
    return frame_rows(runtime.store.commands_for_device(device_id, limit))
