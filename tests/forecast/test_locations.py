"""Several weather locations: each site gets its own place's weather, from the twin and files.

Oracles: two places 600 km apart with different weather; the feature a site's rows carry is
its own place's forecast, exactly; a heat-driven series at each place is learned far better
with each site's own weather than with one place's for all.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gridflock.forecast import (
    BadFileError,
    History,
    SiteAttributes,
    TrainConfig,
    WeatherLocations,
    predict,
    read_weather_forecasts,
    train,
)
from gridflock.forecast._features import FEATURES, Rows, build_features
from gridflock.sim.forecast_weather import twin_weather_locations

pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")

START = pd.Timestamp("2026-01-05", tz="UTC")
DAYS = 24
PLACES = {"munich": (48.14, 11.58), "hamburg": (53.55, 9.99), "augsburg": (48.37, 10.90)}
TIMES = pd.date_range(START, periods=(DAYS + 3) * 96, freq="15min")


@pytest.fixture(scope="module")
def places() -> WeatherLocations:
    return twin_weather_locations(TIMES, PLACES, seed=5)


def _sites(lat: list[float], lon: list[float], named: list[str] | None = None) -> SiteAttributes:
    n = len(lat)
    base = SiteAttributes.unknown([f"s{i}" for i in range(n)], tz="Europe/Berlin")
    cols = {f: getattr(base, f) for f in base.__dataclass_fields__}
    cols.update(lat=np.array(lat), lon=np.array(lon))
    cols["heat_pump_kw"] = np.full(n, 3.0)
    if named is not None:
        cols["weather_location"] = np.array(named, dtype=object)
    return SiteAttributes(**cols)


def test_sites_take_their_nearest_or_named_place(places: WeatherLocations) -> None:
    sites = _sites([48.1, 53.6, 48.4, 53.5, np.nan], [11.5, 10.0, 10.9, 10.0, np.nan],
                   ["", "", "", "munich", ""])  # fmt: skip
    idx = places.assign(sites)
    names = [places.location_names[i] for i in idx]
    # nearest by distance; a named place wins over the nearest; no position: the first
    assert names == ["munich", "hamburg", "augsburg", "munich", "munich"]


def test_a_sites_features_are_its_own_places_forecast(places: WeatherLocations) -> None:
    sites = _sites([48.14, 53.55], [11.58, 9.99])
    y = np.zeros((2, 8 * 96))
    issue = np.full(2 * 96, 7 * 96, dtype=np.int64)
    target = np.tile(np.arange(7 * 96 + 4, 8 * 96 + 4), 1)[: 96 * 2]
    target = np.concatenate([np.arange(7 * 96 + 4, 7 * 96 + 100)] * 2).astype(np.int64)
    site = np.repeat(np.arange(2, dtype=np.int64), 96)
    x, _ = build_features(y, START.timestamp(), sites, Rows(site, target, issue), places, 1.0)
    temp = x[:, FEATURES.index("temp")]
    issued_s = START.timestamp() + issue * 900.0
    valid_s = START.timestamp() + target * 900.0
    for k, name in enumerate(("munich", "hamburg")):
        rows = site == k
        want = places.sources[name].forecast(issued_s[rows], valid_s[rows])["temp_air_c"]
        np.testing.assert_allclose(temp[rows], want, rtol=1e-6)
    # the two places' weather differs: each site really got its own
    assert np.mean(np.abs(temp[site == 0] - temp[site == 1])) > 0.5
    # the sun: Hamburg's clear-sky noon is lower in January than Munich's
    clear = x[:, FEATURES.index("clear_ghi")]
    assert clear[site == 1].max() < clear[site == 0].max()


def test_near_places_share_more_weather_than_far_ones(places: WeatherLocations) -> None:
    def daily_temp(name: str) -> np.ndarray:
        w = places.sources[name].weather  # type: ignore[attr-defined]
        return pd.Series(w.temp_air_c, index=w.times).resample("D").mean().to_numpy()

    m, a, h = daily_temp("munich"), daily_temp("augsburg"), daily_temp("hamburg")
    near = np.corrcoef(m, a)[0, 1]
    far = np.corrcoef(m, h)[0, 1]
    assert near > far
    assert near > 0.8


def test_a_heat_driven_series_is_learned_from_each_sites_own_weather(
    places: WeatherLocations,
) -> None:
    """Sites at two places whose demand follows their own temperature: forecasting them
    with their own place's weather beats giving every site one place's weather."""
    n_each = 6
    lat = [48.14] * n_each + [53.55] * n_each
    lon = [11.58] * n_each + [9.99] * n_each
    sites = _sites(lat, lon)
    n_t = DAYS * 96
    rng = np.random.default_rng(1)
    temp = {
        k: places.sources[k].weather.temp_air_c[:n_t]  # type: ignore[attr-defined]
        for k in ("munich", "hamburg")
    }
    y = np.empty((2 * n_each, n_t))
    for i in range(2 * n_each):
        t = temp["munich" if i < n_each else "hamburg"]
        y[i] = -0.3 * np.maximum(18.0 - t, 0.0) * (1 + 0.1 * i) + rng.normal(0, 0.05, n_t)
    history = History(TIMES[:n_t], {"heat_pump": y}, sites)
    cfg = TrainConfig(max_rows=5000, num_boost_round=30, num_leaves=15, calibration_days=0)
    cut = TIMES[(DAYS - 2) * 96] + pd.Timedelta(hours=10)  # D-1 10:00 UTC
    one = WeatherLocations({"munich": places.sources["munich"]}, {"munich": PLACES["munich"]})
    errs = {}
    for name, source in (("own", places), ("one", one)):
        bundle = train(history.before(cut - pd.Timedelta(days=1)), source, cfg)
        fc = predict(bundle, history, source, cut, "day_ahead", tz="UTC")["heat_pump"]
        j = history.times.get_indexer(fc.times)
        errs[name] = np.abs(fc.quantile(0.5) - y[:, j])[n_each:].mean()  # the Hamburg sites
    assert errs["own"] < 0.8 * errs["one"], errs


def test_the_file_adapter_reads_a_location_column(tmp_path: Path) -> None:
    issued = pd.Timestamp("2026-01-05T00:00Z")
    valid = pd.date_range(issued, periods=48, freq="1h")
    rows = []
    for name, lat, lon, temp in (("south", 48.1, 11.6, 5.0), ("north", 53.6, 10.0, -3.0)):
        for v in valid:
            rows.append((name, lat, lon, issued.isoformat(), v.isoformat(), temp))
    frame = pd.DataFrame(rows, columns=["location", "lat", "lon", "issued_at", "valid_at", "temp"])
    path = tmp_path / "nwp.csv"
    frame.to_csv(path, index=False)
    source = read_weather_forecasts(path)
    assert isinstance(source, WeatherLocations)
    assert source.location_names == ("south", "north")
    sites = _sites([53.0, 48.5], [10.2, 11.0])
    y = np.zeros((2, 96))
    r = Rows(np.array([0, 1]), np.array([40, 40]), np.array([8, 8]))
    x, _ = build_features(y, issued.timestamp(), sites, r, source, 1.0)
    np.testing.assert_allclose(x[:, FEATURES.index("temp")], [-3.0, 5.0])
    # a location without one position for all its rows is refused, with the reason
    frame.loc[0, "lat"] = 47.0
    frame.to_csv(path, index=False)
    with pytest.raises(BadFileError, match=r"'south'.*one number each"):
        read_weather_forecasts(path)
    # no location column: one place, as before
    frame.drop(columns=["location", "lat", "lon"]).to_csv(path, index=False)
    assert not isinstance(read_weather_forecasts(path), WeatherLocations)
