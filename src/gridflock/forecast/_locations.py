"""Several weather locations: each site takes the forecasts of its own place.

A fleet spread over a region or a country does not feel one weather. :class:`WeatherLocations`
holds one :class:`WeatherSource` per named place (with its lat/lon); every site is mapped to
one of them, by its ``weather_location`` attribute when that names a location, else to the
nearest by great-circle distance from the site's lat/lon, else to the first location. The
features of a site's rows (temperature, irradiance, the PV physics) are then computed from
its location's forecasts and at its location's solar geometry
(:func:`gridflock.forecast._features.build_features`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from gridflock.forecast._types import FloatArray, SiteAttributes, WeatherSource

__all__ = ["WeatherLocations", "haversine_km"]

EARTH_RADIUS_KM = 6371.0


def haversine_km(lat1: FloatArray, lon1: FloatArray, lat2: float, lon2: float) -> FloatArray:
    """Great-circle distance [km] from each (lat1, lon1) to (lat2, lon2) [deg]."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi = p2 - p1
    dlam = np.radians(lon2) - np.radians(lon1)
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlam / 2) ** 2
    return np.asarray(2.0 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0))))


class WeatherLocations:
    """Weather forecasts at several named places; a :class:`WeatherSource` itself.

    Parameters
    ----------
    sources : mapping name -> WeatherSource
        One source per place, every one with the same columns. The first is the default
        (sites with neither a location attribute nor a position take it).
    positions : mapping name -> (lat, lon) [deg]
        Where each place is (default: each source's ``lat``/``lon`` attributes).

    As a plain ``WeatherSource`` (``forecast``) it answers with the first location, so code
    that knows one place keeps working.

    """

    def __init__(
        self,
        sources: Mapping[str, WeatherSource],
        positions: Mapping[str, tuple[float, float]] | None = None,
    ) -> None:
        if not sources:
            raise ValueError("WeatherLocations needs at least one location")
        self.sources = dict(sources)
        self.location_names = tuple(str(k) for k in self.sources)
        pos = positions or {}
        lat, lon = [], []
        for name, src in self.sources.items():
            la, lo = pos.get(name, (getattr(src, "lat", np.nan), getattr(src, "lon", np.nan)))
            lat.append(float(la))
            lon.append(float(lo))
        self.lat_of: FloatArray = np.array(lat)
        self.lon_of: FloatArray = np.array(lon)
        first = self.sources[self.location_names[0]]
        self.lat, self.lon = float(lat[0]), float(lon[0])
        names = set(first.names)
        for name, src in self.sources.items():
            if set(src.names) != names:
                raise ValueError(
                    f"weather location {name!r} has columns {sorted(src.names)}; every "
                    f"location needs the same as {self.location_names[0]!r}: {sorted(names)}"
                )

    @property
    def names(self) -> tuple[str, ...]:
        """Columns provided (the same at every location)."""
        return self.sources[self.location_names[0]].names

    def forecast(self, issued_at: FloatArray, valid_at: FloatArray) -> dict[str, FloatArray]:
        """The first location's forecasts (see the class docstring)."""
        return self.sources[self.location_names[0]].forecast(issued_at, valid_at)

    def source(self, i: int) -> tuple[WeatherSource, float, float]:
        """The ``i``-th location's source and its lat, lon."""
        return self.sources[self.location_names[i]], float(self.lat_of[i]), float(self.lon_of[i])

    def assign(self, sites: SiteAttributes) -> npt.NDArray[np.intp]:
        """Location index of each site: its named location, else the nearest, else the first."""
        n = sites.n
        out = np.zeros(n, dtype=np.intp)
        known_pos = np.isfinite(self.lat_of) & np.isfinite(self.lon_of)
        has = np.isfinite(sites.lat) & np.isfinite(sites.lon)
        if has.any() and known_pos.any():
            d = np.stack(
                [
                    haversine_km(sites.lat[has], sites.lon[has], la, lo)
                    if ok
                    else np.full(int(has.sum()), np.inf)
                    for la, lo, ok in zip(self.lat_of, self.lon_of, known_pos, strict=True)
                ]
            )
            out[has] = np.argmin(d, axis=0)
        index = {name: i for i, name in enumerate(self.location_names)}
        named = sites.weather_location
        if named is not None:
            for j, name in enumerate(named.tolist()):
                if name and str(name) in index:
                    out[j] = index[str(name)]
        return out
