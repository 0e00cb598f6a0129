"""Conversions at the API edge: epoch seconds ↔ ISO 8601 UTC, frames → JSON rows, CSV."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["epoch", "frame_csv", "frame_rows", "iso", "jsonable", "utc"]


def utc(value: Any) -> datetime | None:
    """An aware UTC datetime from epoch seconds, a datetime or a Timestamp (None for NaN)."""
    if value is None or value is pd.NaT:  # NaT is a datetime instance: catch it first
        return None
    if isinstance(value, pd.Timestamp):
        if pd.isna(value):
            return None
        # a datetime holds microseconds: drop the nanoseconds first, or pandas warns
        # ("Discarding nonzero nanoseconds") on every time computed from float seconds
        value = value.floor("us").to_pydatetime()
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, np.datetime64):
        return utc(pd.Timestamp(value))
    seconds = float(value)
    if not math.isfinite(seconds):
        return None
    return datetime.fromtimestamp(seconds, UTC)


def iso(value: Any) -> str | None:
    """ISO 8601 UTC text (``2026-06-01T12:00:00Z``) of a time, None for a missing one."""
    dt = utc(value)
    if dt is None:
        return None
    return dt.isoformat().replace("+00:00", "Z")


def epoch(dt: datetime) -> float:
    """Epoch seconds of an aware datetime (a naive one is read as UTC)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def jsonable(value: Any) -> Any:
    """``value`` with NumPy/pandas scalars made plain, NaN as None and times as ISO text."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime | pd.Timestamp | np.datetime64):
        return iso(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        f = float(value)
        return f if math.isfinite(f) else None
    if value is None or isinstance(value, str | int | bool):
        return value
    if hasattr(value, "value") and isinstance(value.value, str):  # enums
        return value.value
    return str(value)


def frame_rows(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of ``df`` as JSON-ready dicts (time columns as ISO UTC text, NaN as null)."""
    out = df.copy()
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = [iso(v) for v in out[col]]
    records: list[dict[str, Any]] = jsonable(out.to_dict(orient="records"))
    return records


def frame_csv(df: pd.DataFrame) -> str:
    """``df`` as CSV text with ISO 8601 UTC times."""
    out = df.copy()
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = [iso(v) for v in out[col]]
    buf = io.StringIO()
    out.to_csv(buf, index=False)
    return buf.getvalue()


def dumps(value: Any) -> str:
    """Compact JSON of ``value`` after :func:`jsonable`."""
    return json.dumps(jsonable(value), separators=(",", ":"), allow_nan=False)
