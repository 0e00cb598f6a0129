"""Time windows from query parameters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gridflock.api._convert import epoch
from gridflock.api.errors import ProblemError

__all__ = ["aware", "window"]


def window(
    start: datetime | None, end: datetime | None, now: float, default: timedelta
) -> tuple[datetime, datetime]:
    """``[start, end)`` as aware UTC datetimes.

    ``end`` defaults to now, ``start`` to ``end - default``. Naive times are read as UTC.
    """
    e = aware(end) if end is not None else datetime.fromtimestamp(now, UTC)
    s = aware(start) if start is not None else e - default
    if not epoch(s) < epoch(e):
        raise ProblemError(
            422,
            f"start ({s.isoformat()}) must be before end ({e.isoformat()})",
            errors=[{"field": "start", "message": "must be before end"}],
        )
    return s, e


def aware(dt: datetime) -> datetime:
    """``dt`` in UTC (a naive time is read as UTC)."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
