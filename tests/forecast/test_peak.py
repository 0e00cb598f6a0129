"""Peak-time estimates: sample paths against an exact integral, windows against brute force."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from gridflock.forecast import Forecast
from gridflock.forecast._peak import fit_error_ar, peak_index, peak_probabilities, spread


def exact_max_probabilities(mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """P(X_i is the largest) for independent normals: the integral of pdf_i * prod cdf_j."""
    nd = NormalDist()
    x = np.linspace(mu.min() - 8 * sd.max(), mu.max() + 8 * sd.max(), 20001)
    pdf = np.array([[nd.pdf(v) for v in (x - m) / s] for m, s in zip(mu, sd, strict=True)])
    pdf /= sd[:, None]
    cdf = np.array([[nd.cdf(v) for v in (x - m) / s] for m, s in zip(mu, sd, strict=True)])
    out = []
    for i in range(len(mu)):
        others = np.prod(np.delete(cdf, i, axis=0), axis=0)
        out.append(np.trapezoid(pdf[i] * others, x))
    return np.array(out)


def test_independent_paths_peak_as_the_exact_integral_says():
    mu = np.array([0.0, 0.6, 0.9, 0.3])
    sd = np.array([1.0, 0.5, 0.8, 1.2])
    exact = exact_max_probabilities(mu, sd)
    sampled = peak_probabilities(mu, sd, phi=0.0, n_paths=40_000, seed=3)
    assert abs(exact.sum() - 1.0) < 1e-3
    np.testing.assert_allclose(sampled, exact, atol=0.01)


def test_perfectly_correlated_errors_peak_where_the_centre_does():
    """With phi -> 1 every path is the centre plus one shared shift: the centre's maximum."""
    centre = np.array([1.0, 3.0, 2.9, 0.0])
    prob = peak_probabilities(centre, np.ones(4), phi=0.999, n_paths=4000, seed=1)
    assert prob[1] > 0.6


@settings(max_examples=25, deadline=None)
@given(
    centre=st.lists(st.floats(-5, 5), min_size=3, max_size=30),
    tol=st.integers(0, 3),
    phi=st.floats(0.0, 0.95),
)
def test_the_window_chosen_holds_the_most_sampled_peaks(centre, tol, phi):
    c = np.array(centre)
    sigma = np.full(len(c), 0.7)
    prob = peak_probabilities(c, sigma, phi, n_paths=300, seed=5)
    best = peak_index(c, sigma, phi, tolerance=tol, n_paths=300, seed=5)
    # brute force: the share of paths within tol of every candidate step
    shares = [sum(prob[j] for j in range(len(c)) if abs(j - i) <= tol) for i in range(len(c))]
    assert shares[best] >= max(shares) - 1e-9


def test_no_spread_means_the_centre_maximum():
    c = np.array([0.0, 2.0, 5.0, 4.0, 1.0])
    assert peak_index(c, np.zeros(5), phi=0.5, tolerance=0) == 2


def test_a_broad_plateau_moves_the_estimate_to_its_middle():
    """A narrow spike just above a wide plateau: the plateau's middle is likelier within ±2."""
    c = np.zeros(40)
    c[20:30] = 10.0
    c[5] = 10.3
    idx = peak_index(c, np.ones(40), phi=0.3, tolerance=2, n_paths=2000, seed=0)
    assert 22 <= idx <= 27
    assert peak_index(c, np.zeros(40), phi=0.3, tolerance=2) == 5


def test_the_error_process_is_recovered_from_simulated_errors():
    rng = np.random.default_rng(0)
    phi, sd, n, rows = 0.7, 1.3, 96, 200
    e = np.empty((rows, n))
    e[:, 0] = rng.standard_normal(rows)
    for t in range(1, n):
        e[:, t] = phi * e[:, t - 1] + np.sqrt(1 - phi**2) * rng.standard_normal(rows)
    sigma = rng.uniform(0.5, 3.0, (rows, n))
    centre = rng.normal(0, 10, (rows, n))
    y = centre + sd * sigma * e
    y[3, 10] = np.nan
    fit = fit_error_ar([(y[:100], centre[:100], sigma[:100]), (y[100:], centre[100:], sigma[100:])])
    assert abs(fit[0] - phi) < 0.03
    assert abs(fit[1] - sd) < 0.05
    assert fit_error_ar([(y[:1, :3], centre[:1, :3], sigma[:1, :3])]) == [0.0, 1.0]


def test_spread_matches_the_normal_quantiles():
    z = NormalDist().inv_cdf(0.9)
    assert spread(np.array([-z]), np.array([z]), 0.1, 0.9)[0] == 1.0


def test_forecast_peak_times_of_import_pick_the_lowest_net():
    times = pd.date_range("2026-03-02", periods=8, freq="15min", tz="UTC")
    med = np.array([[0.0, -1.0, -5.0, -2.0, 0.0, 0.0, 0.0, 0.0], [1, 2, 3, 9, 3, 1, 0, 0]])
    values = np.stack([med - 0.01, med, med + 0.01], axis=-1)
    fc = Forecast("net", ["a", "b"], times, (0.1, 0.5, 0.9), values, times[0], "day_ahead")
    peaks = fc.peak_times(lowest=True, tolerance_min=0)
    assert peaks[0] == times[2]
    assert fc.peak_times(tolerance_min=0)[1] == times[3]
