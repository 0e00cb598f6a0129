"""Every site gets a grid code: explicit, else from its position (vectorised)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from gridflock.fleet import FleetState
from gridflock.gridcode import code_at, profiles, site_codes

from ._fleets import spec_of

PLACES = [
    ("San Francisco", 37.77, -122.42, "US-CA-RULE21"),
    ("Los Angeles", 34.05, -118.24, "US-CA-RULE21"),
    ("Las Vegas (Nevada, next to California)", 36.17, -115.14, "IEEE1547-B"),
    ("Reno (Nevada)", 39.53, -119.81, "IEEE1547-B"),
    ("New York", 40.71, -74.01, "IEEE1547-B"),
    ("Anchorage", 61.22, -149.90, "IEEE1547-B"),
    ("Honolulu", 21.31, -157.86, "IEEE1547-B"),
    ("Berlin", 52.52, 13.40, "DE-VDE4105"),
    ("Munich", 48.14, 11.58, "DE-VDE4105"),
    ("Paris", 48.86, 2.35, "EU-RFG"),
    ("Madrid", 40.42, -3.70, "EU-RFG"),
    ("Dublin", 53.35, -6.26, "EU-RFG"),
    ("London", 51.51, -0.13, "GB-G98"),
    ("Edinburgh", 55.95, -3.19, "GB-G98"),
    ("Sydney", -33.87, 151.21, "AU-A"),
    ("Adelaide", -34.93, 138.60, "AU-A"),
    ("Hobart", -42.88, 147.33, "AU-A"),
    ("Perth", -31.95, 115.86, "AU-B"),
    ("Darwin", -12.46, 130.84, "AU-C"),
    ("Auckland", -36.85, 174.76, "NZ"),
    ("Wellington", -41.29, 174.78, "NZ"),
    ("Gulf of Guinea", 0.0, 0.0, ""),
    ("Tokyo", 35.68, 139.69, ""),
]


def test_known_places_get_their_code():
    lat = np.array([p[1] for p in PLACES])
    lon = np.array([p[2] for p in PLACES])
    got = code_at(lat, lon)
    wrong = [(p[0], g, p[3]) for p, g in zip(PLACES, got, strict=True) if g != p[3]]
    assert not wrong


def test_explicit_code_wins_and_blank_falls_back_to_position():
    sites = pd.DataFrame(
        {
            "lat": [51.5, 51.5, 48.1, np.nan],
            "lon": [-0.1, -0.1, 11.6, np.nan],
            "grid_code": ["GB-G99", " ", "", ""],
        }
    )
    assert list(site_codes(sites)) == ["GB-G99", "GB-G98", "DE-VDE4105", ""]
    assert list(site_codes(sites.drop(columns="grid_code"))) == ["GB-G98"] * 2 + ["DE-VDE4105", ""]


def test_fleet_state_carries_each_sites_code():
    spec = spec_of(
        [
            {"id": "a", "lat": 51.5, "lon": -0.1},
            {"id": "b", "lat": 51.5, "lon": -0.1, "grid_code": "GB-G99"},
        ],
        [
            {
                "id": "a-b",
                "site_id": "a",
                "kind": "battery",
                "e_kwh": 5,
                "p_charge_max_kw": 3,
                "p_discharge_max_kw": 3,
            }
        ],
    )
    assert list(FleetState.from_spec(spec).grid.site_grid_code) == ["GB-G98", "GB-G99"]


def test_100k_sites_are_assigned_in_well_under_a_second():
    rng = np.random.default_rng(1)
    lat, lon = rng.uniform(-60, 70, 100_000), rng.uniform(-180, 180, 100_000)
    t = time.perf_counter()
    codes = code_at(lat, lon)
    took = time.perf_counter() - t
    assert took < 0.5, took
    # the vectorised answer equals the same rules applied one site at a time
    for i in rng.choice(100_000, 300, replace=False):
        assert code_at(lat[i : i + 1], lon[i : i + 1])[0] == codes[i]


@given(
    st.lists(
        st.tuples(
            st.floats(-90, 90) | st.just(float("nan")), st.floats(-180, 180) | st.just(float("nan"))
        ),
        min_size=1,
        max_size=50,
    )
)
def test_any_position_gets_a_known_code_or_none(points):
    lat = np.array([p[0] for p in points])
    lon = np.array([p[1] for p in points])
    got = set(code_at(lat, lon))
    assert got <= {*profiles(), ""}
