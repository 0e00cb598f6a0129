"""CSV fleet files: one row per device with its site's columns, grid nodes alongside."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gridflock.domain.errors import Problem, ValidationError
from gridflock.domain.kinds import DEVICE_COMMON, KIND_ATTRS, SITE_ATTRS, DeviceKind
from gridflock.domain.spec import FleetSpec
from gridflock.fleet.files._common import (
    _KIND_KEYS,
    _NODE_KEYS,
    _article,
    _Tables,
    _unknown_message,
)


def _device_cols() -> tuple[str, ...]:
    """CSV device columns: the common ones then every declared kind's, in declared order."""
    return tuple(
        dict.fromkeys(
            a.name for a in DEVICE_COMMON + tuple(a for k in DeviceKind for a in KIND_ATTRS[k])
        )
    )


_CSV_SITE_COLS = tuple("site_" + a.name for a in SITE_ATTRS)  # site_id doubles as the device's
_MAX_REPORTED = 50


def _read_table(p: Path, source: str, problems: list[Problem]) -> pd.DataFrame | None:
    """Read a CSV with every cell as text (blank cells as NaN), or report why it cannot."""
    if not p.is_file():
        problems.append(Problem(source, "", "", "file not found"))
        return None
    try:
        df = pd.read_csv(
            p,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            skipinitialspace=True,
            encoding="utf-8",
        )
    except pd.errors.EmptyDataError:
        problems.append(Problem(source, "", "", "file is empty: expected a header row"))
        return None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        problems.append(Problem(source, "", "", f"cannot parse CSV: {exc}"))
        return None
    df.columns = [str(c).strip() for c in df.columns]
    return df


def _check_columns(
    df: pd.DataFrame, known: tuple[str, ...], what: str, source: str, problems: list[Problem]
) -> None:
    for col in df.columns:
        if col not in known:
            problems.append(
                Problem(
                    source,
                    "",
                    col,
                    _unknown_message("column", col, known, f" in {what}"),
                )
            )


def _read_csv(p: Path, source: str) -> _Tables:
    """Split the device rows into sites and devices, checking columns and site agreement."""
    t = _Tables(source)
    problems = t.problems
    node_path = p.with_name(p.stem + ".grid_nodes.csv")
    t.node_source = str(Path(source).with_name(node_path.name))
    raw = _read_table(p, source, problems)
    nodes = _read_table(node_path, t.node_source, problems)
    if raw is None or nodes is None:
        t.ok = False
        return t
    _check_columns(raw, _CSV_SITE_COLS + _device_cols(), "a fleet CSV", source, problems)
    _check_columns(nodes, _NODE_KEYS, "a grid node CSV", t.node_source, problems)
    if "site_id" not in raw.columns:
        raw["site_id"] = np.nan
    _check_applicable(raw, source, problems)

    site_cols = [c for c in _CSV_SITE_COLS if c in raw.columns]
    with_site = raw[raw["site_id"].notna()]
    _check_site_agreement(with_site, site_cols, source, problems)
    sites = with_site.drop_duplicates("site_id")[site_cols]
    t.sites = sites.rename(columns=lambda c: c.removeprefix("site_"))
    t.devices = raw[[c for c in raw.columns if c in _device_cols()]]
    t.nodes = nodes
    return t


def _check_applicable(raw: pd.DataFrame, source: str, problems: list[Problem]) -> None:
    """A value in a column its row's kind does not declare is a mistake, not a default."""
    if "kind" not in raw.columns:
        return
    kinds = raw["kind"].fillna("").str.strip()
    ids = (
        raw["id"]
        if "id" in raw.columns
        else pd.Series([f"row {i + 2}" for i in range(len(raw))], index=raw.index)
    )
    for kind in DeviceKind:
        rows = (kinds == kind.value).to_numpy()
        if not rows.any():
            continue
        known = set(_KIND_KEYS[kind.value])
        for col in raw.columns:
            if col in known or col not in _device_cols():
                continue
            bad = np.flatnonzero(rows & raw[col].notna().to_numpy())
            for i in bad[:_MAX_REPORTED]:
                problems.append(
                    Problem(
                        source,
                        f"device {ids.iloc[i]}",
                        col,
                        f"does not apply to {_article(kind.value)} {kind.value} device (leave it "
                        f"blank); {kind.value} fields: {', '.join(_KIND_KEYS[kind.value])}",
                    )
                )


def _check_site_agreement(
    rows: pd.DataFrame, site_cols: list[str], source: str, problems: list[Problem]
) -> None:
    """Every row of a site must give the same site columns (compared as values, not text)."""
    types = {"site_" + a.name: a.type for a in SITE_ATTRS}
    keys = pd.DataFrame({"site_id": rows["site_id"]})
    cols = [c for c in site_cols if c != "site_id"]
    for c in cols:
        text = rows[c].str.strip()
        if types[c] in ("float", "int"):
            num = pd.to_numeric(text, errors="coerce")
            text = text.where(num.isna(), num.astype(str))
        elif types[c] == "bool":
            text = text.str.lower()
        keys[c] = text
    if not cols or not len(keys):
        return
    counts = keys.groupby("site_id", sort=False)[cols].nunique(dropna=False)
    reported = 0
    for c in cols:
        for sid in counts.index[(counts[c] > 1).to_numpy()]:
            values = rows.loc[(rows["site_id"] == sid).to_numpy(), c].unique()[:2]
            problems.append(
                Problem(
                    source,
                    f"site {sid}",
                    c,
                    f"differs between rows of the same site ({values[0]!r} vs {values[1]!r}); "
                    "a site's columns must agree across its rows",
                )
            )
            reported += 1
            if reported >= _MAX_REPORTED:
                return


def _write_csv(spec: FleetSpec, p: Path, source: str) -> None:
    """Write one row per device joined with its site's columns, and the grid-node file."""
    frames = [df for df in spec.devices.values() if len(df)]
    devices = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame({c: pd.Series(dtype=object) for c in _device_cols()})
    )
    lonely = ~spec.sites["id"].isin(devices["site_id"])
    if lonely.any():
        ids = spec.sites["id"][lonely].tolist()
        raise ValidationError(
            [
                Problem(
                    source,
                    f"site {sid}",
                    "",
                    "has no devices; a CSV fleet file cannot express a site "
                    "without devices (use YAML)",
                )
                for sid in ids[:_MAX_REPORTED]
            ]
        )
    int_cols = {a.name for k in DeviceKind for a in KIND_ATTRS[k] if a.type == "int"}
    for c in int_cols & set(devices.columns):
        devices[c] = devices[c].astype("Int64")
    position = pd.Index(spec.sites["id"]).get_indexer(devices["site_id"])
    devices = devices.iloc[np.argsort(position, kind="stable")]
    sites = spec.sites.add_prefix("site_")
    table = devices.merge(sites, on="site_id", how="left", sort=False)
    table = table.reindex(columns=[*_CSV_SITE_COLS, *(c for c in _device_cols() if c != "site_id")])
    table.to_csv(p, index=False)
    spec.grid_nodes[list(_NODE_KEYS)].to_csv(p.with_name(p.stem + ".grid_nodes.csv"), index=False)
