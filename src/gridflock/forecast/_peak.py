"""When a forecast's peak will fall: the most likely window of sample paths' maxima.

The median's own maximum is a poor peak-time estimate when the peak is a broad plateau (a
winter evening): the measured maximum lands anywhere on it. Here sample paths are drawn as
the median plus errors that follow an AR(1) process, ``e_t = phi e_(t-1) + sqrt(1 - phi^2)
eps_t``, scaled at each step by the forecast's own spread (``sd * (P_hi - P_lo) / (z_hi -
z_lo)``); each path's maximum falls at some step, and the estimate is the centre of the
window of ``±tolerance`` steps that holds the most of them: the time that is most likely to
be within the tolerance of the real peak (the same window as the ±30 min peak metric).
``phi`` and ``sd`` are learned in training from the held-out calibration days
(:func:`fit_error_ar`), never from the days being forecast.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

from gridflock.forecast._types import FloatArray

__all__ = ["fit_error_ar", "peak_index", "peak_probabilities", "peak_step", "spread"]

#: Sample paths per estimate: the window's share is known to about ±1.5 % at 1,000.
N_PATHS = 1000
#: Standardised errors are clipped to this for the correlation (degenerate bands).
CLIP = 5.0


def spread(lo: FloatArray, hi: FloatArray, q_lo: float, q_hi: float) -> FloatArray:
    """The normal standard deviation implied by quantiles ``lo``/``hi`` at ``q_lo``/``q_hi``."""
    z = NormalDist().inv_cdf(q_hi) - NormalDist().inv_cdf(q_lo)
    return np.maximum(np.asarray(hi, dtype=np.float64) - np.asarray(lo, dtype=np.float64), 0.0) / z


def peak_probabilities(
    centre: FloatArray,
    sigma: FloatArray,
    phi: float,
    sd: float = 1.0,
    n_paths: int = N_PATHS,
    seed: int = 0,
) -> FloatArray:
    """Share of sample paths whose maximum falls at each step (sums to 1).

    ``centre`` and ``sigma`` are 1-D of one day (or any span); NaN steps never peak.
    """
    c = np.asarray(centre, dtype=np.float64)
    s = np.nan_to_num(np.asarray(sigma, dtype=np.float64), nan=0.0) * float(sd)
    n = len(c)
    if n == 0:
        return np.zeros(0)
    phi = float(np.clip(phi, -0.999, 0.999))
    rng = np.random.default_rng(seed)
    eps = rng.standard_normal((n_paths, n))
    e = np.empty_like(eps)
    e[:, 0] = eps[:, 0]
    k = np.sqrt(1.0 - phi * phi)
    for t in range(1, n):
        e[:, t] = phi * e[:, t - 1] + k * eps[:, t]
    paths = np.nan_to_num(c, nan=-np.inf)[None, :] + s[None, :] * e
    counts = np.bincount(np.argmax(paths, axis=1), minlength=n).astype(np.float64)
    return counts / n_paths


def peak_index(
    centre: FloatArray,
    sigma: FloatArray,
    phi: float,
    sd: float = 1.0,
    tolerance: int = 2,
    n_paths: int = N_PATHS,
    seed: int = 0,
) -> int:
    """Step whose ``±tolerance`` window most likely holds the peak (ties: the higher centre)."""
    prob = peak_probabilities(centre, sigma, phi, sd, n_paths, seed)
    if not len(prob):
        raise ValueError("a peak needs at least one step")
    n = len(prob)
    cum = np.concatenate([[0.0], np.cumsum(prob)])
    i = np.arange(n)
    window = cum[np.minimum(i + tolerance + 1, n)] - cum[np.maximum(i - tolerance, 0)]
    best = np.flatnonzero(window >= window.max() - 1e-12)
    c = np.nan_to_num(np.asarray(centre, dtype=np.float64), nan=-np.inf)
    return int(best[np.argmax(c[best])])


def fit_error_ar(blocks: list[tuple[FloatArray, FloatArray, FloatArray]]) -> list[float]:
    """``[phi, sd]`` of standardised errors ``(y - centre) / sigma`` over ``blocks``.

    Each block is ``(y, centre, sigma)``, arrays (rows, steps) of consecutive steps (one
    forecast issue). ``phi`` is the lag-1 correlation of consecutive steps within a block
    (pairs with a NaN skipped, errors clipped to ±``CLIP``, phi to [0, 0.99]), ``sd`` the
    normal-equivalent spread of the standardised errors from their median absolute value
    (robust: a site whose band is degenerate, zero most of the time, has a few huge ones).
    ``[0, 1]`` (independent errors of the band's width) with fewer than 10 pairs.
    """
    num, den_a, den_b, n = 0.0, 0.0, 0.0, 0
    absolute = []
    for y, centre, sigma in blocks:
        with np.errstate(all="ignore"):
            r = (np.asarray(y, dtype=np.float64) - centre) / np.where(sigma > 0, sigma, np.nan)
        r = np.clip(np.atleast_2d(r), -CLIP, CLIP)
        a, b = r[:, :-1], r[:, 1:]
        ok = np.isfinite(a) & np.isfinite(b)
        num += float(np.sum(a[ok] * b[ok]))
        den_a += float(np.sum(a[ok] ** 2))
        den_b += float(np.sum(b[ok] ** 2))
        n += int(ok.sum())
        absolute.append(np.abs(r[np.isfinite(r)]))
    if n < 10 or den_a <= 0 or den_b <= 0:
        return [0.0, 1.0]
    phi = num / np.sqrt(den_a * den_b)
    sd = float(np.median(np.concatenate(absolute))) / NormalDist().inv_cdf(0.75)
    return [round(float(np.clip(phi, 0.0, 0.99)), 4), round(sd, 4)]


def peak_step(
    values: FloatArray,
    quantiles: tuple[float, ...],
    error_ar: list[float] | tuple[float, float] | None,
    lowest: bool = False,
    tolerance: int = 2,
) -> int | None:
    """Peak step of one key's quantiles (steps, n_q), as :meth:`Forecast.peak_times` does.

    ``error_ar`` is the learned ``(phi, sd)`` (None: independent errors of the band's
    width); ``lowest`` for the minimum (the largest import of ``net``). None if the median
    is unknown at every step.
    """
    v = np.asarray(values, dtype=np.float64)
    med = v[:, quantiles.index(0.5)]
    if not np.isfinite(med).any():
        return None
    phi, sd = (float(error_ar[0]), float(error_ar[1])) if error_ar else (0.0, 1.0)
    sigma = spread(v[:, 0], v[:, -1], quantiles[0], quantiles[-1])
    sign = -1.0 if lowest else 1.0
    return peak_index(sign * med, sigma, phi, sd, tolerance)
