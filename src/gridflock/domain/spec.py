"""The fleet specification: grid nodes, sites and devices as validated columnar tables.

A :class:`FleetSpec` holds one DataFrame for grid nodes, one for sites and one per device
kind, with exactly the columns declared in :mod:`gridflock.domain.kinds`. It is what the
fleet files parse into and what the fleet state is built from. :func:`build_spec` applies
defaults, coerces types and checks every rule, collecting all problems before raising.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gridflock.domain.attributes import Attr
from gridflock.domain.errors import Problem, ValidationError
from gridflock.domain.kinds import (
    DEVICE_PROTOCOLS,
    GRID_NODE_ATTRS,
    SITE_ATTRS,
    DeviceKind,
    GridNodeKind,
    device_attrs,
    kind_decl,
)

__all__ = ["FleetSpec", "build_spec", "merge_fleets"]


@dataclass(frozen=True)
class FleetSpec:
    """A validated fleet: columnar tables keyed by ``id``.

    ``devices`` maps each kind to a DataFrame with the columns of ``device_attrs(kind)``
    (kinds absent from the fleet map to an empty frame).
    """

    grid_nodes: pd.DataFrame
    sites: pd.DataFrame
    devices: dict[DeviceKind, pd.DataFrame] = field(default_factory=dict)

    @property
    def n_devices(self) -> int:
        """Number of devices of all kinds."""
        return sum(len(df) for df in self.devices.values())

    def counts(self) -> dict[str, int]:
        """Device count by kind (every kind listed, zero included)."""
        return {k.value: len(self.devices.get(k, ())) for k in DeviceKind}

    def all_devices(self) -> pd.DataFrame:
        """Every device's common columns (id, site_id, kind, gateway_id, protocol...), by kind."""
        cols = ["id", "site_id", "kind", "gateway_id", "cost_per_kwh", "protocol"]
        frames = [df[cols] for df in self.devices.values() if len(df)]
        if not frames:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
        return pd.concat(frames, ignore_index=True)


def _coerce(
    df: pd.DataFrame, attrs: Iterable[Attr], table: str, source: str, problems: list[Problem]
) -> pd.DataFrame:
    """Give ``df`` exactly the declared columns: defaults filled, types coerced, bounds checked."""
    out = pd.DataFrame(index=df.index)
    ids = (
        df["id"].astype(str)
        if "id" in df.columns
        else pd.Series([f"row {i + 1}" for i in range(len(df))], index=df.index)
    )
    entry = (table + " " + ids).to_numpy()
    for a in attrs:
        if a.name in df.columns:
            col = df[a.name]
        else:
            col = pd.Series([None] * len(df), index=df.index, dtype=object)
        missing = col.isna().to_numpy().copy()
        if a.type == "str":
            missing |= (col.astype(str).str.strip() == "").to_numpy() & a.required
        if missing.any():
            if a.required:
                for i in np.flatnonzero(missing)[:50]:
                    problems.append(Problem(source, entry[i], a.name, "is required but missing"))
            col = col.where(~missing, a.default)
        if a.type == "str":
            out[a.name] = col.fillna("").astype(str).str.strip()
            continue
        if a.type == "bool":
            out[a.name] = _to_bool(col, a, entry, source, problems)
            continue
        num = pd.to_numeric(col, errors="coerce")
        bad = num.isna().to_numpy() & ~missing | ~np.isfinite(
            num.to_numpy(dtype=float, na_value=0.0)
        )
        for i in np.flatnonzero(bad)[:50]:
            problems.append(
                Problem(
                    source,
                    entry[i],
                    a.name,
                    f"must be a finite number in {a.unit or 'no unit'}, got {col.iloc[i]!r}",
                )
            )
        values = num.to_numpy(dtype=float, na_value=np.nan)
        values = np.where(
            bad | np.isnan(values), 0.0 if a.default is None else float(a.default), values
        )
        lo_bad = np.zeros(len(values), bool)
        if a.min is not None:
            lo_bad = values <= a.min if a.exclusive_min else values < a.min
        hi_bad = values > a.max if a.max is not None else np.zeros(len(values), bool)
        for i in np.flatnonzero((lo_bad | hi_bad) & ~bad)[:50]:
            unit = f" {a.unit}" if a.unit and a.unit != "1" else ""
            problems.append(
                Problem(
                    source, entry[i], a.name, f"must be {a.bounds_text()}{unit}, got {values[i]:g}"
                )
            )
        if a.type == "int":
            out[a.name] = values.astype(np.int64)
        else:
            out[a.name] = values
    return out.reset_index(drop=True)


_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off", ""}


def _to_bool(
    col: pd.Series, a: Attr, entry: np.ndarray, source: str, problems: list[Problem]
) -> np.ndarray:
    """Coerce a column of bools or bool-like strings, reporting anything else."""
    text = col.map(
        lambda v: str(v).strip().lower() if not isinstance(v, bool) else ("true" if v else "false")
    )
    is_true = text.isin(_TRUE).to_numpy()
    ok = is_true | text.isin(_FALSE).to_numpy()
    for i in np.flatnonzero(~ok)[:50]:
        problems.append(
            Problem(source, entry[i], a.name, f"must be true or false, got {col.iloc[i]!r}")
        )
    return is_true


def _duplicates(ids: pd.Series, table: str, source: str, problems: list[Problem]) -> None:
    dup = ids[ids.duplicated(keep="first")]
    for d in dup.unique()[:50]:
        problems.append(Problem(source, f"{table} {d}", "id", "duplicate id: ids must be unique"))


def _frame(records: pd.DataFrame | Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    if isinstance(records, pd.DataFrame):
        return records.reset_index(drop=True)
    return pd.DataFrame(list(records))


def build_spec(
    grid_nodes: pd.DataFrame | Iterable[Mapping[str, Any]],
    sites: pd.DataFrame | Iterable[Mapping[str, Any]],
    devices: pd.DataFrame | Iterable[Mapping[str, Any]],
    source: str = "<fleet>",
) -> FleetSpec:
    """Validate raw tables (or lists of records) into a :class:`FleetSpec`.

    ``devices`` is one table of all kinds with a ``kind`` column and each kind's
    attributes as columns (blank where they do not apply). Raises
    :class:`ValidationError` listing every problem, each naming ``source``, the entry
    (table and id) and the field.
    """
    problems: list[Problem] = []
    raw_nodes, raw_sites, raw_dev = _frame(grid_nodes), _frame(sites), _frame(devices)

    nodes = _coerce(raw_nodes, GRID_NODE_ATTRS, "grid node", source, problems)
    node_kinds = {k.value for k in GridNodeKind}
    for nid, kind in zip(nodes["id"], nodes["kind"], strict=True):
        if kind not in node_kinds:
            problems.append(
                Problem(
                    source,
                    f"grid node {nid}",
                    "kind",
                    f"unknown grid node kind {kind!r}; use one of {', '.join(sorted(node_kinds))}",
                )
            )
    _duplicates(nodes["id"], "grid node", source, problems)
    node_ids = set(nodes["id"])
    parents = dict(zip(nodes["id"], nodes["parent"], strict=True))
    for nid, parent in parents.items():
        if parent and parent not in node_ids:
            problems.append(
                Problem(source, f"grid node {nid}", "parent", f"unknown grid node {parent!r}")
            )
    for nid in parents:  # a parent chain must end at a root
        seen, cur = {nid}, parents[nid]
        while cur and cur in parents:
            if cur in seen:
                problems.append(
                    Problem(source, f"grid node {nid}", "parent", "parent chain forms a cycle")
                )
                break
            seen.add(cur)
            cur = parents[cur]

    site_df = _coerce(raw_sites, SITE_ATTRS, "site", source, problems)
    _duplicates(site_df["id"], "site", source, problems)
    unknown_node = ~site_df["grid_node"].isin(node_ids)
    for sid, node in zip(
        site_df["id"][unknown_node], site_df["grid_node"][unknown_node], strict=True
    ):
        problems.append(
            Problem(
                source,
                f"site {sid}",
                "grid_node",
                f"unknown grid node {node!r}; declare it under grid_nodes",
            )
        )

    by_kind: dict[DeviceKind, pd.DataFrame] = {}
    if len(raw_dev):
        if "kind" not in raw_dev.columns:
            raw_dev["kind"] = None
        kinds = raw_dev["kind"].fillna("").astype(str).str.strip()
        valid = {k.value for k in DeviceKind}
        for i in np.flatnonzero(~kinds.isin(valid).to_numpy())[:50]:
            did = raw_dev["id"].iloc[i] if "id" in raw_dev.columns else f"row {i + 1}"
            problems.append(
                Problem(
                    source,
                    f"device {did}",
                    "kind",
                    f"unknown device kind {kinds.iloc[i]!r}; use one of "
                    f"{', '.join(k.value for k in DeviceKind)}",
                )
            )
        for kind in DeviceKind:
            part = raw_dev[(kinds == kind.value).to_numpy()]
            by_kind[kind] = _coerce(part, device_attrs(kind), "device", source, problems)
    else:
        for kind in DeviceKind:
            by_kind[kind] = _coerce(
                pd.DataFrame({"id": []}), device_attrs(kind), "device", source, problems
            )

    all_ids = pd.concat([df["id"] for df in by_kind.values()], ignore_index=True)
    _duplicates(all_ids, "device", source, problems)
    site_ids = set(site_df["id"])
    for kind, df in by_kind.items():
        orphan = ~df["site_id"].isin(site_ids)
        for did, sid in zip(df["id"][orphan], df["site_id"][orphan], strict=True):
            problems.append(Problem(source, f"device {did}", "site_id", f"unknown site {sid!r}"))
        empty_gw = df["gateway_id"] == ""
        df.loc[empty_gw, "gateway_id"] = df.loc[empty_gw, "site_id"]
        _check_protocol(kind, df, source, problems)
        _check_consistency(kind, df, source, problems)

    if problems:
        raise ValidationError(problems)
    return FleetSpec(grid_nodes=nodes, sites=site_df, devices=by_kind)


def merge_fleets(*specs: FleetSpec, source: str = "<merged fleets>") -> FleetSpec:
    """One fleet of several (a generated fleet and simulated edge sites, say), re-validated.

    Ids must be unique across them; :class:`ValidationError` names any clash.
    """
    nodes = pd.concat([s.grid_nodes for s in specs], ignore_index=True)
    sites = pd.concat([s.sites for s in specs], ignore_index=True)
    frames = [df for s in specs for df in s.devices.values() if len(df)]
    devices = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"kind": []})
    return build_spec(nodes, sites, devices, source=source)


def _check_protocol(
    kind: DeviceKind, df: pd.DataFrame, source: str, problems: list[Problem]
) -> None:
    """``protocol`` is one of ``DEVICE_PROTOCOLS``; ``ocpp`` only for EV chargers."""
    proto = df["protocol"].str.lower()
    df["protocol"] = proto
    bad = ~proto.isin(DEVICE_PROTOCOLS).to_numpy()
    for i in np.flatnonzero(bad)[:50]:
        problems.append(
            Problem(
                source,
                f"device {df['id'].iloc[i]}",
                "protocol",
                f"unknown protocol {df['protocol'].iloc[i]!r}; use one of "
                f"{', '.join(DEVICE_PROTOCOLS)}",
            )
        )
    if kind != DeviceKind.EV_CHARGER:
        for i in np.flatnonzero((proto == "ocpp").to_numpy())[:50]:
            problems.append(
                Problem(
                    source,
                    f"device {df['id'].iloc[i]}",
                    "protocol",
                    f"only ev_charger devices speak ocpp, not {kind.value}: use mqtt",
                )
            )


def _check_consistency(
    kind: DeviceKind, df: pd.DataFrame, source: str, problems: list[Problem]
) -> None:
    """The kind's declared rules between two attributes (bounds are checked already)."""
    rules = kind_decl(kind).rules
    for lo, hi, msg in rules:
        bad = (df[lo] > df[hi]).to_numpy()
        for i in np.flatnonzero(bad)[:50]:
            problems.append(
                Problem(
                    source,
                    f"device {df['id'].iloc[i]}",
                    f"{lo}/{hi}",
                    f"{msg} (got {df[lo].iloc[i]:g} and {df[hi].iloc[i]:g})",
                )
            )
