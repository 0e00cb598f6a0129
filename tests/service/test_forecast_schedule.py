"""The forecast timetable on a fake clock: intraday every 15 min, day-ahead D-1 before noon
local across both DST changes, retraining on schedule and on demand, missed slots once."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from gridflock.service.forecast_schedule import ForecastSchedule, local_time_to_utc

BERLIN = ZoneInfo("Europe/Berlin")


def _utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def _run(schedule: ForecastSchedule, start: float, end: float) -> dict[str, list[float]]:
    """Step a fake clock through [start, end) the way the service loop does: wake, serve."""
    served: dict[str, list[float]] = {"retrain": [], "intraday": [], "day_ahead": []}
    now = start
    while now < end:
        due = schedule.due(now)
        for name in served:
            if getattr(due, name):
                served[name].append(now)
        schedule.mark(now, due)
        nxt = schedule.next_wakeup(now)
        assert nxt > now, "after serving, nothing is due at the same instant"
        now = nxt
    return served


def test_intraday_every_quarter_hour_and_day_ahead_at_ten_local_across_spring_dst() -> None:
    s = ForecastSchedule(BERLIN, day_ahead_hour=10.0, retrain_every_s=86_400)
    start = _utc(2026, 3, 27, 12, 7)  # a Friday, CET (UTC+1)
    served = _run(s, start, _utc(2026, 3, 31, 0, 0))
    intraday = served["intraday"]
    assert intraday[0] == start  # issued at once on start
    assert all(t % 900 == 0 for t in intraday[1:])  # then on the quarter hours
    assert len(intraday) == 1 + (_utc(2026, 3, 31) - _utc(2026, 3, 27, 12, 15)) / 900
    gaps = {b - a for a, b in itertools.pairwise(intraday[1:])}
    assert gaps == {900.0}
    # day-ahead: at once on start (missed today's 10:00), then 10:00 local each day:
    # 09:00 UTC in CET, 08:00 UTC from Sunday 29 March (CEST)
    assert served["day_ahead"] == [
        start,
        _utc(2026, 3, 28, 9),
        _utc(2026, 3, 29, 8),
        _utc(2026, 3, 30, 8),
    ]
    for t in served["day_ahead"][1:]:
        local = datetime.fromtimestamp(t, BERLIN)
        assert (local.hour, local.minute) == (10, 0)
    # retraining: on start, then every 24 h
    assert served["retrain"] == [start + k * 86_400 for k in range(4)]


def test_day_ahead_across_autumn_dst_and_an_early_issue_hour() -> None:
    s = ForecastSchedule(BERLIN, day_ahead_hour=2.5, retrain_every_s=7 * 86_400)
    served = _run(s, _utc(2026, 10, 23, 12), _utc(2026, 10, 27, 12))
    # 02:30 local exists twice on 25 October: the first (CEST, 00:30 UTC) is used
    assert served["day_ahead"][1:] == [
        _utc(2026, 10, 24, 0, 30),
        _utc(2026, 10, 25, 0, 30),
        _utc(2026, 10, 26, 1, 30),
        _utc(2026, 10, 27, 1, 30),
    ]


def test_a_wall_time_in_the_spring_gap_moves_past_it() -> None:
    t = local_time_to_utc(datetime(2026, 3, 29), 2.5, BERLIN)  # 02:30 does not exist
    assert datetime.fromtimestamp(t, BERLIN).strftime("%H:%M %Z") == "03:30 CEST"
    assert t == _utc(2026, 3, 29, 1, 30)


def test_retrain_on_demand_and_missed_slots_served_once() -> None:
    s = ForecastSchedule(ZoneInfo("UTC"), day_ahead_hour=10, retrain_every_s=86_400)
    t0 = _utc(2026, 6, 1, 12)
    s.mark(t0, s.due(t0))
    assert not s.due(t0 + 60)
    s.retrain_requested = True
    due = s.due(t0 + 60)
    assert due.retrain
    assert not due.intraday
    assert not due.day_ahead
    s.mark(t0 + 60, due)
    assert not s.due(t0 + 120)
    # the service was away for 3 hours: one intraday issue, not twelve
    later = t0 + 3 * 3600 + 5
    due = s.due(later)
    assert due.intraday
    assert not due.day_ahead
    assert not due.retrain
    s.mark(later, due)
    assert s.next_wakeup(later) == _utc(2026, 6, 1, 15, 15)


@given(
    st.floats(min_value=_utc(2025, 1, 1), max_value=_utc(2035, 1, 1)),
    st.sampled_from(["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC"]),
    st.floats(min_value=0, max_value=11.75),
)
def test_next_day_ahead_is_the_issue_hour_local_within_a_day(
    now: float, zone: str, hour: float
) -> None:
    tz = ZoneInfo(zone)
    s = ForecastSchedule(tz, day_ahead_hour=hour)
    nxt = s.next_day_ahead(now)
    assert now < nxt <= now + 26 * 3600
    assert s.day_ahead_slot(nxt) == nxt
    assert s.day_ahead_slot(now) <= now
    local = datetime.fromtimestamp(nxt, tz)
    wall_h = local.hour + local.minute / 60
    # the issue hour local, or past a DST gap by the gap (30 min on Lord Howe, else 1 h)
    assert round(wall_h - round(hour * 60) / 60, 6) in (0.0, 0.5, 1.0)
