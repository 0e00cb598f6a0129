"""Conversions between UTC epoch seconds (the domain's time) and aware UTC datetimes."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = ["datetimes", "epoch", "to_utc", "utc", "when"]


def utc(ts: float) -> datetime:
    """An aware UTC datetime from epoch seconds (rounded to the microsecond)."""
    return datetime.fromtimestamp(round(ts * 1e6) / 1e6, tz=UTC)


def epoch(dt: datetime) -> float:
    """Epoch seconds from an aware datetime."""
    return dt.timestamp()


def to_utc(dt: datetime) -> datetime:
    """``dt`` in UTC; naive datetimes are refused."""
    if dt.tzinfo is None:
        raise ValueError(f"naive datetime {dt!r}: give timezone-aware UTC times")
    return dt.astimezone(UTC)


def datetimes(ts: npt.ArrayLike) -> list[datetime]:
    """Aware UTC datetimes from an array of epoch seconds, vectorised to microseconds."""
    us = np.round(np.asarray(ts, dtype=np.float64) * 1e6).astype(np.int64)
    index = pd.to_datetime(us, unit="us", utc=True)
    return list(index.to_pydatetime())


def when(ts: float | datetime | None) -> datetime:
    """An aware UTC datetime from epoch seconds, an aware datetime, or ``None`` (now)."""
    if ts is None:
        return datetime.now(UTC)
    if isinstance(ts, datetime):
        return to_utc(ts)
    return utc(float(ts))
