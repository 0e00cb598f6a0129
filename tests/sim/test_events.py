"""Parsing of --event START,DURATION,KW[,SCOPE]."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from gridflock.domain import Scope
from gridflock.sim.events import parse_duration, parse_event

DAY = dt.date(2026, 7, 15)


def test_local_time_duration_kw_and_scope():
    r = parse_event("18:00,90m,-200,grid_node:feeder-001", DAY, "Europe/Berlin")
    assert r.start == pd.Timestamp("2026-07-15 16:00", tz="UTC")
    assert r.duration_s == 5400
    assert r.target_kw == -200
    assert r.scope == Scope("grid_node", "feeder-001")
    assert r.end == pd.Timestamp("2026-07-15 17:30", tz="UTC")


def test_iso_start_and_default_scope():
    r = parse_event("2026-07-15T18:00+02:00,2h,500", DAY, "UTC")
    assert r.start == pd.Timestamp("2026-07-15 16:00", tz="UTC")
    assert r.scope == Scope()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("18:00,2h", "expected START,DURATION,KW"),
        ("25:00,2h,5", "invalid event start"),
        ("2026-07-15T18:00,2h,5", "invalid event start"),  # no offset: ambiguous
        ("18:00,2x,5", "invalid duration"),
        ("18:00,0,5", "more than 0"),
        ("18:00,2h,lots", "invalid event kW"),
        ("18:00,2h,0", "non-zero"),
        ("18:00,2h,5,feeder=f1", "invalid scope"),
    ],
)
def test_bad_events_say_what_to_write(text, message):
    with pytest.raises(ValueError, match=message):
        parse_event(text, DAY, "Europe/Berlin")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2h", 7200), ("90m", 5400), ("1h30m", 5400), ("45s", 45), ("600", 600), ("1.5h", 5400)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds
