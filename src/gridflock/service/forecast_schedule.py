"""When forecasts are issued and models retrained: pure functions of a clock reading.

- **intraday**: every ``intraday_every_s`` on the UTC grid (00:00, 00:15, ...);
- **day-ahead**: once a local day at ``day_ahead_hour`` (local, before noon) for the next
  local day; a local time that falls into a DST gap moves forward by the gap, one that
  occurs twice is taken the first time;
- **retraining**: ``retrain_every_s`` after the last training, and at once when asked.

The scheduler only answers "what is due at ``now``" and "when is the next thing due";
the service's loop sleeps until then. Nothing here reads a clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

__all__ = ["Due", "ForecastSchedule", "local_time_to_utc"]


def local_time_to_utc(day: datetime, hour: float, tz: ZoneInfo) -> float:
    """UTC epoch seconds of ``hour`` (local, fractional) on the local date of ``day``.

    In a spring-forward gap the wall time does not exist: the instant is the gap's end plus
    the offset into the gap (02:30 on a 02:00→03:00 day gives 03:30). An ambiguous wall time
    (autumn) is taken at its first occurrence.
    """
    h = int(hour)
    m = round((hour - h) * 60)
    naive = datetime(day.year, day.month, day.day) + timedelta(hours=h, minutes=m)
    # fold=0: in a gap the offset before it applies (02:30+01:00 = 03:30+02:00); when the
    # wall time occurs twice, its first occurrence
    return naive.replace(tzinfo=tz, fold=0).timestamp()


@dataclass(frozen=True)
class Due:
    """What is due now: retraining, an intraday issue, a day-ahead issue."""

    retrain: bool
    intraday: bool
    day_ahead: bool

    def __bool__(self) -> bool:
        return self.retrain or self.intraday or self.day_ahead


@dataclass
class ForecastSchedule:
    """The issue and retraining timetable, with what was last done.

    ``last_*`` are UTC epoch seconds of the slot last served (None: never). A slot missed
    while the service was down is served once at the next look, not once per missed slot.
    """

    tz: ZoneInfo
    intraday_every_s: int = 900
    day_ahead_hour: float = 10.0
    retrain_every_s: float = 86_400.0
    last_intraday: float | None = None
    last_day_ahead: float | None = None
    last_trained: float | None = None
    retrain_requested: bool = field(default=False)

    # ---------------------------------------------------------------- slots
    def intraday_slot(self, now: float) -> float:
        """The latest intraday issue slot at or before ``now``."""
        return math.floor(now / self.intraday_every_s) * self.intraday_every_s

    def day_ahead_slot(self, now: float) -> float:
        """The latest day-ahead issue time at or before ``now``."""
        local = datetime.fromtimestamp(now, self.tz)
        today = local_time_to_utc(local, self.day_ahead_hour, self.tz)
        if today <= now:
            return today
        return local_time_to_utc(local - timedelta(days=1), self.day_ahead_hour, self.tz)

    def next_day_ahead(self, now: float) -> float:
        """The first day-ahead issue time strictly after ``now``."""
        local = datetime.fromtimestamp(now, self.tz)
        for days in range(3):
            t = local_time_to_utc(local + timedelta(days=days), self.day_ahead_hour, self.tz)
            if t > now:
                return t
        raise AssertionError("no issue time within three days")  # pragma: no cover

    # ---------------------------------------------------------------- decisions
    def due(self, now: float) -> Due:
        """What to do at ``now`` (retraining first: issues use the newest model).

        A day-ahead is due when today's local issue time has passed and it was not served
        (so a service started at 11:00 issues at once; one started after noon still issues
        a late forecast for tomorrow rather than none).
        """
        retrain = self.retrain_requested or (
            self.last_trained is None or now - self.last_trained >= self.retrain_every_s
        )
        intraday = self.last_intraday is None or self.intraday_slot(now) > self.last_intraday
        day_ahead = self.last_day_ahead is None or self.day_ahead_slot(now) > self.last_day_ahead
        return Due(retrain, intraday, day_ahead)

    def mark(self, now: float, done: Due) -> None:
        """Record that what ``done`` names was served at ``now``."""
        if done.retrain:
            self.last_trained = now
            self.retrain_requested = False
        if done.intraday:
            self.last_intraday = self.intraday_slot(now)
        if done.day_ahead:
            self.last_day_ahead = self.day_ahead_slot(now)

    def next_wakeup(self, now: float) -> float:
        """When something is next due (UTC epoch s), at least ``now``."""
        if self.due(now):
            return now
        nxt = min(
            self.intraday_slot(now) + self.intraday_every_s,
            self.next_day_ahead(now),
            (self.last_trained or now) + self.retrain_every_s,
        )
        return max(nxt, now)
