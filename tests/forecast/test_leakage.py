"""No look-ahead: what is measured or forecast after the issue time cannot change a forecast."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridflock.forecast import History, aggregate, predict
from gridflock.forecast._features import Rows, build_features

from .conftest import START


class Tampered:
    """A weather source whose runs issued after ``after_s`` say something else entirely."""

    def __init__(self, source, after_s: float, shift: float = 50.0) -> None:
        self.source = source
        self.after_s = after_s
        self.shift = shift
        self.lat, self.lon = source.lat, source.lon

    @property
    def names(self):
        return self.source.names

    def forecast(self, issued_at, valid_at):
        out = self.source.forecast(issued_at, valid_at)
        late = np.asarray(issued_at) > self.after_s
        return {k: np.where(late, v + self.shift, v) for k, v in out.items()}


def altered_after(history: History, issued_at: pd.Timestamp, seed: int) -> History:
    """The same history, every value of a step that had not ended by ``issued_at`` replaced."""
    rng = np.random.default_rng(seed)
    a = int((issued_at - history.times[0]) / pd.Timedelta("15min"))
    series = {}
    for q, v in history.series.items():
        w = v.copy()
        tail = w[:, a:]
        tail[:] = rng.choice([np.nan, 1e6, -1e6, 0.0], size=tail.shape)
        series[q] = w
    return History(history.times, series, history.sites)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(day=st.integers(2, 19), quarter=st.integers(0, 95), seed=st.integers(0, 99))
def test_features_at_issue_time_ignore_everything_after_it(twin, day, quarter, seed):
    history, _, source = twin
    issued_at = START + pd.Timedelta(days=day, minutes=15 * quarter)
    a = int((issued_at - START) / pd.Timedelta("15min"))
    n = history.n_sites
    targets = np.arange(a, a + 150)  # intraday and day-ahead leads, some past the data
    rows = Rows(
        np.repeat(np.arange(n), len(targets)),
        np.tile(targets, n),
        np.full(n * len(targets), a),
    )
    t0 = START.timestamp()
    y = history.series["net"]
    before, s1 = build_features(y, t0, history.sites, rows, source, 1.0)
    changed = altered_after(history, issued_at, seed).series["net"]
    late = Tampered(source, issued_at.timestamp())
    after, s2 = build_features(changed, t0, history.sites, rows, late, 1.0)
    np.testing.assert_array_equal(before, after)
    np.testing.assert_array_equal(s1, s2)


def test_the_check_is_sensitive_to_what_was_known(twin):
    """Altering the last known step, or the run in force at the issue time, does change them."""
    history, _, source = twin
    issued_at = START + pd.Timedelta(days=10, hours=10)
    a = int((issued_at - START) / pd.Timedelta("15min"))
    rows = Rows(np.zeros(10, np.int64), np.arange(a, a + 10), np.full(10, a))
    y = history.series["net"]
    x0, _ = build_features(y, START.timestamp(), history.sites, rows, source, 1.0)
    y2 = y.copy()
    y2[0, a - 1] += 5.0
    x1, _ = build_features(y2, START.timestamp(), history.sites, rows, source, 1.0)
    assert not np.array_equal(x0, x1)
    early = Tampered(source, issued_at.timestamp() - 1.0)
    x2, _ = build_features(y, START.timestamp(), history.sites, rows, early, 1.0)
    assert not np.array_equal(x0, x2)


def test_predictions_ignore_everything_after_the_issue_time(twin, bundle):
    history, _, source = twin
    for issued_at, horizon in (
        (START + pd.Timedelta(days=18, hours=8), "day_ahead"),
        (START + pd.Timedelta(days=19, hours=13, minutes=7), "intraday"),
    ):
        a = predict(bundle, history, source, issued_at, horizon)
        b = predict(
            bundle,
            altered_after(history, issued_at, 1),
            Tampered(source, issued_at.timestamp()),
            issued_at,
            horizon,
        )
        for q in a:
            np.testing.assert_array_equal(a[q].values, b[q].values)
            # the peak time too: its error process was learned in training, not on these days
            assert a[q].error_ar == b[q].error_ar
            fleet_a = aggregate(a[q], {"fleet": np.ones(a[q].values.shape[0], bool)})
            fleet_b = aggregate(b[q], {"fleet": np.ones(b[q].values.shape[0], bool)})
            assert fleet_a.peak_times(lowest=True).equals(fleet_b.peak_times(lowest=True))
