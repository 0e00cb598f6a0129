"""Fast frequency response: the twin's frequency events, local droop and the 1 s capacity."""

from __future__ import annotations

import numpy as np
import pytest

from gridflock.fleet import flexibility, frequency_response
from gridflock.fleet.flexibility import slowest_full_s
from gridflock.gridcode import kind_responses, product_response, products
from gridflock.sim.frequency import frequency_event, response_times, simulate_response

from ._fleets import NOW, random_coded_fleet

DT = 0.02
T = np.arange(0.0, 4.0, DT)


def test_events_have_the_recorded_shapes():
    step = frequency_event("step", T, t0_s=1.0)
    assert step[T < 1.0].max() == 50.0
    assert step[T >= 1.0].max() == 49.5
    fall = frequency_event("fall", T, t0_s=1.0, nadir_hz=49.2, rocof_hz_per_s=0.5)
    assert fall.min() == pytest.approx(49.2)
    assert T[np.argmin(fall)] == pytest.approx(1.0 + 0.8 / 0.5, abs=DT)
    assert np.diff(fall[T <= 2.5]).min() >= -0.5 * DT - 1e-9  # RoCoF kept
    assert fall[-1] > fall.min()  # recovering
    rise = frequency_event("rise", T, t0_s=1.0, nadir_hz=49.2)
    assert rise.max() == pytest.approx(50.8)


def test_product_droop_shapes():
    dc, vf = products()["GB-DC"], products()["AU-VFFCAS"]
    f = np.array([50.0, 49.99, 49.8, 49.65, 49.5, 49.0, 50.2, 50.5])
    np.testing.assert_allclose(
        product_response(dc, f), [0, 0, 0.05, 0.525, 1, 1, -0.05, -1], atol=1e-9
    )
    np.testing.assert_allclose(product_response(vf, [49.9, 49.85, 49.5]), [0, 0, 1], atol=1e-9)


def test_a_single_battery_follows_its_timing_exactly():
    """One device without spread: response starts after latency and window, full after ramp."""
    r = kind_responses()["battery"]
    rng = np.random.default_rng(0)
    kinds = np.array(["battery"], dtype=object)
    f = frequency_event("step", T, t0_s=1.0)
    res = simulate_response(
        kinds, np.array([4.0]), np.array([4.0]), products()["GB-DC"], T, f, rng, timing_scale=1.0
    )
    start, full = response_times(res, 1.0)
    lo = r.latency_s * (1 - r.jitter)
    hi = (r.latency_s + r.measure_s) * (1 + r.jitter) + 1 / r.ramp_pu_per_s
    assert lo - DT <= start <= hi
    assert full <= hi + DT
    assert res.delivered_kw[-1] == pytest.approx(4.0)
    # over-frequency: the same device gives its down contract
    res = simulate_response(
        kinds,
        np.array([4.0]),
        np.array([3.0]),
        products()["GB-DC"],
        T,
        frequency_event("step", T, t0_s=1.0, step_hz=0.5),
        rng,
    )
    assert res.delivered_kw[-1] == pytest.approx(-3.0)


def test_fleet_full_response_within_one_second_and_slow_kinds_are_not_counted():
    state = random_coded_fleet(np.random.default_rng(3), 150)
    cap = frequency_response(state, NOW, within_s=1.0, hold_s=900.0)
    kinds = np.empty(state.n, dtype=object)
    for k, s in state.kind_slices.items():
        kinds[s] = k.value
    assert cap.total_up_kw > 0
    assert not cap.eligible[(kinds == "heat_pump") | (kinds == "ev_charger")].any()
    assert cap.eligible[kinds == "battery"].all()
    flex = flexibility(state, 0.25, NOW)
    assert (cap.up_kw <= flex.up_kw + 1e-9).all()  # within the device's 15-minute band
    rng = np.random.default_rng(1)
    f = frequency_event("step", T, t0_s=1.0)
    for code in ("GB-DC", "AU-VFFCAS"):
        prod = products()[code]
        res = simulate_response(kinds, cap.up_kw, cap.down_kw, prod, T, f, rng)
        start, full = response_times(res, 1.0)
        assert start <= 0.5
        assert full <= prod.full_s
        assert res.delivered_kw[-1] == pytest.approx(cap.total_up_kw, rel=1e-6)
        assert (res.delivered_kw <= cap.total_up_kw + 1e-6).all()  # never more than asked
    # contracting slow kinds too misses the second: heat pumps and chargers take seconds
    slow = simulate_response(kinds, flex.up_kw, flex.down_kw, products()["GB-DC"], T, f, rng)
    assert response_times(slow, 1.0)[1] > 1.0 or np.isnan(response_times(slow, 1.0)[1])
    assert slowest_full_s("heat_pump") > 1.0 > slowest_full_s("battery")


def test_hostile_inputs_are_refused_or_harmless():
    with pytest.raises(ValueError, match="evenly spaced"):
        simulate_response(
            np.array(["battery"], dtype=object),
            np.ones(1),
            np.ones(1),
            products()["GB-DC"],
            np.array([0.0, 0.1, 0.5]),
            np.full(3, 50.0),
            np.random.default_rng(0),
        )
    with pytest.raises(ValueError, match="> 0"):
        frequency_event("fall", T, rocof_hz_per_s=0.0)
    state = random_coded_fleet(np.random.default_rng(4), 5)
    with pytest.raises(ValueError, match="within_s"):
        frequency_response(state, NOW, within_s=0.0)
    # a kind the response model does not know gives nothing, and a wild frequency saturates
    res = simulate_response(
        np.array(["mystery", "battery"], dtype=object),
        np.array([5.0, 1.0]),
        np.array([5.0, 1.0]),
        products()["GB-DC"],
        T,
        np.where(T > 1, 1e6, 50.0),
        np.random.default_rng(0),
    )
    assert res.delivered_kw[-1] == pytest.approx(-1.0)
