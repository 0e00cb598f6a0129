"""Save and load the fleet specification: grid nodes, sites and devices, in bulk.

Besides replacing the whole fleet, sites and devices can be upserted or deleted one
batch at a time; those go through :func:`build_spec` too, so what is stored stays valid.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Table, Text, cast, delete, func, select
from sqlalchemy.engine import Connection

from gridflock.domain import (
    DEVICE_COMMON,
    GRID_NODE_ATTRS,
    KIND_ATTRS,
    SITE_ATTRS,
    DeviceKind,
    FleetSpec,
    build_spec,
)
from gridflock.store._bulk import bulk_insert
from gridflock.store._dialect import upsert
from gridflock.store.models import DeviceRow, GridNodeRow, SiteRow, table_of

__all__ = [
    "delete_devices",
    "delete_site",
    "load_fleet",
    "save_fleet",
    "upsert_devices",
    "upsert_sites",
]

_NODE_COLS = [a.name for a in GRID_NODE_ATTRS]
_SITE_COLS = [a.name for a in SITE_ATTRS]
#: Common attributes with a column of their own; the later ones (``protocol``) are kept in
#: ``attrs`` with the kind's, so the table needs no new column for them.
_COMMON_COLS = ["id", "site_id", "kind", "gateway_id", "cost_per_kwh"]
_JSON_COMMON = [a.name for a in DEVICE_COMMON if a.name not in _COMMON_COLS]
_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"))
#: Rows per executemany, ids per ``IN (...)`` list.
CHUNK = 5_000


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
        names = [*_JSON_COMMON, *(a.name for a in KIND_ATTRS[kind])]
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


def device_gateways(conn: Connection) -> dict[str, str]:
    """The gateway of each stored device, by device id (what telemetry screening needs)."""
    t = table_of(DeviceRow)
    rows = conn.execute(select(t.c.id, t.c.gateway_id).order_by(t.c.pos)).all()
    return {str(d): str(g) for d, g in rows}


def _next_pos(conn: Connection, table: Table) -> int:
    top = conn.execute(select(func.max(table.c.pos))).scalar()
    return 0 if top is None else int(top) + 1


def _upsert_rows(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` (new ids appended after the stored ones); stored ids keep ``pos``."""
    ids = [r["id"] for r in rows]
    stored: set[str] = set()
    for i in range(0, len(ids), CHUNK):
        found = conn.execute(select(table.c.id).where(table.c.id.in_(ids[i : i + CHUNK])))
        stored.update(found.scalars())
    pos = _next_pos(conn, table)
    for r in rows:
        if r["id"] in stored:
            r["pos"] = 0  # ignored: pos is not among the updated columns
        else:
            r["pos"] = pos
            pos += 1
    cols = [c for c in rows[0] if c != "pos"]
    stmt = upsert(conn, table, ["id"], cols)
    for i in range(0, len(rows), CHUNK):
        conn.execute(stmt, rows[i : i + CHUNK])


def _load_nodes(conn: Connection) -> pd.DataFrame:
    return _frame(conn, table_of(GridNodeRow), _NODE_COLS)


def upsert_sites(conn: Connection, sites: pd.DataFrame, source: str = "<sites>") -> int:
    """Insert or overwrite sites (columns of ``SITE_ATTRS``; defaults filled, validated).

    Their grid nodes must be stored; raises ``ValidationError`` otherwise. Returns the
    number of sites written.
    """
    if not len(sites):
        return 0
    spec = build_spec(_load_nodes(conn), sites, [], source=source)
    rows = [
        dict(zip(_SITE_COLS, values, strict=True))
        for values in zip(*(spec.sites[c].to_numpy().tolist() for c in _SITE_COLS), strict=True)
    ]
    _upsert_rows(conn, table_of(SiteRow), rows)
    return len(rows)


def upsert_devices(
    conn: Connection, kind: DeviceKind, devices: pd.DataFrame, source: str = "<devices>"
) -> int:
    """Insert or overwrite devices of one ``kind`` (columns of ``device_attrs(kind)``).

    Validated through ``build_spec`` against the stored sites (raises ``ValidationError``);
    a stored device of another kind with the same id is replaced. Returns devices written.
    """
    kind = DeviceKind(kind)
    if not len(devices):
        return 0
    raw = devices.reset_index(drop=True).copy()
    if "kind" in raw.columns and not (raw["kind"].astype(str) == kind.value).all():
        raise ValueError(f"every device given to upsert_devices({kind.value!r}) must be one")
    raw["kind"] = kind.value
    site_table = table_of(SiteRow)
    site_ids = list(dict.fromkeys(raw["site_id"].dropna().astype(str).str.strip()))
    found: list[Any] = []
    cols = [site_table.c[c] for c in _SITE_COLS]
    for i in range(0, len(site_ids), CHUNK):
        stmt = select(*cols).where(site_table.c.id.in_(site_ids[i : i + CHUNK]))
        found.extend(conn.execute(stmt).all())
    sites = pd.DataFrame([tuple(r) for r in found], columns=_SITE_COLS)
    spec = build_spec(_load_nodes(conn), sites, raw, source=source)
    df = spec.devices[kind]
    names = [*_JSON_COMMON, *(a.name for a in KIND_ATTRS[kind])]
    common = zip(*(df[c].to_numpy().tolist() for c in _COMMON_COLS), strict=True)
    attrs = zip(*(df[n].to_numpy().tolist() for n in names), strict=True)
    rows = [
        {**dict(zip(_COMMON_COLS, c, strict=True)), "attrs": dict(zip(names, a, strict=True))}
        for c, a in zip(common, attrs, strict=True)
    ]
    _upsert_rows(conn, table_of(DeviceRow), rows)
    return len(rows)


def delete_devices(conn: Connection, device_ids: Sequence[str]) -> int:
    """Delete devices by id; returns how many were stored."""
    table = table_of(DeviceRow)
    ids = list(dict.fromkeys(str(d) for d in device_ids))
    n = 0
    for i in range(0, len(ids), CHUNK):
        n += conn.execute(delete(table).where(table.c.id.in_(ids[i : i + CHUNK]))).rowcount
    return n


def delete_site(conn: Connection, site_id: str) -> int | None:
    """Delete a site and its devices; returns devices deleted, ``None`` if no such site."""
    sites, devices = table_of(SiteRow), table_of(DeviceRow)
    n = conn.execute(delete(devices).where(devices.c.site_id == site_id)).rowcount
    if conn.execute(delete(sites).where(sites.c.id == site_id)).rowcount == 0:
        return None
    return int(n)
