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


def test_spiky_sites_add_their_spikes_independently_and_only_their_level_in_common():
    """200 homes: a level error common to all (weather, the day's behaviour: N(0, 0.3) kW
    each, fully correlated) plus an EV that charges 7 kW or not (p = 0.15), independently.
    Monte Carlo of the sum is the oracle. One correlation applied to whole spreads cannot
    fit both: at rho = 1 (the level's) the EVs' wide bands add up as if every car charged
    together, and at the rho that fits the upper side the lower side is wrong. The common
    part is each site's narrower side; the rest of a side's spread adds independently."""
    rng = np.random.default_rng(5)
    n, draws = 200, 100_000
    level_sd, kw, p_on = 0.3, 7.0, 0.15
    w = rng.standard_normal(draws)
    spikes = rng.binomial(n, p_on, draws) * kw
    total = level_sd * n * w + spikes  # generator sign does not matter here
    one = level_sd * rng.standard_normal(draws) + kw * (rng.random(draws) < p_on)
    site_q = np.quantile(one, QS)
    site_mean = level_sd * 0.0 + kw * p_on
    vals = np.broadcast_to(site_q, (n, 1, 3)).copy()
    mean = np.full((n, 1), site_mean)
    want = np.quantile(total, QS)
    got = combine(vals, QS, np.array([1.0]), mean)[0]
    assert got[1] == pytest.approx(n * site_mean)
    band = want[2] - want[0]
    # within 25 % of the band: the quantile-derived spread of an on/off spike is wider than
    # its standard deviation, so the upper side stays wide (338 against 300 kW: 22 %)
    np.testing.assert_allclose(got[[0, 2]], want[[0, 2]], rtol=0.0, atol=0.25 * band)
    # whole spreads under one correlation: at every rho one side misses by 46 % of the band
    # or more
    for rho in np.linspace(0.0, 1.0, 21):
        sd = np.abs(site_q[[0, 2]] - site_q[1]) / Z
        var = (1 - rho) * n * sd**2 + rho * (n * sd) ** 2
        old = n * site_mean + np.array([-1.0, 1.0]) * Z * np.sqrt(var)
        assert np.abs(old - want[[0, 2]]).max() > 0.4 * band


def test_correlation_is_learned_per_block_of_the_day():
    """Level errors fully common in the first half of the day (one cloud over every PV
    site), independent in the second (household noise): the per-block fit finds rho near
    1 and near 0, and each block's group band then covers about 80 %; one all-day rho
    would be too narrow in the first half and too wide in the second."""
    from gridflock.forecast._model import HOUR_BLOCKS, _fit_corr, _fit_corr_by_block, hour_blocks

    rng = np.random.default_rng(7)
    n, days = 60, 56
    times = pd.date_range("2026-01-05", periods=days * 96, freq="15min", tz="UTC")
    block = hour_blocks(times, "UTC")
    mu = np.zeros((n, len(times)))
    p = np.stack([mu - Z, mu, mu + Z], axis=-1)  # each site N(0, 1), right on its own
    masks = {"fleet": np.ones(n, bool), "a": np.arange(n) < 20, "b": np.arange(n) >= 20}
    common = block < HOUR_BLOCKS // 2

    def draw():
        shared = rng.standard_normal(len(times))
        own = rng.standard_normal((n, len(times)))
        return np.where(common, shared, own)

    rho = _fit_corr_by_block(draw(), p, mu, QS, masks, block, 0.5)
    assert min(rho[: HOUR_BLOCKS // 2]) > 0.7
    assert max(rho[HOUR_BLOCKS // 2 :]) < 0.15
    one, _ = _fit_corr(draw(), p, mu, QS, masks, combine)
    y = draw()
    for m in masks.values():
        gy = y[m].sum(axis=0)
        g = combine(p[m], QS, np.asarray(rho)[block], mu[m])
        inside = (gy >= g[:, 0]) & (gy <= g[:, 2])
        g1 = combine(p[m], QS, np.full(len(times), one), mu[m])
        inside1 = (gy >= g1[:, 0]) & (gy <= g1[:, 2])
        for half in (common, ~common):
            assert abs(inside[half].mean() - 0.8) < 0.07
        assert inside1[common].mean() < 0.72
        assert inside1[~common].mean() > 0.88


def test_a_missing_reading_leaves_out_its_site_not_the_groups_quarter_hour():
    """With 1 % of readings missing no quarter hour of a 1,000-site group has them all:
    dropping the quarter hour would leave the fleet out of calibration altogether."""
    from gridflock.forecast._model import _known_group

    y = np.array([[1.0, 2.0, 3.0], [10.0, np.nan, 30.0], [100.0, 200.0, np.nan]])
    p = np.stack([y - 1, y, y + 1], axis=-1)
    p = np.nan_to_num(p, nan=5.0)
    mu = np.nan_to_num(y, nan=5.0)
    total, gp, gmu = _known_group(y, p, mu, np.ones(3, bool))
    # 2 of 3 sites known at steps 1 and 2: below the 90 % share, so not scored
    np.testing.assert_allclose(total, [111.0, np.nan, np.nan])
    assert gp[1, 1].tolist() == [0.0, 0.0, 0.0]  # the missing site adds nothing
    assert gmu[2, 2] == 0.0
    big = np.ones((20, 2))
    big[0, 1] = np.nan  # 19 of 20 known: scored over the 19
    t, _, _ = _known_group(big, np.stack([big] * 3, axis=-1), big, np.ones(20, bool))
    np.testing.assert_allclose(t, [20.0, 19.0])
