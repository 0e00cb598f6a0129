"""Event requests for a scenario: parsing ``START,DURATION,KW[,SCOPE]``."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

import pandas as pd

from gridflock.domain.events import Scope

__all__ = ["EventRequest", "parse_duration", "parse_event"]

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")


@dataclass(frozen=True)
class EventRequest:
    """An event asked of a scenario: ``target_kw`` (> 0 up, < 0 absorb) over a window."""

    start: pd.Timestamp
    duration_s: float
    target_kw: float
    scope: Scope = field(default_factory=Scope)

    @property
    def end(self) -> pd.Timestamp:
        """End of the window (exclusive), UTC."""
        return self.start + pd.Timedelta(seconds=self.duration_s)


def parse_duration(text: str) -> float:
    """Parse ``2h``, ``90m``, ``1h30m``, ``45s`` or plain seconds into seconds."""
    text = text.strip().lower()
    try:
        seconds = float(text)
    except ValueError:
        m = _DURATION.match(text)
        if not text or not m or not any(m.groups()):
            raise ValueError(
                f"invalid duration {text!r}: use e.g. 2h, 90m, 1h30m or 3600 (seconds)"
            ) from None
        h, mi, s = (float(g) if g else 0.0 for g in m.groups())
        seconds = h * 3600 + mi * 60 + s
    if not seconds > 0:
        raise ValueError(f"invalid duration {text!r}: must be more than 0 seconds")
    return seconds


def parse_event(text: str, date: dt.date, tz: str) -> EventRequest:
    """Parse ``START,DURATION,KW[,SCOPE]``.

    START is a local time ``HH:MM`` on the scenario date in the fleet's time zone, or a
    full ISO 8601 timestamp with offset; KW is kW relative to baseline, negative to
    absorb; SCOPE is ``fleet`` (default), ``grid_node:ID``, ``program:TAG`` or
    ``region:TAG``.
    """
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (3, 4):
        raise ValueError(
            f"invalid event {text!r}: expected START,DURATION,KW[,SCOPE] "
            "e.g. 18:00,2h,500 or 18:00,90m,-200,grid_node:feeder-001"
        )
    start_text, dur_text, kw_text = parts[:3]
    try:
        if re.fullmatch(r"\d{1,2}:\d{2}", start_text):
            hh, mm = (int(x) for x in start_text.split(":"))
            if hh > 23 or mm > 59:
                raise ValueError
            local = pd.Timestamp(dt.datetime.combine(date, dt.time(hh, mm)))
            start = local.tz_localize(tz).tz_convert("UTC")
        else:
            start = pd.Timestamp(start_text)
            if start.tzinfo is None:
                raise ValueError
            start = start.tz_convert("UTC")
    except ValueError:
        raise ValueError(
            f"invalid event start {start_text!r}: use local HH:MM or ISO 8601 "
            "with an offset, e.g. 2026-07-15T18:00+02:00"
        ) from None
    try:
        kw = float(kw_text)
    except ValueError:
        raise ValueError(f"invalid event kW {kw_text!r}: a number, negative to absorb") from None
    if kw == 0 or kw != kw or abs(kw) == float("inf"):
        raise ValueError(f"invalid event kW {kw_text!r}: must be a non-zero finite number")
    scope = Scope.parse(parts[3]) if len(parts) == 4 else Scope()
    return EventRequest(start, parse_duration(dur_text), kw, scope)
