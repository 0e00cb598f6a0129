"""Schedules in the domain: the checks before sending and the slot lookup (against a loop)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridflock.domain.schedules import (
    MAX_SCHEDULE_STEPS,
    PlanSeries,
    ScheduleBatch,
    check_schedules,
    slot_values,
)

NOW = 1_784_116_800.0


def _batch(
    p: list[list[float]], start: float = NOW, step: float = 900.0, **kw: float
) -> ScheduleBatch:
    arr = np.array(p, dtype=float)
    n = len(arr)
    until = kw.get("until", start + arr.shape[1] * step)
    return ScheduleBatch(
        np.array([f"s{i}" for i in range(n)], dtype=object),
        np.array([f"d{i}" for i in range(n)], dtype=object),
        np.arange(n, dtype=np.int64),
        arr,
        start,
        step,
        until,
        kw.get("issued", NOW),
        "plan-1",
    )


def _check(b: ScheduleBatch, now: float = NOW, lo: float = -5.0, hi: float = 5.0) -> list:
    n = len(b)
    return check_schedules(b, now, np.full(n, lo), np.full(n, hi)).tolist()


def test_a_valid_schedule_passes_and_each_bad_row_gets_its_own_reason() -> None:
    b = _batch([[1.0, -2.0, math.nan], [6.0, 0.0, 0.0], [0.0, -5.5, 0.0], [math.inf, 0, 0]])
    assert _check(b) == [None, "out_of_range", "out_of_range", "out_of_range"]
    n = len(b)
    ctrl = np.array([True, True, True, False])
    got = check_schedules(b, NOW, np.full(n, -9.0), np.full(n, 9.0), ctrl).tolist()
    assert got == [None, None, None, "not_controllable"]


def test_a_schedule_in_the_past_is_expired_and_a_running_one_is_not() -> None:
    b = _batch([[1.0, 1.0]], start=NOW - 1800.0)  # ended exactly now
    assert _check(b) == ["expired"]
    running = _batch([[1.0, 1.0]], start=NOW - 1000.0)
    assert _check(running) == [None]


@pytest.mark.parametrize(
    ("kw", "width"),
    [
        ({"step": 0.5}, 2),  # slot too short
        ({"step": 7200.0}, 2),  # slot too long
        ({}, MAX_SCHEDULE_STEPS + 1),  # too many slots
        ({"until": NOW + 3 * 900.0}, 2),  # valid beyond its last slot
        ({"until": NOW}, 2),  # valid for no time at all
        ({"start": NOW + 8 * 86400.0}, 2),  # beyond the horizon
        ({"start": math.nan}, 2),
    ],
)
def test_a_wrong_time_grid_is_refused_as_bad_schedule(kw: dict, width: int) -> None:
    b = _batch([[0.0] * width], **kw)
    assert _check(b) == ["bad_schedule"]


def test_shapes_are_checked_where_batches_are_made() -> None:
    with pytest.raises(ValueError, match="one row per device"):
        ScheduleBatch(
            np.array(["a"], dtype=object),
            np.array(["a", "b"], dtype=object),
            np.array([1]),
            np.zeros((1, 2)),
            NOW,
            900.0,
            NOW + 1800,
            NOW,
            "p",
        )
    with pytest.raises(ValueError, match="step_s must be finite"):
        PlanSeries("p", np.array(["a"], dtype=object), np.zeros((1, 2)), NOW, 0.0)


def _slot_oracle(start, step, until, p, t):  # one device at a time, plainly
    out = []
    for s, dt, u, row in zip(start, step, until, p, strict=True):
        k = math.floor((t - s) / dt) if dt > 0 else -1
        ok = s <= t < u and 0 <= k < len(row)
        out.append(row[k] if ok else math.nan)
    return np.array(out, dtype=float)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 6),
    width=st.integers(0, 8),
    t=st.floats(-100.0, 20_000.0),
    seed=st.integers(0, 2**16),
)
def test_slot_values_match_a_plain_loop(n: int, width: int, t: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    start = rng.uniform(0, 5000, n).round()
    step = rng.choice([60.0, 900.0, 1.5], n)
    until = start + rng.integers(0, width + 1, n) * step
    p = rng.normal(0, 3, (n, width))
    p[rng.random((n, width)) < 0.2] = np.nan
    got = slot_values(start, step, until, p, t)
    want = _slot_oracle(start, step, until, p, t)
    np.testing.assert_array_equal(got, want)
