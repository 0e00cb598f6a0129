"""Save and load the fleet specification: grid nodes, sites and devices, in bulk."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Table, Text, cast, delete, select
from sqlalchemy.engine import Connection

from gridflock.domain import (
    DEVICE_COMMON,
    GRID_NODE_ATTRS,
    KIND_ATTRS,
    SITE_ATTRS,
    FleetSpec,
    build_spec,
)
from gridflock.store._bulk import bulk_insert
from gridflock.store.models import DeviceRow, GridNodeRow, SiteRow, table_of

__all__ = ["load_fleet", "save_fleet"]

_NODE_COLS = [a.name for a in GRID_NODE_ATTRS]
_SITE_COLS = [a.name for a in SITE_ATTRS]
_COMMON_COLS = [a.name for a in DEVICE_COMMON]
_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"))


def _table_columns(df: pd.DataFrame, cols: Sequence[str]) -> dict[str, list[Any]]:
    out = {c: df[c].to_numpy().tolist() for c in cols}
    out["pos"] = list(range(len(df)))
    return out


def _device_columns(spec: FleetSpec) -> dict[str, list[Any]]:
    """Device rows column by column: the common columns, the kind's attributes as JSON text."""
    out: dict[str, list[Any]] = {c: [] for c in [*_COMMON_COLS, "attrs"]}
    for kind, df in spec.devices.items():
        if not len(df):
            continue
        for c in _COMMON_COLS:
            out[c].extend(df[c].to_numpy().tolist())
        names = [a.name for a in KIND_ATTRS[kind]]
        values = zip(*(df[n].to_numpy().tolist() for n in names), strict=True)
        out["attrs"].extend(_ENCODER.encode(dict(zip(names, v, strict=True))) for v in values)
    out["pos"] = list(range(len(out["id"])))
    return out


def save_fleet(conn: Connection, spec: FleetSpec) -> None:
    """Replace the stored fleet with ``spec`` (in the caller's transaction)."""
    nodes, sites, devices = table_of(GridNodeRow), table_of(SiteRow), table_of(DeviceRow)
    conn.execute(delete(devices))
    conn.execute(delete(sites))
    conn.execute(delete(nodes))
    bulk_insert(conn, nodes, _table_columns(spec.grid_nodes, _NODE_COLS))
    bulk_insert(conn, sites, _table_columns(spec.sites, _SITE_COLS))
    bulk_insert(conn, devices, _device_columns(spec))


def _frame(conn: Connection, table: Table, cols: Sequence[str]) -> pd.DataFrame:
    """Columns ``cols`` of ``table`` in spec order; JSON columns come back as text."""
    selected = [cast(table.c[c], Text) if c == "attrs" else table.c[c] for c in cols]
    rows = conn.execute(select(*selected).order_by(table.c.pos)).all()
    values = list(zip(*rows, strict=True)) if rows else [() for _ in cols]
    return pd.DataFrame({c: pd.Series(v, dtype=object) for c, v in zip(cols, values, strict=True)})


def load_fleet(conn: Connection, source: str = "<store>") -> FleetSpec:
    """Rebuild the stored fleet, validated again through :func:`build_spec`."""
    nodes = _frame(conn, table_of(GridNodeRow), _NODE_COLS)
    sites = _frame(conn, table_of(SiteRow), _SITE_COLS)
    devices = _frame(conn, table_of(DeviceRow), [*_COMMON_COLS, "attrs"])
    texts = devices.pop("attrs").tolist()
    if texts:  # one parse of a JSON array instead of one per device
        attrs = pd.DataFrame.from_records(json.loads("[" + ",".join(texts) + "]"))
        devices = pd.concat([devices, attrs], axis=1)
    devices.index = np.arange(len(devices))
    return build_spec(nodes, sites, devices, source=source)
