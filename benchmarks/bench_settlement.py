"""Settlement: how long a statement takes, and how close it comes to the twin's truth.

1. **Statement** (pure): the twin runs a fleet for ``--days`` days at 15-min steps with one
   evening event on the last day (``gridflock.sim.meters.run_meters``); the event is then
   settled from the sites' meters by every method (``gridflock.mv.settlement.settle_meter``,
   what the service and ``gridflock simulate --settle-days`` run). The statement's delivery
   is compared with the truth (the twin's shadow run).
2. **Meter read** (PostgreSQL): ``--store-homes`` homes' device readings every 15 min over
   ``--days`` days are written to a fresh schema, then read back as site power per 15 min
   (``gridflock.service.settlement.read_site_power``: SQL averages per device and interval,
   summed per site).

Run: ``PYTHONPATH=$PWD/src python benchmarks/bench_settlement.py --homes 1000`` (``--weather``
also settles with temperature and irradiance, which opens the regression: slow).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
import uuid

import numpy as np
import pandas as pd

from gridflock.domain import TelemetryBatch
from gridflock.domain.events import EventStatus
from gridflock.domain.spec import FleetSpec
from gridflock.fleet.generate import generate_fleet
from gridflock.mv.settlement import DeviceSites, settle_meter
from gridflock.service.settlement import read_site_power
from gridflock.sim.meters import PlannedEvent, run_meters
from gridflock.store import Store

PG_URL = os.environ.get(
    "GRIDFLOCK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
FIRST_DAY = dt.date(2026, 5, 18)


def statement(homes: int, days: int, seed: int, weather: bool) -> None:
    spec = generate_fleet(homes, seed)
    last = FIRST_DAY + dt.timedelta(days=days - 1)
    began = time.perf_counter()
    run = run_meters(spec, FIRST_DAY, days, [PlannedEvent(last, 18.0, 2.0, 0.8)], seed=seed)
    twin_s = time.perf_counter() - began
    sites = spec.sites.copy()
    sites["program"] = "vpp"  # as run_meters tags the participants
    vpp = FleetSpec(spec.grid_nodes, sites, spec.devices)
    ev = run.events[0]
    ev.status = EventStatus.COMPLETED
    a = run.actual
    runs = [("meters only (the service)", None, None)]
    if weather:
        runs.append(("meters + weather", a.temp_c, a.ghi_w_m2))
    for label, temp, ghi in runs:
        t = time.perf_counter()
        st = settle_meter(
            ev,
            vpp,
            a.times,
            a.net_kw,
            battery_kw=a.battery_kw,
            gen_kw=a.gen_kw,
            temp_c=temp,
            ghi_w_m2=ghi,
        )
        took = time.perf_counter() - t
        inside = np.asarray(
            (a.times >= pd.Timestamp(ev.start, unit="s", tz="UTC"))
            & (a.times < pd.Timestamp(ev.end, unit="s", tz="UTC"))
        )
        truth = float((a.net_kw[:, inside] - run.shadow.net_kw[:, inside]).sum() * 0.25)
        tot = st.totals
        print(
            f"{homes:,} homes, {days} days, {label}: statement in {took:.2f} s "
            f"({len(st.methods)} methods; twin {twin_s:.0f} s); method {st.method}: "
            f"{tot['delivered_kwh']:,.1f} ± {tot['uncertainty_kwh']:,.1f} kWh vs truth "
            f"{truth:,.1f} kWh ({100 * (tot['delivered_kwh'] - truth) / truth:+.1f} %); "
            f"bias {st.accuracy.bias_pct}"
        )
        for m in st.methods.itertuples():
            print(
                f"    {m.method:<24} {m.delivered_kwh:>10,.1f} kWh "
                f"({100 * (m.delivered_kwh - truth) / truth:+6.1f} % vs truth)"
            )


def meter_read(homes: int, days: int, seed: int) -> None:
    spec = generate_fleet(homes, seed)
    fleet = DeviceSites(spec)
    start = pd.Timestamp(FIRST_DAY, tz="UTC").timestamp()
    n = days * 96
    ts = start + 900.0 * np.arange(n) + 450.0
    ids = np.repeat(fleet.device_ids, n)
    rng = np.random.default_rng(seed)
    batch = TelemetryBatch(
        ids,
        np.tile(ts, len(fleet.device_ids)),
        rng.normal(-0.5, 1.0, len(ids)),
        np.full(len(ids), np.nan),
        np.full(len(ids), np.nan),
    )
    schema = f"gf_bench_{uuid.uuid4().hex[:8]}"
    store = Store(PG_URL, schema=schema)
    try:
        store.upgrade()
        store.save_fleet(spec)
        t = time.perf_counter()
        for i in range(0, len(ids), 500_000):
            sl = slice(i, i + 500_000)
            store.write_telemetry(
                TelemetryBatch(
                    batch.device_ids[sl],
                    batch.ts[sl],
                    batch.p_kw[sl],
                    batch.soc[sl],
                    batch.p_baseline_kw[sl],
                )
            )
        write_s = time.perf_counter() - t
        t = time.perf_counter()
        got = read_site_power(store, fleet, start, start + days * 86400, 900)
        read_s = time.perf_counter() - t
        assert np.isfinite(got.net_kw).all()
        print(
            f"PostgreSQL: {homes:,} homes ({len(fleet.device_ids):,} devices), {days} days, "
            f"{len(ids):,} readings: written in {write_s:.1f} s, site power read in {read_s:.2f} s "
            f"({len(ids) / read_s:,.0f} readings/s)"
        )
    finally:
        with store.engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        store.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--homes", type=int, default=1000)
    p.add_argument("--days", type=int, default=36)
    p.add_argument("--store-homes", type=int, default=100)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--weather", action="store_true", help="also settle with temperature and irradiance"
    )
    args = p.parse_args()
    statement(args.homes, args.days, args.seed, args.weather)
    if args.store_homes > 0:
        meter_read(args.store_homes, args.days, args.seed)


if __name__ == "__main__":
    main()
