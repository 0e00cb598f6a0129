"""The fleet as a whole: summary, history, flexibility, grid nodes, and import."""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from gridflock.api._convert import epoch, frame_rows, jsonable
from gridflock.api._time import window
from gridflock.api.auth import Admin, Viewer
from gridflock.api.deps import RuntimeDep
from gridflock.api.errors import ProblemError
from gridflock.api.schemas import (
    FleetHistoryRow,
    FleetImportOut,
    FleetSummaryOut,
    FlexibilityRow,
    GridNodeOut,
    ProblemOut,
)
from gridflock.domain.errors import Problem, ValidationError
from gridflock.domain.spec import FleetSpec
from gridflock.fleet.envelopes import effective_grid
from gridflock.fleet.files import read_fleet
from gridflock.fleet.state import GridTopology
from gridflock.gridcode import check_fleet

__all__ = ["router"]

router = APIRouter(tags=["fleet"])

_ISO = "ISO 8601 time; with no offset it is read as UTC."


class GroupBy(StrEnum):
    """Groupings of the flexibility endpoint."""

    KIND = "kind"
    GRID_NODE = "grid_node"
    PROGRAM = "program"
    REGION = "region"


@router.get(
    "/fleet",
    summary="Fleet summary now",
    description=(
        "Net power and flexibility of the whole fleet, with device counts and a split by "
        "device kind. Cheap: computed from the in-memory fleet state. Role: viewer."
    ),
    response_model=FleetSummaryOut,
)
async def fleet_summary(runtime: RuntimeDep, _: Viewer) -> Any:
    """Report ``runtime.fleet_summary()``."""
    return jsonable(runtime.fleet_summary())


@router.get(
    "/fleet/history",
    summary="Fleet power over time",
    description=(
        "Net fleet power and power by device kind [kW] over `[start, end)`; defaults to "
        "the last 6 hours. One row per control cycle, or the mean over each step of "
        "`every_s` seconds. Role: viewer."
    ),
    response_model=list[FleetHistoryRow],
)
def fleet_history(
    runtime: RuntimeDep,
    _: Viewer,
    start: Annotated[datetime | None, Query(description=_ISO + " Default: end - 6 h.")] = None,
    end: Annotated[datetime | None, Query(description=_ISO + " Default: now.")] = None,
    every_s: Annotated[
        int | None,
        Query(ge=1, le=86_400, description="Resampling step [s]: mean power per step."),
    ] = None,
) -> Any:
    """Report ``runtime.fleet_history``, resampled when asked."""
    s, e = window(start, end, runtime.now(), timedelta(hours=6))
    df = runtime.fleet_history(epoch(s), epoch(e))
    if every_s is not None and len(df):
        step = df["ts"].dt.floor(f"{every_s}s")
        df = df.groupby(step, sort=True).mean(numeric_only=True).reset_index()
    return frame_rows(df)


@router.get(
    "/fleet/history/groups",
    summary="Power by grid node, programme or region over time",
    description=(
        "One sample a minute over `[start, end)` (default: the last 6 hours): for "
        "`by=grid_node` the power each node carries from its sites [kW, + towards the "
        "upstream grid], for `program` and `region` the sum over their sites. Rows: "
        "ts, group, p_kw. Role: viewer."
    ),
)
def group_history(
    runtime: RuntimeDep,
    _: Viewer,
    by: Annotated[
        str,
        Query(pattern="^(grid_node|program|region)$", description="grid_node, program or region."),
    ] = "grid_node",
    start: Annotated[datetime | None, Query(description=_ISO + " Default: end - 6 h.")] = None,
    end: Annotated[datetime | None, Query(description=_ISO + " Default: now.")] = None,
) -> Any:
    """Report ``runtime.group_history``."""
    s, e = window(start, end, runtime.now(), timedelta(hours=6))
    return frame_rows(runtime.group_history(epoch(s), epoch(e), by))


@router.get(
    "/flexibility",
    summary="Flexibility by group",
    description=(
        "How many kW each group can move up (more export / less import) and down, and "
        "hold for `duration_h` hours, within every site and grid-node limit: the same "
        "figure as `/fleet` (whose flex_duration_h rows sum to its totals), with what active "
        "events hold (`committed_*`) and what is left for a new event (`remaining_*`). "
        "With `scope`, only that scope's devices count. Role: viewer."
    ),
    response_model=list[FlexibilityRow],
)
async def flexibility(
    runtime: RuntimeDep,
    _: Viewer,
    duration_h: Annotated[
        float,
        Query(
            ge=0.01,
            le=48,
            description="How long the flexibility must be held [h], 0.01 (36 s) to 48.",
        ),
    ] = 1.0,
    by: Annotated[GroupBy, Query(description="Grouping.")] = GroupBy.KIND,
    scope: Annotated[
        str,
        Query(
            max_length=200,
            description="fleet, grid_node:ID, program:TAG or region:TAG.",
        ),
    ] = "fleet",
) -> Any:
    """Report ``runtime.flexibility`` (a malformed scope, or one naming nothing, is a 422)."""
    df = runtime.flexibility(duration_h, by.value, scope)
    rows = frame_rows(df)
    for row in rows:
        row["group"] = str(row.get(by.value, row.get("group", "")))
        for old, new in (("up_kw", "flex_up_kw"), ("down_kw", "flex_down_kw")):
            if old in row and new not in row:
                row[new] = row.pop(old)
    return rows


@router.get(
    "/grid-nodes",
    summary="Grid nodes and their loading",
    description=(
        "Every grid node (substation, transformer, feeder) with its limits and the power "
        "it carries now from the sites below it. The limits are those in force: the "
        "static ones tightened by the grid operator's envelopes (`envelope` true where one "
        "holds now). Role: viewer."
    ),
    response_model=list[GridNodeOut],
)
async def grid_nodes(runtime: RuntimeDep, _: Viewer) -> Any:
    """Join the provisioned nodes with the live node flow."""
    state = runtime.state
    now = runtime.now()
    static = state.grid
    grid = effective_grid(static, runtime.envelopes.find(now), now)
    tightened = (grid.limit_import_kw < static.limit_import_kw) | (
        grid.limit_export_kw < static.limit_export_kw
    )
    flow = grid.node_flow_kw(state.site_power_kw())
    nodes = runtime.spec.grid_nodes
    parent = dict(zip(nodes["id"], nodes["parent"], strict=True))
    direct = np.bincount(grid.site_node[grid.site_node >= 0], minlength=grid.n_nodes)
    peaks = _peaks(runtime.group_history(now - 86_400, now + 1, "grid_node"), grid)
    out = []
    for j, nid in enumerate(grid.node_ids):
        load = float(flow[j])
        limit = float(grid.limit_export_kw[j] if load >= 0 else grid.limit_import_kw[j])
        out.append(
            {
                "id": str(nid),
                "kind": str(grid.node_kind[j]),
                "parent": str(parent.get(nid, "")),
                "limit_import_kw": float(grid.limit_import_kw[j]),
                "limit_export_kw": float(grid.limit_export_kw[j]),
                "load_kw": load,
                "utilisation_pct": abs(load) / limit * 100.0 if limit > 0 else None,
                "sites": int(direct[j]),
                "envelope": bool(tightened[j]),
                **peaks.get(str(nid), {"peak_utilisation_pct_24h": None, "peak_at": None}),
            }
        )
    return out


_YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
_CSV_TYPES = ("text/csv", "application/csv")
_YAML_EXAMPLE = """version: 1
grid_nodes:
  - {id: tx-1, kind: transformer, limit_import_kw: 400, limit_export_kw: 400}
sites:
  - id: home-1
    lat: 48.14
    lon: 11.58
    grid_node: tx-1
    devices:
      - {id: home-1-bat, kind: battery, e_kwh: 10, p_charge_max_kw: 5, p_discharge_max_kw: 5}
"""


def _parse(body: bytes, suffix: str, grid_nodes: FleetSpec | None) -> FleetSpec:
    """Parse a fleet file body through the fleet-file readers (via a temporary file)."""
    with tempfile.TemporaryDirectory(prefix="gridflock-import-") as tmp:
        path = Path(tmp) / f"fleet{suffix}"
        path.write_bytes(body)
        if grid_nodes is not None:
            grid_nodes.grid_nodes.to_csv(path.with_name("fleet.grid_nodes.csv"), index=False)
        try:
            spec = read_fleet(path)
            _refuse_code_breaches(spec)
            return spec
        except ValidationError as exc:
            names = {str(path): "body", str(path.with_name("fleet.grid_nodes.csv")): "grid nodes"}
            raise ValidationError(
                [
                    Problem(names.get(p.source, p.source), p.entry, p.field, p.message)
                    for p in exc.problems
                ]
            ) from None


def _refuse_code_breaches(spec: FleetSpec) -> None:
    """A device that breaks its site's grid code refuses the file (gridcode.check_fleet)."""
    errors = [i for i in check_fleet(spec) if i.severity == "error"]
    if errors:
        raise ValidationError(
            [Problem("body", i.entry, i.field, f"{i.message} [{i.clause}]") for i in errors]
        )


@router.post(
    "/fleet/import",
    summary="Replace the fleet from a fleet file",
    description=(
        "Replace the provisioned fleet (grid nodes, sites, devices) with the fleet file in "
        "the body, in the format of `docs/fleet-files.md`: YAML (`Content-Type: "
        "application/yaml`) or CSV (`text/csv`, one row per device). A CSV carries no grid "
        "nodes, so the fleet's current grid nodes are kept. Live values of devices that "
        "stay are kept. Every problem in the file is reported at once (422, each with "
        "entry, field and message), devices that break their site's grid code included "
        "(docs/grid-codes.md). Running events go on over the devices that stay "
        "(matched by id); an event whose scope left the fleet fails. Role: admin."
    ),
    response_model=FleetImportOut,
    responses={
        415: {"model": ProblemOut, "description": "Not YAML or CSV."},
        422: {"model": ProblemOut, "description": "The file has problems; each is listed."},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/yaml": {"schema": {"type": "string"}, "example": _YAML_EXAMPLE},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
)
async def import_fleet(request: Request, runtime: RuntimeDep, principal: Admin) -> Any:
    """Parse the body and hand the fleet to ``runtime.import_fleet``."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in _YAML_TYPES:
        suffix, nodes = ".yaml", None
    elif ctype in _CSV_TYPES:
        suffix, nodes = ".csv", runtime.spec
    else:
        raise ProblemError(
            415,
            f"send the fleet file as application/yaml or text/csv, not {ctype or 'nothing'!r}",
        )
    body = await request.body()
    if not body.strip():
        raise ProblemError(
            422,
            "the body is empty: send a fleet file",
            errors=[{"field": "body", "message": "is empty"}],
        )
    spec = await run_in_threadpool(_parse, body, suffix, nodes)
    await runtime.import_fleet(spec, principal)
    return {
        "grid_nodes": len(spec.grid_nodes),
        "sites": len(spec.sites),
        "devices": spec.n_devices,
        "by_kind": spec.counts(),
    }


def _peaks(history: pd.DataFrame, grid: GridTopology) -> dict[str, dict[str, Any]]:
    """Each node's highest utilisation over the history, and when.

    That is where the fleet pushed against a limit (a minute sample per node, in the
    direction the power flowed).
    """
    if not len(history):
        return {}
    pos = pd.Index(grid.node_ids).get_indexer(history["group"].to_numpy(object))  # type: ignore[arg-type]
    p = history["p_kw"].to_numpy(float)
    limit = np.where(p >= 0, grid.limit_export_kw[pos], grid.limit_import_kw[pos])
    with np.errstate(divide="ignore", invalid="ignore"):
        util = np.where(limit > 0, np.abs(p) / limit * 100.0, np.nan)
    frame = pd.DataFrame({"group": history["group"], "util": util, "ts": history["ts"]})
    frame = frame.dropna(subset=["util"])
    top = frame.loc[frame.groupby("group")["util"].idxmax()]
    return {
        str(g): {"peak_utilisation_pct_24h": float(u), "peak_at": ts.isoformat()}
        for g, u, ts in zip(top["group"], top["util"], top["ts"], strict=True)
    }
