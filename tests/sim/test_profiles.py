import numpy as np
import pandas as pd
import pytest

from gridflock.sim.profiles import LoadSampler, household_load_shape, household_loads


def _day(step: str, day: str = "2025-06-18") -> pd.DatetimeIndex:
    start = pd.Timestamp(day, tz="Europe/Berlin").tz_convert("UTC")
    return pd.date_range(start, start + pd.Timedelta(days=1), freq=step, inclusive="left")


def test_shape_daily_energy_near_annual_over_365():
    shape = household_load_shape(_day("1min"))
    kwh_per_day = shape.sum() / 60.0
    assert 0.6 / 365 < kwh_per_day < 1.4 / 365


def test_shape_evening_peak_above_night():
    times = _day("1min")
    shape = household_load_shape(times)
    local_hour = times.tz_convert("Europe/Berlin").hour
    evening = shape[(local_hour >= 18) & (local_hour < 22)].max()
    night = shape[local_hour == 3].mean()
    assert evening > 1.5 * night
    assert np.all(shape > 0)


def test_shape_year_integrates_to_one():
    start = pd.Timestamp("2025-01-01", tz="Europe/Berlin").tz_convert("UTC")
    end = pd.Timestamp("2026-01-01", tz="Europe/Berlin").tz_convert("UTC")
    times = pd.date_range(start, end, freq="1h", inclusive="left")
    assert household_load_shape(times).sum() == pytest.approx(1.0, rel=1e-3)


def test_shape_consistent_across_steps_and_smooth():
    fine = household_load_shape(_day("1min"))
    hourly = household_load_shape(_day("1h"))
    np.testing.assert_allclose(fine.reshape(24, 60).mean(axis=1), hourly, rtol=0.01)
    # No 15-min staircase at 1-min steps: consecutive steps differ by far less than slots.
    assert np.abs(np.diff(fine)).max() < 0.1 * fine.max()


def test_shape_needs_timezone():
    with pytest.raises(ValueError, match="timezone"):
        household_load_shape(pd.date_range("2025-06-18", periods=4, freq="15min"))


def test_sampler_reproducible_and_energy_preserving():
    shape = household_load_shape(_day("1min"))
    annual = np.full(5_000, 3_500.0)

    def run(seed: int) -> np.ndarray:
        sampler = LoadSampler(shape, annual, np.random.default_rng(seed), 30)
        return np.stack([sampler.at(t) for t in range(len(shape))])

    a, b = run(1), run(1)
    np.testing.assert_array_equal(a, b)
    assert np.all(a >= 0.0)
    expected = 3_500.0 * shape.sum() / 60.0
    assert a.sum(axis=0).mean() / 60.0 == pytest.approx(expected, rel=0.05)
    # Homes differ (shift, scale, noise), and some appliance spikes show up.
    assert a[:, 0].std() > 0.1 * a[:, 0].mean()
    assert (a > 1.0).any()


def test_sampler_shifts_spread_the_peak():
    shape = household_load_shape(_day("1min"))
    annual = np.full(2_000, 3_500.0)
    loads = household_loads(shape, annual, np.random.default_rng(0), shift_steps_max=60, noise=0.0)
    total = np.array([loads.at(t).sum() for t in range(len(shape))])
    # The fleet total is smoother than any single home.
    assert np.abs(np.diff(total)).max() / total.mean() < 0.05


def test_sampler_steps_in_order():
    sampler = LoadSampler(np.ones(10), np.ones(3), np.random.default_rng(0), 0)
    sampler.at(0)
    with pytest.raises(ValueError, match="expects step 1"):
        sampler.at(2)
