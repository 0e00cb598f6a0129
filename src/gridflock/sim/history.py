"""Twin history for forecasting: weeks to a year of 15-minute power per site and kind.

The twin runs undisturbed (no commands, no telemetry imperfections unless asked) under
seasonal weather; each step's device powers are summed per site and kind. This is the
training and test data of the forecasting benchmarks, and what ``gridflock forecast
simulate`` writes to a file.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from gridflock.domain.kinds import DeviceKind
from gridflock.domain.spec import FleetSpec
from gridflock.fleet.flexibility import flexibility
from gridflock.fleet.state import FleetState
from gridflock.forecast import FLEX_HOLD_H, FLEX_QUANTITIES, History, SiteAttributes
from gridflock.sim.imperfections import Imperfections
from gridflock.sim.seasonal import seasonal_weather
from gridflock.sim.twin import Twin
from gridflock.sim.weather import Weather

__all__ = ["KIND_QUANTITY", "site_attributes", "twin_history"]

K = DeviceKind
#: History quantity of each built-in device kind.
KIND_QUANTITY = {
    K.LOAD: "load",
    K.PV: "pv",
    K.WIND: "wind",
    K.HEAT_PUMP: "heat_pump",
    K.WATER_HEATER: "water_heater",
    K.EV_CHARGER: "ev",
    K.BATTERY: "battery",
}

_TZ_COUNTRY = {
    "Europe/Berlin": "DE",
    "Europe/Amsterdam": "NL",
    "Europe/Paris": "FR",
    "Europe/Vienna": "AT",
    "Europe/Zurich": "CH",
    "Europe/Brussels": "BE",
    "Europe/London": "GB",
    "Europe/Madrid": "ES",
    "Europe/Rome": "IT",
    "Europe/Copenhagen": "DK",
}


def site_attributes(spec: FleetSpec) -> SiteAttributes:
    """The forecasting attributes of a fleet's sites (capacities summed per site and kind)."""
    sites = spec.sites
    ids = pd.Index(sites["id"].astype(str))
    n = len(ids)

    def total(kind: DeviceKind, column: str) -> np.ndarray:
        out = np.zeros(n)
        frame = spec.devices.get(kind)
        if frame is not None and len(frame):
            idx = ids.get_indexer(pd.Index(frame["site_id"].astype(str)))
            np.add.at(out, idx, frame[column].to_numpy(float))
        return out

    tz = sites["tz"].astype(str).to_numpy(object)
    return SiteAttributes(
        ids=ids.to_numpy(object),
        lat=sites["lat"].to_numpy(float),
        lon=sites["lon"].to_numpy(float),
        kwp=total(K.PV, "kwp"),
        battery_kwh=total(K.BATTERY, "e_kwh"),
        wind_kw=total(K.WIND, "rated_kw"),
        ev_kw=total(K.EV_CHARGER, "p_max_kw"),
        heat_pump_kw=total(K.HEAT_PUMP, "p_elec_max_kw"),
        water_heater_kw=total(K.WATER_HEATER, "p_element_kw"),
        annual_kwh=total(K.LOAD, "annual_kwh"),
        tz=tz,
        country=np.array([_TZ_COUNTRY.get(str(z), "") for z in tz], dtype=object),
        grid_node=sites["grid_node"].astype(str).to_numpy(object),
        program=sites["program"].fillna("").astype(str).to_numpy(object),
        region=sites["region"].fillna("").astype(str).to_numpy(object),
    )


def twin_history(
    spec: FleetSpec,
    start: pd.Timestamp,
    days: float,
    seed: int,
    *,
    weather: Weather | None = None,
    quantities: tuple[str, ...] | None = None,
    dropout_rate: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[History, Weather]:
    """Run the twin over ``days`` at 15 minutes and return its per-site history and weather.

    Parameters
    ----------
    spec : FleetSpec
        The fleet.
    start : Timestamp, tz-aware, on a quarter hour
        First step.
    days : float [d]
        Length.
    seed : int
        Seeds the twin and (unless ``weather`` is given) the seasonal weather.
    weather : Weather or None
        Weather to run under (default :func:`seasonal_weather` at the fleet's centre).
    quantities : tuple of str or None
        Series to keep (default every kind's quantity and ``net``); fewer saves memory.
        ``flex_up`` and ``flex_down`` (asked for by name) are each site's up and down
        flexibility [kW, >= 0] held for ``FLEX_HOLD_H`` from the start of each step: the same
        power bands the dispatcher uses (``fleet.flexibility``), on the fleet state the
        twin's telemetry builds, summed over the site's devices.
    dropout_rate : float [0..1]
        Share of readings lost at random (NaN), as telemetry would.
    progress : callable (done, total) or None
        Called every simulated day.

    """
    step_s = 900.0
    steps = round(days * 96)
    if steps < 1:
        raise ValueError(f"days must cover at least one 15-minute step, got {days}")
    start = pd.Timestamp(start).tz_convert("UTC")
    times = pd.date_range(start, periods=steps, freq="15min")
    lat = float(spec.sites["lat"].mean()) if len(spec.sites) else 0.0
    lon = float(spec.sites["lon"].mean()) if len(spec.sites) else 0.0
    if weather is None:
        weather = seasonal_weather(times, lat, lon, seed)
    none = Imperfections(
        latency_median_s=0.0, dropout_rate=0.0, offline_rate=0.0, ignore_rate=0.0, noise_kw=0.0
    )
    twin = Twin(spec, start, steps, step_s, seed, imperfections=none, weather=weather)
    keep = quantities or (*KIND_QUANTITY.values(), "net")
    n_sites = twin.cap.grid.n_sites
    site_idx = twin.cap.site_idx
    out = {q: np.zeros((n_sites, steps)) for q in keep}
    slices = {
        KIND_QUANTITY[k]: sl
        for k, sl in twin.ks.items()
        if k in KIND_QUANTITY and KIND_QUANTITY[k] in keep
    }
    for q in keep:
        if q not in slices and q != "net":
            out[q][:] = 0.0
    flex = [q for q in FLEX_QUANTITIES if q in keep]
    state = FleetState.from_spec(spec) if flex else None
    for t in range(steps):
        if state is not None:
            # the headroom offered at the step's start, from the state reported so far
            f = flexibility(state, FLEX_HOLD_H, twin.now)
            for q, kw in (("flex_up", f.up_kw), ("flex_down", f.down_kw)):
                if q in out:
                    out[q][:, t] = np.bincount(site_idx, weights=kw, minlength=n_sites)
        twin.step()
        batches = twin.receive()
        if state is not None:
            for batch in batches:
                state.apply(batch)
        p = twin.p_kw
        for q, sl in slices.items():
            if sl.stop > sl.start:
                out[q][:, t] = np.bincount(site_idx[sl], weights=p[sl], minlength=n_sites)
        if "net" in out:
            out["net"][:, t] = np.bincount(site_idx, weights=p, minlength=n_sites)
        if progress is not None and (t + 1) % 96 == 0:
            progress(t + 1, steps)
    for q in flex:  # before the first readings the bands are unknown
        out[q][:, 0] = np.nan
    if dropout_rate > 0:
        rng = np.random.default_rng([seed, 99])
        for arr in out.values():
            arr[rng.random(arr.shape) < dropout_rate] = np.nan
    sites = site_attributes(spec)
    # the fleet state orders sites as the grid does; align attributes to it
    order = pd.Index(sites.ids).get_indexer(pd.Index(twin.cap.grid.site_ids))
    return History(times, out, sites.take(order)), weather
