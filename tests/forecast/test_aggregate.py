"""Group quantiles against exact limits and a Monte Carlo oracle; support windows by hand."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridflock.forecast import Forecast, aggregate, exceedance_probability, support_windows
from gridflock.forecast._aggregate import combine

QS = (0.1, 0.5, 0.9)
Z = NormalDist().inv_cdf(0.9)
TIMES = pd.date_range("2026-01-05", periods=4, freq="15min", tz="UTC")


def normal_forecast(mu, sd, rho=0.0, keys=None):
    mu = np.asarray(mu, float)
    sd = np.asarray(sd, float)
    vals = np.stack([mu - Z * sd, mu, mu + Z * sd], axis=-1)
    return Forecast(
        "net",
        keys if keys is not None else [f"s{i}" for i in range(len(mu))],
        TIMES[: mu.shape[1]],
        QS,
        vals,
        TIMES[0],
        "day_ahead",
        corr=np.full(mu.shape[1], rho),
    )


def test_independent_and_fully_correlated_limits():
    mu = np.array([[1.0], [2.0], [3.0]])
    sd = np.array([[1.0], [2.0], [2.0]])
    f = normal_forecast(mu, sd)
    indep = combine(f.values, QS, np.array([0.0]))
    assert indep[0, 1] == pytest.approx(6.0)
    assert indep[0, 2] - indep[0, 1] == pytest.approx(Z * 3.0)  # sqrt(1 + 4 + 4)
    full = combine(f.values, QS, np.array([1.0]))
    assert full[0, 2] == pytest.approx(f.values[:, 0, 2].sum())  # quantiles add up
    assert full[0, 0] == pytest.approx(f.values[:, 0, 0].sum())


def test_group_quantiles_match_monte_carlo_of_correlated_sites():
    rng = np.random.default_rng(1)
    n, rho = 30, 0.3
    mu = rng.uniform(-2, 2, (n, 1))
    sd = rng.uniform(0.2, 1.0, (n, 1))
    cov = rho * np.outer(sd[:, 0], sd[:, 0]) + (1 - rho) * np.diag(sd[:, 0] ** 2)
    draws = rng.multivariate_normal(mu[:, 0], cov, size=200_000).sum(axis=1)
    g = aggregate(normal_forecast(mu, sd, rho), np.full(n, "fleet", dtype=object))
    assert list(g.keys) == ["fleet"]
    np.testing.assert_allclose(g.values[0, 0], np.quantile(draws, QS), atol=0.05)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 8),
    rho=st.floats(0.0, 1.0),
    seed=st.integers(0, 1000),
)
def test_aggregate_is_ordered_and_within_the_limits(n, rho, seed):
    rng = np.random.default_rng(seed)
    mu = rng.normal(0, 5, (n, 3))
    sd = rng.uniform(0, 2, (n, 3))
    f = normal_forecast(mu, sd, rho)
    g = aggregate(f, {"all": np.ones(n, bool), "none": np.zeros(n, bool)})
    v = g.values[0]
    assert np.all(np.diff(v, axis=-1) >= -1e-9)
    lo = combine(f.values, QS, np.zeros(3))
    hi = combine(f.values, QS, np.ones(3))
    assert np.all(v[:, 2] <= hi[:, 2] + 1e-9)
    assert np.all(v[:, 2] >= lo[:, 2] - 1e-9)
    assert np.all(g.values[1] == 0.0)  # an empty group sums to nothing


def test_aggregate_refuses_labels_of_the_wrong_length():
    f = normal_forecast(np.zeros((2, 1)), np.ones((2, 1)))
    with pytest.raises(ValueError, match="one label per key"):
        aggregate(f, np.array(["a"], dtype=object))


def test_exceedance_probability_of_a_normal_forecast():
    # net = -import: import ~ N(10, 2); P(import > 12) = 1 - Phi(1) within the quantiles
    f = normal_forecast(np.array([[-10.0]]), np.array([[2.0]]))
    p = exceedance_probability(f, 10.0)
    assert p[0, 0] == pytest.approx(0.5)
    # between P50 and P90 the normal, not a straight line through the quantiles (0.188)
    assert exceedance_probability(f, 12.0)[0, 0] == pytest.approx(1 - NormalDist().cdf(1.0))
    p_tail = exceedance_probability(f, 10.0 + 2.0 * 3)  # beyond P90: normal tail
    assert p_tail[0, 0] == pytest.approx(1 - NormalDist().cdf(3.0), abs=1e-6)
    assert exceedance_probability(f, -100.0)[0, 0] == pytest.approx(1.0)


def test_support_windows_by_hand():
    # import medians 5, 12, 14, 5 kW with sd 1; limit 10 -> steps 1 and 2 in one window
    f = normal_forecast(np.array([[-5.0, -12.0, -14.0, -5.0]]), np.ones((1, 4)), keys=["node"])
    w = support_windows(f, {"node": 10.0}, min_probability=0.5)
    assert len(w) == 1
    assert w[0].start == TIMES[1]
    assert w[0].end == TIMES[3]
    assert w[0].scope == "node"
    assert w[0].kw_needed == pytest.approx(4.0)
    assert w[0].kw_needed_p90 == pytest.approx(4.0 + Z, abs=1e-3)
    assert w[0].probability == pytest.approx(1.0, abs=1e-3)
    assert support_windows(f, {"other": 1.0}) == []  # an unwatched key


def test_price_spike_window():
    f = normal_forecast(np.array([[-5.0, -5.0, -5.0, -5.0]]), np.ones((1, 4)))
    price = Forecast(
        "price",
        ["market"],
        TIMES,
        QS,
        np.array([[[40, 50, 60], [290, 300, 310], [40, 50, 60], [40, 50, 60]]], float),
        TIMES[0],
        "day_ahead",
    )
    w = support_windows(f, 100.0, prices=price, price_limit=200.0)
    assert [(x.scope, x.start) for x in w] == [("price", TIMES[1])]


def test_group_mean_is_the_sum_of_site_means_and_frames_list_every_value():
    f = normal_forecast(np.array([[1.0, 2.0], [3.0, 4.0]]), np.ones((2, 2)))
    f = Forecast(f.quantity, f.keys, f.times, QS, f.values, f.issued_at, f.horizon,
                 f.corr, mean=np.array([[1.5, 2.5], [3.5, 4.5]]))  # fmt: skip
    g = aggregate(f, np.array(["x", "x"], dtype=object))
    np.testing.assert_allclose(g.mean[0], [5.0, 7.0])
    np.testing.assert_allclose(g.values[0, :, 1], [5.0, 7.0])  # centred on the means
    frame = g.to_frame()
    assert list(frame.columns) == ["key", "ts", "p10", "p50", "p90", "mean"]
    assert len(frame) == 2
