"""Usage: the daily hot-water draw shape and evening EV charging sessions."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gridflock.sim.physics._types import ArrayLike, FloatArray

#: Hot-water use: share of the day's draw in the morning and evening peaks, and their
#: local centre and spread [h]; the rest is spread evenly over the day.
_DRAW_PEAKS: tuple[tuple[float, float, float], ...] = ((0.45, 7.0, 1.0), (0.40, 19.5, 1.5))


def _local_hour(times: pd.DatetimeIndex, tz: str) -> FloatArray:
    local = times.tz_convert(tz)
    return np.asarray(local.hour + local.minute / 60.0 + local.second / 3600.0, dtype=np.float64)


def water_draw_profile(times: pd.DatetimeIndex, tz: str) -> FloatArray:
    """Daily shape of hot-water use at ``times`` [kW per kWh/day].

    Morning and evening peaks (wrapped Gaussians around 07:00 and 19:30 local time) on
    an even base; its integral over a local day is 1 kWh, so the caller multiplies by
    each home's daily draw [kWh/day] (and any per-home factor).

    Parameters
    ----------
    times : DatetimeIndex, tz-aware
        Start of each step.
    tz : str
        IANA time zone of the homes.

    """
    if times.tz is None:
        raise ValueError("times must be timezone-aware (UTC)")
    hour = _local_hour(times, tz)
    base_share = 1.0 - sum(share for share, _, _ in _DRAW_PEAKS)
    shape = np.full(len(hour), base_share / 24.0)
    for share, centre, sd in _DRAW_PEAKS:
        for wrap in (-24.0, 0.0, 24.0):
            z = (hour - centre - wrap) / sd
            shape += share * np.exp(-0.5 * z**2) / (sd * np.sqrt(2.0 * np.pi))
    return shape


#: Local arrival window of EV sessions [h] and the shortest plug-in time [h].
EV_ARRIVAL_WINDOW_H = (14.0, 23.5)
EV_MIN_PLUGGED_H = 1.0
EV_SESSION_KWH_BOUNDS = (1.0, 80.0)
EV_NO_SESSION_SHARE = 0.15
EV_SESSION_SIGMA = 0.4  # log-standard deviation of the session energy


def ev_sessions(
    n: int,
    rng: np.random.Generator,
    arrival_hour: ArrayLike,
    departure_hour: ArrayLike,
    session_kwh: ArrayLike,
    day_start_utc: pd.Timestamp,
    tz: str,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """One evening charging session per charger for the local day of ``day_start_utc``.

    Arrival ~ Normal(arrival_hour, 1.5 h) local time, clipped to 14:00-23:30 of that day;
    departure ~ Normal(departure_hour, 1 h) local time of the next morning, at least one
    hour after arrival; energy ~ lognormal with mean ``session_kwh``, clipped to [1, 80].
    About 15 % of chargers get no session: arrival and departure +inf, energy 0.

    Parameters
    ----------
    n : int
        Number of chargers.
    rng : numpy Generator
        Source of randomness.
    arrival_hour : array (n,) or float [h, local]
        Typical plug-in hour.
    departure_hour : array (n,) or float [h, local]
        Typical hour the car must be ready, next morning.
    session_kwh : array (n,) or float [kWh]
        Mean energy a session needs.
    day_start_utc : Timestamp, tz-aware
        Any instant of the day whose evening is simulated (its local date in ``tz``).
    tz : str
        IANA time zone of the chargers.

    Returns
    -------
    arrival_s, departure_s : array (n,) [s since the Unix epoch, UTC]
    energy_kwh : array (n,) [kWh]

    """
    start = pd.Timestamp(day_start_utc)
    if start.tz is None:
        raise ValueError("day_start_utc must be timezone-aware")
    local_day = start.tz_convert(tz).normalize()
    # Anchor hours on local noon of each day, which lies after any DST switch.
    noon0 = (local_day + pd.Timedelta(hours=12)).timestamp()
    noon1 = (local_day + pd.DateOffset(days=1) + pd.Timedelta(hours=12)).timestamp()

    arr_h = np.clip(
        rng.normal(np.broadcast_to(np.asarray(arrival_hour, dtype=np.float64), (n,)), 1.5),
        *EV_ARRIVAL_WINDOW_H,
    )
    dep_h = np.clip(
        rng.normal(np.broadcast_to(np.asarray(departure_hour, dtype=np.float64), (n,)), 1.0),
        0.0,
        24.0,
    )
    arrival = noon0 + (arr_h - 12.0) * 3600.0
    departure = np.maximum(noon1 + (dep_h - 12.0) * 3600.0, arrival + EV_MIN_PLUGGED_H * 3600.0)

    mean_kwh = np.broadcast_to(np.asarray(session_kwh, dtype=np.float64), (n,))
    mu = np.log(np.maximum(mean_kwh, 1e-9)) - EV_SESSION_SIGMA**2 / 2.0
    energy = np.clip(rng.lognormal(mu, EV_SESSION_SIGMA), *EV_SESSION_KWH_BOUNDS)

    none = rng.random(n) < EV_NO_SESSION_SHARE
    arrival = np.where(none, np.inf, arrival)
    departure = np.where(none, np.inf, departure)
    energy = np.where(none, 0.0, energy)
    return (
        np.asarray(arrival, dtype=np.float64),
        np.asarray(departure, dtype=np.float64),
        np.asarray(energy, dtype=np.float64),
    )


def ev_charge_kw(asked_kw: ArrayLike, limit_kw: ArrayLike, p_min_kw: ArrayLike) -> FloatArray:
    """Charging power of chargers asked for ``asked_kw`` [kW >= 0].

    A charger cannot charge below its minimum current: asked for less it pauses (below
    half the minimum) or charges at the minimum; it never exceeds ``limit_kw`` (its
    rating, or what the car still takes).

    Parameters
    ----------
    asked_kw : array (n,) [kW]
        Requested charging power (a magnitude).
    limit_kw : array (n,) [kW]
        Most the charger can deliver now.
    p_min_kw : array (n,) [kW]
        Minimum charging power while charging.

    """
    limit = np.asarray(limit_kw, dtype=np.float64)
    p_min = np.asarray(p_min_kw, dtype=np.float64)
    asked = np.clip(np.asarray(asked_kw, dtype=np.float64), 0.0, limit)
    curtailed = asked < limit - 1e-9
    quantised = np.where(asked < 0.5 * p_min, 0.0, np.minimum(np.maximum(asked, p_min), limit))
    return np.asarray(np.where(curtailed, quantised, limit), dtype=np.float64)
