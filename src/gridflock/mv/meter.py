"""Meter data, event windows and the calendar the baselines select their days from.

Everything here is pure: arrays in, arrays out. Meter data is a matrix of interval
powers, one row per site (or per grid node, once aggregated), in the generator sign
convention (``> 0`` export, ``< 0`` import); gaps are NaN. Days are local days of the
meter's time zone, since utilities and markets define "the same hour of the previous
ten working days" on the customer's clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gridflock.domain.messages import BoolArray, FloatArray, IntArray, StrArray

__all__ = ["BatteryParams", "Calendar", "EventWindow", "MeterData", "SiteInfo", "local_days"]


def _as_utc_index(times: pd.DatetimeIndex) -> pd.DatetimeIndex:
    if times.tz is None:
        raise ValueError("meter times must be timezone-aware (UTC); localise them first")
    return times.tz_convert("UTC")


@dataclass(frozen=True)
class MeterData:
    """Interval meter data of ``n_sites`` sites over ``n_steps`` regular steps.

    ``net_kw[i, t]`` is site ``i``'s mean net power over ``[times[t], times[t] + step)``
    [kW, generator sign]; NaN where the reading is missing. ``tz`` is the IANA zone that
    defines local days (working days, the same half hour). ``temp_c`` (°C) and
    ``ghi_w_m2`` (W/m², global horizontal irradiance) are optional weather series over
    ``times``; ``battery_kw`` is the optional per-site battery power (device telemetry,
    generator sign) that the device-level battery baseline needs; ``gen_kw`` the optional
    per-site behind-the-meter generation (PV and wind, metered per device, generator sign:
    ``>= 0``) that the metering-generator-output (MGO) baselines need; ``load_kw`` the
    optional per-site consumption of the metered controllable loads (EV chargers, heat
    pumps, water heaters; generator sign: ``<= 0``), which the standard-profile correction
    leaves out of the household base load it scales the profile to.
    ``battery_soc_kwh[i, t]`` is the optional energy stored in site ``i``'s batteries at
    ``times[t]`` (the start of interval ``t``) [kWh, summed over the site's batteries:
    state of charge x usable capacity; NaN where unknown], from device telemetry: what
    the replay baseline starts from.
    """

    site_ids: StrArray
    times: pd.DatetimeIndex
    net_kw: FloatArray
    tz: str = "UTC"
    temp_c: FloatArray | None = None
    ghi_w_m2: FloatArray | None = None
    battery_kw: FloatArray | None = None
    gen_kw: FloatArray | None = None
    load_kw: FloatArray | None = None
    battery_soc_kwh: FloatArray | None = None

    def __post_init__(self) -> None:
        times = _as_utc_index(pd.DatetimeIndex(self.times))
        object.__setattr__(self, "times", times)
        net = np.asarray(self.net_kw, dtype=np.float64)
        if net.ndim != 2:
            raise ValueError(f"net_kw must be (n_sites, n_steps), got shape {net.shape}")
        object.__setattr__(self, "net_kw", net)
        object.__setattr__(self, "site_ids", np.asarray(self.site_ids, dtype=object))
        n, m = net.shape
        if len(self.site_ids) != n:
            raise ValueError(f"{len(self.site_ids)} site ids for {n} rows of net_kw")
        if len(times) != m:
            raise ValueError(f"{len(times)} timestamps for {m} columns of net_kw")
        if m >= 2:
            steps = np.diff(times.asi8)
            if (steps != steps[0]).any() or steps[0] <= 0:
                raise ValueError(
                    "meter times must be regular and increasing (one reading per interval); "
                    "reindex onto a regular grid and leave gaps as NaN"
                )
        for name in ("temp_c", "ghi_w_m2"):
            v = getattr(self, name)
            if v is not None:
                v = np.asarray(v, dtype=np.float64)
                if v.shape != (m,):
                    raise ValueError(f"{name} must have one value per step ({m}), got {v.shape}")
                object.__setattr__(self, name, v)
        for name in ("battery_kw", "gen_kw", "load_kw", "battery_soc_kwh"):
            v = getattr(self, name)
            if v is not None:
                v = np.asarray(v, dtype=np.float64)
                if v.shape != net.shape:
                    raise ValueError(f"{name} must have the shape of net_kw {net.shape}")
                object.__setattr__(self, name, v)

    @property
    def n_sites(self) -> int:
        """Number of rows (sites or grid nodes)."""
        return int(self.net_kw.shape[0])

    @property
    def step_s(self) -> float:
        """Interval length [s]."""
        if len(self.times) < 2:
            raise ValueError("meter data needs at least two intervals to know its step")
        return float((self.times[1] - self.times[0]).total_seconds())

    def aggregate(self, groups: Sequence[str] | StrArray) -> MeterData:
        """Sum the rows per group (for example the grid node of each site).

        A group's interval is NaN if any of its sites is NaN there: a sum over the
        sites that happened to report would look like a response.
        """
        keys = np.asarray(groups, dtype=object)
        if len(keys) != self.n_sites:
            raise ValueError(f"{len(keys)} group labels for {self.n_sites} sites")
        names, inv = np.unique(keys.astype(str), return_inverse=True)

        def sums(x: FloatArray) -> FloatArray:
            out = np.zeros((len(names), x.shape[1]))
            np.add.at(out, inv, x)
            return out

        bat = sums(self.battery_kw) if self.battery_kw is not None else None
        gen = sums(self.gen_kw) if self.gen_kw is not None else None
        load = sums(self.load_kw) if self.load_kw is not None else None
        soc = sums(self.battery_soc_kwh) if self.battery_soc_kwh is not None else None
        return MeterData(
            names.astype(object),
            self.times,
            sums(self.net_kw),
            self.tz,
            self.temp_c,
            self.ghi_w_m2,
            bat,
            gen,
            load,
            soc,
        )

    def take(self, rows: BoolArray | Sequence[int]) -> MeterData:
        """The rows selected by a mask or index list."""
        idx = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows, int)
        bat = self.battery_kw[idx] if self.battery_kw is not None else None
        gen = self.gen_kw[idx] if self.gen_kw is not None else None
        load = self.load_kw[idx] if self.load_kw is not None else None
        soc = self.battery_soc_kwh[idx] if self.battery_soc_kwh is not None else None
        return MeterData(
            self.site_ids[idx],
            self.times,
            self.net_kw[idx],
            self.tz,
            self.temp_c,
            self.ghi_w_m2,
            bat,
            gen,
            load,
            soc,
        )

    def gross(self) -> MeterData:
        """The sites' own consumption, net of the measured generation and battery [kW].

        ``net - gen - battery`` (generator sign, so ``<= 0``): what the MGO baselines
        match days on, since neither the sunshine on the panels nor the battery's
        schedule is the load's. Without ``gen_kw`` or ``battery_kw`` that part stays in.
        ``load_kw`` (the controllable loads, part of the consumption) is carried over.
        """
        x = self.net_kw
        if self.gen_kw is not None:
            x = x - self.gen_kw
        if self.battery_kw is not None:
            x = x - self.battery_kw
        return MeterData(
            self.site_ids,
            self.times,
            x,
            self.tz,
            self.temp_c,
            self.ghi_w_m2,
            load_kw=self.load_kw,
        )


@dataclass(frozen=True)
class BatteryParams:
    """Each site's battery, as the device registry describes it, in the meter's row order.

    Per site, summed over its batteries (zeros at a site without one): ``e_kwh`` usable
    capacity [kWh]; ``p_charge_max_kw`` / ``p_discharge_max_kw`` power limits [kW, >= 0];
    ``floor_kwh`` the energy it never discharges below on its own (``max(soc_min,
    soc_reserve) x e_kwh``: the backup reserve) and ``ceiling_kwh`` the most it holds
    (``soc_max x e_kwh``) [kWh]; ``eta_charge`` / ``eta_discharge`` the round-trip's two
    halves [1] (capacity-weighted over the site's batteries).
    """

    e_kwh: FloatArray
    p_charge_max_kw: FloatArray
    p_discharge_max_kw: FloatArray
    floor_kwh: FloatArray
    ceiling_kwh: FloatArray
    eta_charge: FloatArray
    eta_discharge: FloatArray

    def __post_init__(self) -> None:
        n = len(np.asarray(self.e_kwh))
        for name in (
            "e_kwh",
            "p_charge_max_kw",
            "p_discharge_max_kw",
            "floor_kwh",
            "ceiling_kwh",
            "eta_charge",
            "eta_discharge",
        ):
            v = np.asarray(getattr(self, name), dtype=np.float64)
            if v.shape != (n,):
                raise ValueError(f"BatteryParams.{name} must have one value per site ({n})")
            object.__setattr__(self, name, v)

    @property
    def has(self) -> BoolArray:
        """Rows with a battery that can move energy (capacity and a power limit)."""
        return np.asarray(
            (self.e_kwh > 0) & ((self.p_charge_max_kw > 0) | (self.p_discharge_max_kw > 0)),
            dtype=bool,
        )

    def take(self, rows: BoolArray | IntArray | Sequence[int]) -> BatteryParams:
        """The rows selected by a mask or index list."""
        idx = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows, int)
        return BatteryParams(
            self.e_kwh[idx],
            self.p_charge_max_kw[idx],
            self.p_discharge_max_kw[idx],
            self.floor_kwh[idx],
            self.ceiling_kwh[idx],
            self.eta_charge[idx],
            self.eta_discharge[idx],
        )


@dataclass(frozen=True)
class SiteInfo:
    """What is known of each site, in the meter's row order.

    ``kinds`` names the site's device mix (for example ``"pv+battery"``: the kinds a site
    holds, sorted, joined by ``+``); ``size`` is a size measure to match on (annual
    consumption [kWh] or PV peak [kWp]: any positive number comparable across sites);
    ``grid_node`` the node each site hangs from; ``control`` marks sites held out of
    events as a randomised control group; ``battery`` each site's battery parameters
    (the replay baseline needs them).
    """

    kinds: StrArray
    size: FloatArray
    grid_node: StrArray | None = None
    control: BoolArray | None = None
    battery: BatteryParams | None = None


@dataclass(frozen=True)
class EventWindow:
    """An event over ``[start, end)`` (UTC) on the sites in ``participants``.

    ``participants`` is a boolean mask over the meter's rows (None: every row that is
    not in the control group). ``direction`` is +1 for an "up" event (less import /
    more export), -1 for "down".
    """

    start: pd.Timestamp
    end: pd.Timestamp
    event_id: str = ""
    participants: BoolArray | None = None
    direction: int = 1

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            ts = pd.Timestamp(getattr(self, name))
            if ts.tzinfo is None:
                raise ValueError(f"event {name} must be timezone-aware (UTC)")
            object.__setattr__(self, name, ts.tz_convert("UTC"))
        if not self.end > self.start:
            raise ValueError(f"event end {self.end} must be after its start {self.start}")
        if self.direction not in (1, -1):
            raise ValueError("direction must be +1 (up) or -1 (down)")


@dataclass(frozen=True)
class Calendar:
    """Days a baseline must not learn from: holidays and previous event days (local dates)."""

    holidays: frozenset[dt.date] = field(default_factory=frozenset)
    event_days: frozenset[dt.date] = field(default_factory=frozenset)

    @staticmethod
    def of(holidays: Iterable[dt.date] = (), event_days: Iterable[dt.date] = ()) -> Calendar:
        """Build from any iterables of dates."""
        return Calendar(frozenset(holidays), frozenset(event_days))

    def is_working(self, day: dt.date) -> bool:
        """Monday to Friday and not a holiday."""
        return day.weekday() < 5 and day not in self.holidays


def local_days(times: pd.DatetimeIndex, tz: str) -> np.ndarray:
    """Local date of each timestamp (an array of ``datetime.date``)."""
    return np.asarray(times.tz_convert(tz).date)
