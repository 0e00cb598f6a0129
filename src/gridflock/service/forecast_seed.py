"""Seed a store with weeks of twin history, so a new demo has something to forecast from.

The twin runs undisturbed over the days before ``end`` (:func:`gridflock.sim.history.twin_history`,
15-minute steps under seasonal weather); each site's power per kind is written as one
reading per device and step (shared equally between a site's devices of one kind), which
is what the service's own 15-minute resampling of live telemetry gives back. The
weather the twin ran under serves the forecasts (:class:`TwinWeatherSource`: its
forecasts carry errors that grow with lead time).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import fields

import numpy as np
import pandas as pd

from gridflock.domain.kinds import DeviceKind
from gridflock.domain.messages import TelemetryBatch
from gridflock.domain.spec import FleetSpec
from gridflock.forecast import FLEX_QUANTITIES
from gridflock.service.forecast_flex import FlexRecorder
from gridflock.sim.forecast_weather import TwinWeatherSource
from gridflock.sim.history import KIND_QUANTITY, twin_history
from gridflock.sim.seasonal import seasonal_weather
from gridflock.sim.weather import Weather
from gridflock.store import Store

__all__ = [
    "AHEAD_DAYS",
    "history_range",
    "interpolated_weather",
    "seed_twin_history",
    "twin_weather_source",
]

#: Readings per write.
CHUNK = 200_000
#: The twin's weather reaches this far past the seeded history (forecast horizon) [days].
AHEAD_DAYS = 4


def interpolated_weather(weather: Weather, times: pd.DatetimeIndex) -> Weather:
    """``weather`` at other ``times`` (e.g. the live twin's 5-s steps), linear in time.

    Angles are unwrapped before interpolating; times outside ``weather`` take its edge
    values. The live twin then runs under the same weather the history and forecasts use.
    """
    src = np.asarray((weather.times - pd.Timestamp(0, tz="UTC")).total_seconds(), dtype=float)
    dst = np.asarray((times.tz_convert("UTC") - pd.Timestamp(0, tz="UTC")).total_seconds())
    values: dict[str, np.ndarray] = {}
    for f in fields(weather):
        if f.name == "times":
            continue
        arr = np.asarray(getattr(weather, f.name), dtype=float)
        if f.name == "solar_azimuth":
            arr = np.degrees(np.unwrap(np.radians(arr)))
            values[f.name] = np.interp(dst, src, arr) % 360.0
        else:
            values[f.name] = np.interp(dst, src, arr)
    return Weather(times=times.tz_convert("UTC"), **values)


def history_range(end: float, days: float) -> tuple[float, float]:
    """``(stop, start)`` of ``days`` of history ending at ``end`` floored to 15 min [epoch s]."""
    stop = math.floor(end / 900) * 900
    return stop, stop - round(days * 96) * 900


def twin_weather_source(spec: FleetSpec, start: float, days: float, seed: int) -> TwinWeatherSource:
    """The twin's seasonal weather over ``[start, start + days)`` as a forecast source."""
    times = pd.date_range(
        pd.Timestamp(math.floor(start / 900) * 900, unit="s", tz="UTC"),
        periods=round(days * 96),
        freq="15min",
    )
    lat = float(spec.sites["lat"].mean()) if len(spec.sites) else 0.0
    lon = float(spec.sites["lon"].mean()) if len(spec.sites) else 0.0
    weather = seasonal_weather(times, lat, lon, seed)
    return TwinWeatherSource(weather, seed, lat, lon)


def seed_twin_history(
    store: Store,
    spec: FleetSpec,
    end: float,
    days: float,
    seed: int,
    *,
    weather: TwinWeatherSource | None = None,
    progress: Callable[[str], None] | None = None,
    flex: FlexRecorder | None = None,
) -> tuple[TwinWeatherSource, dict[str, float]]:
    """Write ``days`` of twin history ending at ``end`` (floored to 15 min) into ``store``.

    ``weather`` (default: made here, see :func:`twin_weather_source`) must cover the days.
    ``flex`` (the forecaster's recorder) takes the twin's band flexibility per site and
    step, which telemetry does not carry. Returns the weather source (covering the history
    and ``AHEAD_DAYS`` beyond) and the time taken per part [s] (``simulate_s``,
    ``write_s``) and ``readings`` written.
    """
    say = progress or (lambda _: None)
    _, start = history_range(end, days)
    source = weather or twin_weather_source(spec, start, days + AHEAD_DAYS, seed)
    t = time.perf_counter()
    say(f"simulating {days:g} days of the fleet's history at 15 minutes...")
    history, _ = twin_history(
        spec,
        pd.Timestamp(start, unit="s", tz="UTC"),
        days,
        seed,
        weather=source.weather,
        quantities=tuple(sorted(set(KIND_QUANTITY.values())))
        + (FLEX_QUANTITIES if flex is not None else ()),
    )
    if flex is not None:
        flex.seed(history)
    simulate_s = time.perf_counter() - t
    t = time.perf_counter()
    say("writing the history to the database...")
    devices = spec.all_devices()
    site_row = pd.Index(history.sites.ids).get_indexer(pd.Index(devices["site_id"].astype(str)))
    quantity = np.array(
        [KIND_QUANTITY.get(DeviceKind(k), "") for k in devices["kind"]], dtype=object
    )
    keep = (site_row >= 0) & np.isin(quantity, list(history.series))
    devices, site_row, quantity = devices[keep], site_row[keep], quantity[keep]
    # devices of one kind at one site share the site's power of that kind equally
    pair = pd.Series(list(zip(site_row.tolist(), quantity.tolist(), strict=True)))
    share = 1.0 / pair.map(pair.value_counts()).to_numpy(np.float64)
    ids = devices["id"].astype(str).to_numpy(object)
    ts = np.asarray((history.times - pd.Timestamp(0, tz="UTC")).total_seconds(), dtype=np.float64)
    n_t = len(ts)
    written = 0
    per_chunk = max(CHUNK // max(n_t, 1), 1)
    for i in range(0, len(ids), per_chunk):
        sl = slice(i, i + per_chunk)
        p = np.concatenate(
            [
                history.series[q][r] * s
                for q, r, s in zip(quantity[sl], site_row[sl], share[sl], strict=True)
            ]
        )
        n = len(ids[sl])
        written += store.write_telemetry(
            TelemetryBatch(
                device_ids=np.repeat(ids[sl], n_t),
                ts=np.tile(ts, n),
                p_kw=p,
                soc=np.full(n * n_t, np.nan),
                p_baseline_kw=np.full(n * n_t, np.nan),
            )
        )
    write_s = time.perf_counter() - t
    return source, {"simulate_s": simulate_s, "write_s": write_s, "readings": float(written)}
