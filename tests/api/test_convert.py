"""Conversions at the API edge: times with nanoseconds convert without a warning."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from gridflock.api._convert import frame_rows, iso, utc


def test_a_timestamp_with_nanoseconds_converts_silently():
    ts = pd.Timestamp(1_780_315_200_123_456_789, unit="ns", tz="UTC")
    # warnings are errors here: pandas' "Discarding nonzero nanoseconds" would fail this
    assert utc(ts) == datetime(2026, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert iso(ts) == "2026-06-01T12:00:00.123456Z"


@given(st.floats(min_value=0, max_value=4_000_000_000, allow_nan=False))
def test_times_from_float_seconds_round_down_to_the_microsecond(seconds):
    ts = pd.Timestamp(seconds, unit="s", tz="UTC")
    dt = utc(ts)
    assert dt is not None
    assert dt.tzinfo is not None
    assert 0 <= ts.value - pd.Timestamp(dt).value < 1000  # less than a microsecond below


def test_frame_rows_with_nanosecond_times():
    df = pd.DataFrame(
        {
            "ts": pd.to_datetime([1_780_315_200.000_000_7, 1_780_315_260.5], unit="s", utc=True),
            "p_kw": [1.0, 2.0],
        }
    )
    rows = frame_rows(df)
    assert rows[1]["ts"] == "2026-06-01T12:01:00.500000Z"
