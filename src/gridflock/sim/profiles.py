"""Household electricity demand: a per-home sampler around the H25 standard load profile.

The shape is BDEW's H25 (``fleet.load_profile``, with its dynamisation over the year); the
sampler turns it into n individual homes one time step at a time in O(n) memory, adding a
per-home time shift, size, correlated noise and short appliance spikes.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from gridflock.fleet.load_profile import household_load_shape

__all__ = ["LoadSampler", "household_load_shape", "household_loads"]

FloatArray = npt.NDArray[np.float64]


class LoadSampler:
    """Household base loads of n homes, produced one time step at a time [kW].

    Memory is O(n + T): per home it keeps a time shift, a size factor, the state of an
    AR(1) noise process and the state of an appliance spike. ``at(t)`` must be called
    with t = 0, 1, 2, ... in order (the noise and spikes advance one step per call); it
    costs O(n).

    Load of home i at step t:
    ``base[i] * shape[t + shift[i]] * max(1 + e[i, t], 0) + spike[i, t]`` with
    ``base[i] = annual_kwh[i] * scale[i]`` less the expected power of the spikes, so a
    home's expected energy stays ``annual_kwh[i] * scale[i]`` times the shape's integral.

    Parameters
    ----------
    shape : array (T,) [kW per kWh/year]
        From :func:`household_load_shape`.
    annual_kwh : array (n,) [kWh]
        Annual consumption of each home.
    rng : numpy Generator
        Source of randomness, advanced by the constructor and every call of ``at``.
    shift_steps_max : int [steps]
        Each home's profile is shifted by a uniform integer in [-max, max] steps, so homes
        do not all peak on the same minute. Indices past either end are held at the edge.
    noise : float [1]
        Standard deviation of the relative AR(1) noise ``e``.
    dt_h : float [h]
        Step length, to set the noise correlation time and spike rates in physical time.
    noise_tau_h : float [h]
        Correlation time of the noise.
    scale_sigma : float [1]
        Log-standard deviation of the lognormal per-home size factor (mean 1).
    spike_rate_per_h : float [1/h]
        Mean appliance events (kettle, oven, hob) per home and hour, modulated by the
        shape (more when the household profile is high).
    spike_kw : tuple of float [kW]
        Range of an event's power (uniform).
    spike_minutes : tuple of float [min]
        Range of an event's duration (uniform, at least one step).

    """

    def __init__(
        self,
        shape: FloatArray,
        annual_kwh: FloatArray,
        rng: np.random.Generator,
        shift_steps_max: int,
        noise: float = 0.25,
        *,
        dt_h: float = 1.0 / 60.0,
        noise_tau_h: float = 0.5,
        scale_sigma: float = 0.3,
        spike_rate_per_h: float = 0.15,
        spike_kw: tuple[float, float] = (1.0, 3.0),
        spike_minutes: tuple[float, float] = (2.0, 15.0),
    ) -> None:
        shape = np.asarray(shape, dtype=np.float64)
        annual = np.asarray(annual_kwh, dtype=np.float64)
        if shape.ndim != 1 or annual.ndim != 1:
            raise ValueError("shape and annual_kwh must be 1-D")
        if shift_steps_max < 0 or noise < 0 or dt_h <= 0:
            raise ValueError("shift_steps_max, noise must be >= 0 and dt_h > 0")
        n = len(annual)
        self._rng = rng
        self._n_steps = len(shape)
        self._shift_max = int(shift_steps_max)
        self._shape = np.pad(shape, self._shift_max, mode="edge")
        self._offset = (
            rng.integers(-self._shift_max, self._shift_max + 1, size=n) + self._shift_max
        ).astype(np.intp)
        scale = rng.lognormal(-(scale_sigma**2) / 2.0, scale_sigma, size=n)
        mean_shape = float(shape.mean()) if len(shape) else 1.0
        if mean_shape <= 0:
            mean_shape = 1.0
        # Spikes carry part of each home's energy (their expected power follows the shape),
        # so the expected energy stays annual_kwh * scale; at most 80 % of it.
        spike_mean_kw = spike_rate_per_h * (sum(spike_kw) / 2.0) * (sum(spike_minutes) / 2.0 / 60.0)
        base = annual * scale
        share = np.divide(
            spike_mean_kw, base * mean_shape, out=np.ones(n), where=base * mean_shape > 0
        )
        self._base = base * (1.0 - np.minimum(share, 0.8))
        self._noise = float(noise)
        self._phi = float(np.exp(-dt_h / noise_tau_h))
        self._innov_sd = self._noise * float(np.sqrt(1.0 - self._phi**2))
        self._e = self._noise * rng.standard_normal(n)
        self._spike_p = spike_rate_per_h * dt_h * shape / mean_shape
        self._spike_kw_range = spike_kw
        self._spike_steps_range = (
            max(1, round(spike_minutes[0] / 60.0 / dt_h)),
            max(1, round(spike_minutes[1] / 60.0 / dt_h)),
        )
        self._spike_kw = np.zeros(n)
        self._spike_left = np.zeros(n, dtype=np.int32)
        self._next_t = 0

    @property
    def n(self) -> int:
        """Number of homes."""
        return len(self._base)

    def at(self, t: int) -> FloatArray:
        """Loads of all homes at step ``t`` [kW >= 0]; t must be the next step (0, 1, ...).

        The returned array is new at every call; the caller may keep it.
        """
        if t != self._next_t:
            raise ValueError(f"LoadSampler.at expects step {self._next_t}, got {t}")
        if not 0 <= t < self._n_steps:
            raise IndexError(f"step {t} outside the shape's {self._n_steps} steps")
        self._next_t += 1
        n = self.n
        rng = self._rng

        # AR(1) relative noise.
        if self._noise > 0:
            self._e *= self._phi
            self._e += self._innov_sd * rng.standard_normal(n)

        # Appliance spikes: running ones count down; new ones start at random homes.
        active = self._spike_left > 0
        self._spike_left[active] -= 1
        self._spike_kw[self._spike_left == 0] = 0.0
        n_new = int(rng.binomial(n, min(float(self._spike_p[t]), 1.0))) if n else 0
        if n_new:
            homes = rng.integers(0, n, size=n_new)
            self._spike_kw[homes] = rng.uniform(*self._spike_kw_range, size=n_new)
            lo, hi = self._spike_steps_range
            self._spike_left[homes] = rng.integers(lo, hi + 1, size=n_new)

        out = np.take(self._shape, self._offset + t)
        out *= self._base
        out *= np.maximum(1.0 + self._e, 0.0)
        out += self._spike_kw
        return out


def household_loads(
    shape: FloatArray,
    annual_kwh: FloatArray,
    rng: np.random.Generator,
    *,
    shift_steps_max: int,
    noise: float = 0.25,
    dt_h: float = 1.0 / 60.0,
) -> LoadSampler:
    """A :class:`LoadSampler` for n homes over the T steps of ``shape`` [kW].

    Parameters
    ----------
    shape : array (T,) [kW per kWh/year]
        From :func:`household_load_shape`.
    annual_kwh : array (n,) [kWh]
        Annual consumption of each home.
    rng : numpy Generator
        Source of randomness.
    shift_steps_max : int [steps]
        Largest per-home time shift of the profile.
    noise : float [1]
        Standard deviation of the relative noise.
    dt_h : float [h]
        Step length.

    """
    return LoadSampler(shape, annual_kwh, rng, shift_steps_max, noise, dt_h=dt_h)
