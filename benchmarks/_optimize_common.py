"""Synthetic planning problems for the optimiser benchmarks (homes with battery, PV, EV)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gridflock.domain.spec import FleetSpec, build_spec
from gridflock.optimize import SiteForecasts, Tariff

#: 2026-06-15 10:00 UTC = 12:00 in Berlin: a day from noon to noon covers the EV sessions.
START_TS = pd.Timestamp("2026-06-15 10:00", tz="UTC").timestamp()
N_STEPS = 96


def homes_fleet(
    n: int,
    seed: int = 7,
    *,
    homes_per_feeder: int = 100,
    feeders_per_transformer: int = 4,
    tight_share: float = 0.0,
) -> FleetSpec:
    """``n`` homes, each with a battery, PV, an EV charger and a base load, under a grid.

    Feeders carry ``homes_per_feeder`` homes with an import cap of 7 kW per home, except a
    ``tight_share`` of them at 4 kW per home (these bind at night, when cars and batteries
    charge at the cheapest price); transformers carry ``feeders_per_transformer`` feeders
    (6 kW per home); some homes hang directly from a
    transformer, so caps sit at mixed depths of the tree.
    """
    rng = np.random.default_rng(seed)
    n_feeders = max(1, int(np.ceil(n / homes_per_feeder)))
    n_tr = max(1, int(np.ceil(n_feeders / feeders_per_transformer)))
    feeder = np.minimum(np.arange(n) // homes_per_feeder, n_feeders - 1)
    per_feeder = np.bincount(feeder, minlength=n_feeders)
    tr_of_feeder = np.arange(n_feeders) // feeders_per_transformer
    tight = np.zeros(n_feeders, bool)
    tight[rng.permutation(n_feeders)[: round(tight_share * n_feeders)]] = True
    direct = rng.random(n) < 0.05  # a few homes straight on the transformer
    homes_per_tr = np.bincount(tr_of_feeder[feeder], minlength=n_tr)
    nodes = [
        {
            "id": f"tr-{k}",
            "kind": "transformer",
            "parent": "",
            "limit_import_kw": 6.0 * homes_per_tr[k],
            "limit_export_kw": 4.0 * homes_per_tr[k],
        }
        for k in range(n_tr)
    ] + [
        {
            "id": f"fd-{j}",
            "kind": "feeder",
            "parent": f"tr-{tr_of_feeder[j]}",
            "limit_import_kw": (4.0 if tight[j] else 7.0) * per_feeder[j],
            "limit_export_kw": 4.5 * per_feeder[j],
        }
        for j in range(n_feeders)
    ]
    sites = pd.DataFrame(
        {
            "id": [f"h{i}" for i in range(n)],
            "lat": 48.1,
            "lon": 11.6,
            "tz": "Europe/Berlin",
            "grid_node": np.where(
                direct, [f"tr-{tr_of_feeder[f]}" for f in feeder], [f"fd-{f}" for f in feeder]
            ),
            "import_limit_kw": 17.0,
            "export_limit_kw": rng.choice([5.0, 7.0, 10.0], n),
        }
    )
    ids = sites["id"].to_numpy()
    e = rng.choice([5.0, 7.5, 10.0, 13.5], n)
    dev = pd.concat(
        [
            pd.DataFrame(
                {
                    "id": ids + "-bat",
                    "site_id": ids,
                    "kind": "battery",
                    "e_kwh": e,
                    "p_charge_max_kw": np.round(e / 2, 1),
                    "p_discharge_max_kw": np.round(e / 2, 1),
                    "soc_initial": rng.uniform(0.2, 0.8, n),
                }
            ),
            pd.DataFrame(
                {"id": ids + "-pv", "site_id": ids, "kind": "pv", "kwp": rng.uniform(4, 10, n)}
            ),
            pd.DataFrame(
                {
                    "id": ids + "-ev",
                    "site_id": ids,
                    "kind": "ev_charger",
                    "p_max_kw": rng.choice([7.4, 11.0], n),
                    "arrival_hour": np.round(rng.uniform(16.5, 20.5, n) * 4) / 4,
                    "departure_hour": np.round(rng.uniform(6.0, 8.5, n) * 4) / 4,
                    "session_kwh": rng.uniform(5, 25, n),
                }
            ),
            pd.DataFrame(
                {"id": ids + "-load", "site_id": ids, "kind": "load", "annual_kwh": 3500.0}
            ),
        ],
        ignore_index=True,
    )
    return build_spec(nodes, sites, dev, source="bench")


def forecasts(spec: FleetSpec, seed: int = 7) -> SiteForecasts:
    """A June day from noon: PV bell by kWp, evening load peak, small noise."""
    rng = np.random.default_rng(seed + 1)
    n = len(spec.sites)
    local_h = (12.0 + np.arange(N_STEPS) * 0.25) % 24
    kwp = spec.devices["pv"].set_index("site_id")["kwp"].reindex(spec.sites["id"]).fillna(0.0)
    bell = np.maximum(np.sin((local_h - 5.5) / 15.0 * np.pi), 0.0) ** 1.3
    pv = kwp.to_numpy()[:, None] * 0.8 * bell[None, :] * rng.uniform(0.6, 1.0, (n, 1))
    shape = (
        0.35
        + 0.5 * np.exp(-(((local_h - 19.5) / 2.0) ** 2))
        + 0.2 * np.exp(-(((local_h - 7.5) / 1.5) ** 2))
    )
    load = shape[None, :] * rng.uniform(0.7, 1.4, (n, 1)) + rng.uniform(0, 0.2, (n, N_STEPS))
    return SiteForecasts(load, pv, np.zeros((n, N_STEPS)), np.full(N_STEPS, 18.0))


def tou_tariff(n_sites: int) -> Tariff:
    """Time of use: 0.22 EUR/kWh, 0.42 from 17:00 to 21:00, 0.15 at night; export 0.08."""
    local_h = (12.0 + np.arange(N_STEPS) * 0.25) % 24
    return Tariff.time_of_use(n_sites, local_h, [(17, 21, 0.42), (0, 6, 0.15)], 0.22, 0.08)
