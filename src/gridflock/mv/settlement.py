"""From device readings to a settlement statement: the one path the service and the twin share.

1. :func:`bucket_means` turns readings into each device's mean power per interval (the
   service gets the same from its store, aggregated in SQL);
2. :func:`site_power` sums devices into each site's net power (the meter a utility
   would read), and each site's battery power for the device-level baseline;
3. :func:`settle_meter` measures the event with every baseline method the data allows
   (:func:`gridflock.mv.measure_event`) and settles it on the recommended method (or the
   one asked for) with :func:`gridflock.mv.statement.settle`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from gridflock.domain.events import Event
from gridflock.domain.kinds import DeviceKind
from gridflock.domain.messages import FloatArray, IntArray, StrArray
from gridflock.domain.spec import FleetSpec
from gridflock.fleet.state import FleetState
from gridflock.mv.baselines import (
    LOOKBACK_DAYS,
    METHODS,
    Method,
    candidate_days,
    compute_baseline,
)
from gridflock.mv.measure import available_methods, measure_event, replay_available
from gridflock.mv.meter import BatteryParams, Calendar, EventWindow, MeterData, SiteInfo
from gridflock.mv.statement import SettlementTerms, Statement, UnknownMethodError, settle

__all__ = [
    "GENERATION_KINDS",
    "DeviceSites",
    "battery_params",
    "bucket_means",
    "event_days",
    "participants",
    "settle_meter",
    "site_flex_load",
    "site_generation",
    "site_info",
    "site_placebo_sigma",
    "site_power",
]


#: Device kinds whose metered output is behind-the-meter generation (not dispatched).
GENERATION_KINDS = (DeviceKind.PV.value, DeviceKind.WIND.value)
#: Device kinds whose metered consumption is a controllable load, not household base load.
FLEX_LOAD_KINDS = (
    DeviceKind.EV_CHARGER.value,
    DeviceKind.HEAT_PUMP.value,
    DeviceKind.WATER_HEATER.value,
)


class DeviceSites:
    """Which site each device of a fleet sits at, which are batteries, which generate."""

    def __init__(self, spec: FleetSpec) -> None:
        devices = spec.all_devices()
        self.site_ids: StrArray = spec.sites["id"].to_numpy(dtype=object)
        self.device_ids: StrArray = devices["id"].to_numpy(dtype=object)
        pos = pd.Index(self.site_ids)
        self.site_idx: IntArray = pos.get_indexer(pd.Index(devices["site_id"]))
        self.battery: np.ndarray = (
            devices["kind"].astype(str) == DeviceKind.BATTERY.value
        ).to_numpy()
        self.kinds: StrArray = devices["kind"].astype(str).to_numpy(dtype=object)
        #: PV and wind: behind-the-meter generation the MGO baselines add back
        self.generation: np.ndarray = np.isin(self.kinds.astype(str), GENERATION_KINDS)
        #: EV chargers, heat pumps, water heaters: consumption outside the household profile
        self.flex_load: np.ndarray = np.isin(self.kinds.astype(str), FLEX_LOAD_KINDS)
        #: each battery's usable capacity [kWh] (0 for other devices): SOC x this is its energy
        bat = spec.devices.get(DeviceKind.BATTERY)
        e = np.zeros(len(devices))
        if bat is not None and len(bat) and "e_kwh" in bat:
            cap = pd.to_numeric(bat["e_kwh"], errors="coerce").to_numpy(dtype=np.float64)
            row = pd.Index(bat["id"]).get_indexer(pd.Index(devices["id"]))
            e = np.where(row >= 0, cap[np.maximum(row, 0)], 0.0)
        self.battery_e_kwh: FloatArray = np.where(self.battery & np.isfinite(e), e, 0.0)

    @property
    def n_sites(self) -> int:
        """Sites in the fleet."""
        return len(self.site_ids)


def battery_params(spec: FleetSpec) -> BatteryParams:
    """Each site's battery from the registry, in ``spec.sites`` order (summed per site).

    Capacity, power limits and the energies of the floor (``max(soc_min, soc_reserve)``:
    the backup reserve) and the ceiling (``soc_max``) add up over a site's batteries;
    the efficiencies are capacity-weighted. Zeros at sites without a battery.
    """
    sites = pd.Index(spec.sites["id"])
    n = len(sites)
    frame = spec.devices.get(DeviceKind.BATTERY)
    zeros = np.zeros(n)
    if frame is None or not len(frame):
        return BatteryParams(zeros, zeros, zeros, zeros, zeros, np.ones(n), np.ones(n))
    row = sites.get_indexer(pd.Index(frame["site_id"]))
    keep = row >= 0
    row = row[keep]

    def col(name: str, default: float) -> FloatArray:
        if name not in frame:
            return np.full(int(keep.sum()), default)
        v = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)
        return np.asarray(np.where(np.isfinite(v), v, default)[keep], dtype=np.float64)

    e = col("e_kwh", 0.0)
    floor = np.maximum(col("soc_min", 0.05), col("soc_reserve", 0.2)) * e

    def per_site(v: FloatArray) -> FloatArray:
        return np.asarray(np.bincount(row, weights=v, minlength=n), dtype=np.float64)

    cap = per_site(e)
    safe = np.where(cap > 0, cap, 1.0)
    return BatteryParams(
        cap,
        per_site(col("p_charge_max_kw", 0.0)),
        per_site(col("p_discharge_max_kw", 0.0)),
        per_site(floor),
        per_site(col("soc_max", 1.0) * e),
        np.where(cap > 0, per_site(col("eta_charge", 0.95) * e) / safe, 1.0),
        np.where(cap > 0, per_site(col("eta_discharge", 0.95) * e) / safe, 1.0),
    )


def bucket_means(
    device_idx: IntArray,
    ts: FloatArray,
    p_kw: FloatArray,
    n_devices: int,
    start: float,
    step_s: float,
    n_steps: int,
) -> FloatArray:
    """Each device's mean power per interval ``[start + t*step, ...)`` (NaN: no reading).

    ``device_idx`` gives each reading's device row; readings outside the intervals or
    without a finite power are dropped.
    """
    t = np.floor((np.asarray(ts, dtype=np.float64) - start) / step_s).astype(np.int64)
    p = np.asarray(p_kw, dtype=np.float64)
    d = np.asarray(device_idx, dtype=np.int64)
    ok = (t >= 0) & (t < n_steps) & (d >= 0) & (d < n_devices) & np.isfinite(p)
    flat = d[ok] * n_steps + t[ok]
    sums = np.bincount(flat, weights=p[ok], minlength=n_devices * n_steps)
    counts = np.bincount(flat, minlength=n_devices * n_steps)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(counts > 0, sums / counts, np.nan)
    means: FloatArray = out.reshape(n_devices, n_steps)
    return means


def site_power(fleet: DeviceSites, device_kw: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Sites' net power and battery power per interval from devices' ``(n_devices, n_steps)``.

    A site's interval is NaN when any of its devices has no reading there (a sum over the
    devices that did report would look like a response). Battery power of a site without
    a battery is 0.
    """
    dk = np.asarray(device_kw, dtype=np.float64)
    n_steps = dk.shape[1]
    net = np.zeros((fleet.n_sites, n_steps))
    ok = fleet.site_idx >= 0
    np.add.at(net, fleet.site_idx[ok], dk[ok])  # NaN propagates: a gap stays a gap
    bat = np.zeros_like(net)
    b = ok & fleet.battery
    np.add.at(bat, fleet.site_idx[b], dk[b])
    return net, bat


def site_generation(fleet: DeviceSites, device_kw: FloatArray) -> FloatArray:
    """Sites' PV and wind output per interval [kW, generator sign] (0 without generation).

    NaN where a generating device has no reading, like :func:`site_power`'s net.
    """
    return _site_sum(fleet, device_kw, fleet.generation)


def site_flex_load(fleet: DeviceSites, device_kw: FloatArray) -> FloatArray:
    """Sites' controllable-load consumption per interval [kW, generator sign: <= 0].

    EV chargers, heat pumps and water heaters (:data:`FLEX_LOAD_KINDS`); 0 at a site
    without any, NaN where one has no reading.
    """
    return _site_sum(fleet, device_kw, fleet.flex_load)


def _site_sum(fleet: DeviceSites, device_kw: FloatArray, devices: np.ndarray) -> FloatArray:
    dk = np.asarray(device_kw, dtype=np.float64)
    out = np.zeros((fleet.n_sites, dk.shape[1]))
    g = (fleet.site_idx >= 0) & devices
    np.add.at(out, fleet.site_idx[g], dk[g])
    return out


def site_info(fleet: DeviceSites, spec: FleetSpec, history_kw: FloatArray) -> SiteInfo:
    """Each site's device mix, size and grid node, for the control group and the mix.

    The mix is the kinds a site holds, sorted, joined by ``+`` (``"battery+pv"``); the
    size its mean |net power| before the event [kW], to match control sites on.
    """
    kinds = np.full(fleet.n_sites, "", dtype=object)
    if len(fleet.kinds):
        df = pd.DataFrame({"site": fleet.site_idx, "kind": fleet.kinds})
        df = df[df["site"] >= 0]
        mix = df.groupby("site")["kind"].agg(lambda k: "+".join(sorted(set(k))))
        kinds[mix.index.to_numpy()] = mix.to_numpy(dtype=object)
    with np.errstate(invalid="ignore"):
        size = np.nanmean(np.abs(history_kw), axis=1) if history_kw.shape[1] else np.zeros(0)
    size = (
        np.where(np.isfinite(size) & (size > 0), size, 1e-3)
        if len(size)
        else np.ones(fleet.n_sites)
    )
    nodes = spec.sites["grid_node"].to_numpy(dtype=object)
    return SiteInfo(kinds, np.asarray(size, dtype=np.float64), nodes, battery=battery_params(spec))


def participants(spec: FleetSpec, event: Event) -> np.ndarray:
    """Sites in the event's scope that have a controllable device and did not opt out."""
    state = FleetState.from_spec(spec)
    dev = np.asarray(state.scope_mask(event.scope), dtype=bool) & np.asarray(
        state.controllable(), dtype=bool
    )
    mask = np.zeros(len(state.grid.site_ids), dtype=bool)
    mask[state.site_idx[dev]] = True
    order = pd.Index(state.grid.site_ids).get_indexer(pd.Index(spec.sites["id"]))
    out: np.ndarray = mask[order]
    return out


def event_days(events: Iterable[Event], tz: str, skip: str = "") -> frozenset[dt.date]:
    """Local dates of events (all but ``skip``): days a baseline must not learn from."""
    days: set[dt.date] = set()
    for e in events:
        if e.id == skip:
            continue
        first = pd.Timestamp(e.start, unit="s", tz="UTC").tz_convert(tz).date()
        last = pd.Timestamp(max(e.end - 1e-3, e.start), unit="s", tz="UTC").tz_convert(tz).date()
        days.update(pd.date_range(first, last, freq="D").date)
    return frozenset(days)


def _same_clock(ts: pd.Timestamp, tz: str, days: int) -> pd.Timestamp:
    """The same local clock time ``days`` days earlier (UTC)."""
    wall = ts.tz_convert(tz).tz_localize(None) - pd.Timedelta(days=days)
    return wall.tz_localize(tz, ambiguous=True, nonexistent="shift_forward").tz_convert("UTC")


def site_placebo_sigma(
    meter: MeterData,
    window: EventWindow,
    method: str,
    calendar: Calendar,
    info: SiteInfo | None,
    days: int,
) -> dict[str, float]:
    """Each site's 1-sigma error [kW] of ``method`` on placebo days, by site id.

    The same placebo days as the method's fleet figure (the event's window on recent days
    of its type without an event, where the true effect is zero): a site's error on each
    is its mean "delivered" kW there; sigma is their standard deviation (NaN with fewer
    than two days).
    """
    tz = meter.tz
    day = pd.Timestamp(window.start).tz_convert(tz).date()
    offsets, _ = candidate_days(day, calendar, LOOKBACK_DAYS)
    errs: list[FloatArray] = []
    ids: StrArray | None = None
    for k in offsets.tolist():
        if len(errs) >= days:
            break
        ev = EventWindow(
            _same_clock(window.start, tz, k),
            _same_clock(window.end, tz, k),
            f"{window.event_id}-placebo-{k}",
            window.participants,
            window.direction,
        )
        try:
            b = compute_baseline(method, meter, ev, calendar, info)
        except ValueError:
            continue  # not enough data before this day
        if ids is not None and len(b.site_ids) != len(ids):
            continue
        ids = b.site_ids
        d = np.asarray(b.delivered_kw, dtype=np.float64)
        ok = np.isfinite(d)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(ok, d, 0.0).sum(axis=1) / ok.sum(axis=1)
        e = np.where(np.asarray(b.valid, bool), mean, np.nan)
        errs.append(np.asarray(e, dtype=np.float64))
    if ids is None or len(errs) < 2:
        return {}
    block = np.vstack(errs)
    n = np.isfinite(block).sum(axis=0)
    fin = np.isfinite(block)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = np.where(fin, block, 0.0).sum(axis=0) / n
        var = np.where(fin, (block - mu) ** 2, 0.0).sum(axis=0) / (n - 1)
    sigma = np.where(n >= 2, np.sqrt(np.maximum(var, 0.0)), np.nan)
    return {str(i): float(v) for i, v in zip(ids.tolist(), sigma.tolist(), strict=True)}


def settle_meter(
    event: Event,
    spec: FleetSpec,
    times: pd.DatetimeIndex,
    net_kw: FloatArray,
    *,
    battery_kw: FloatArray | None = None,
    gen_kw: FloatArray | None = None,
    load_kw: FloatArray | None = None,
    battery_soc_kwh: FloatArray | None = None,
    temp_c: FloatArray | None = None,
    ghi_w_m2: FloatArray | None = None,
    calendar: Calendar | None = None,
    method: str | None = None,
    terms: SettlementTerms | None = None,
    notes: Sequence[str] = (),
    placebo_days: int = 10,
) -> Statement:
    """Settle ``event`` on the sites' meter data by every method the data allows.

    ``net_kw`` rows follow ``spec.sites``, columns ``times`` (history before the event
    included); ``battery_kw``, ``gen_kw`` (the sites' metered PV and wind), ``load_kw``
    (their EV chargers, heat pumps, water heaters) and ``battery_soc_kwh`` (energy in the
    sites' batteries at each interval's start [kWh]; all of ``net_kw``'s shape),
    ``temp_c`` [°C] and ``ghi_w_m2`` [W/m²] (one per time) open the methods that
    need them. ``method`` None settles on the recommended
    method, with its reason. Each method's accuracy comes from ``placebo_days`` recent
    days without an event.
    """
    if method is not None and method not in METHODS:
        raise UnknownMethodError(
            f"unknown baseline method {method!r}: use one of {', '.join(METHODS)}"
        )
    fleet = DeviceSites(spec)
    tz = str(spec.sites["tz"].iloc[0]) if len(spec.sites) else "UTC"
    meter = MeterData(
        fleet.site_ids,
        times,
        net_kw,
        tz,
        temp_c=temp_c,
        ghi_w_m2=ghi_w_m2,
        battery_kw=battery_kw,
        gen_kw=gen_kw,
        load_kw=load_kw,
        battery_soc_kwh=battery_soc_kwh,
    )
    before = np.asarray(times < pd.Timestamp(event.start, unit="s", tz="UTC"))
    info = site_info(fleet, spec, np.asarray(net_kw)[:, before])
    mask = participants(spec, event)
    window = EventWindow(
        pd.Timestamp(event.start, unit="s", tz="UTC"),
        pd.Timestamp(event.end, unit="s", tz="UTC"),
        event.id,
        mask,
        1 if event.target_kw >= 0 else -1,
    )
    names = available_methods(meter, info)
    if method == str(Method.BATTERY_DEVICE_REPLAY) and replay_available(meter, info):
        names.append(method)  # asked for by name: computed only then
    mv = measure_event(meter, window, names, calendar, info, placebo_days)
    wanted = method or mv.recommended
    sigma = (
        site_placebo_sigma(meter, window, wanted, calendar or Calendar(), info, placebo_days)
        if wanted in mv.deliveries
        else {}
    )
    nodes = dict(
        zip(
            fleet.site_ids.tolist(),
            info.grid_node.tolist() if info.grid_node is not None else [],
            strict=False,
        )
    )
    return settle(
        event,
        mv,
        nodes,
        method,
        terms,
        notes,
        sites=fleet.site_ids[mask].tolist(),
        site_sigma={wanted: sigma} if sigma else None,
    )
