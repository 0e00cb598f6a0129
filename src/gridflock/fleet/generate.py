"""A realistic synthetic fleet: homes with PV, batteries, EVs, heat pumps, on a sized grid.

The demo, the tests and the benchmarks need fleets of any size that look like a real
residential region (central Europe by default): device shares, sizes and settings follow
typical installations, homes cluster on feeders, and the grid limits are sized so that they
bind at the evening peak of a hot day. Everything is drawn with numpy in one pass, so a
100,000-home fleet takes a few seconds, and the result depends only on the arguments.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from gridflock.domain.kinds import DeviceKind, GridNodeKind
from gridflock.domain.spec import FleetSpec, build_spec

__all__ = ["generate_fleet"]

_KM_PER_DEG_LAT = 111.32
_REGION_RADIUS_KM = 10.0
#: Grid sizing [kW per home]: the after-diversity evening peak a feeder / transformer carries.
_FEEDER_IMPORT_KW_PER_HOME = 2.2
_TRANSFORMER_IMPORT_KW_PER_HOME = 1.8
_EXPORT_KW_PER_HOME = 3.5

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


def _ids(prefix: str, numbers: Ints, width: int, suffix: str = "") -> npt.NDArray[np.object_]:
    """``prefix`` + zero-padded number + ``suffix`` for each number (1-based ids)."""
    return np.array([f"{prefix}{n:0{width}d}{suffix}" for n in numbers.tolist()], dtype=object)


def _width(count: int, minimum: int) -> int:
    """Digits to zero-pad ids to: at least ``minimum``, more when the count needs them."""
    return max(minimum, len(str(max(count, 1))))


def _split_sizes(rng: np.random.Generator, total: int, parts: int, spread: float) -> Ints:
    """``parts`` positive sizes summing to ``total``, each within about ±``spread``."""
    weights = rng.uniform(1 - spread, 1 + spread, parts)
    raw = weights / weights.sum() * (total - parts)  # every part gets at least one
    sizes = np.floor(raw).astype(np.int64) + 1
    short = total - int(sizes.sum())
    sizes[np.argsort(raw - np.floor(raw))[::-1][:short]] += 1
    return np.asarray(sizes, dtype=np.int64)


def _disc(rng: np.random.Generator, n: int, radius_km: float) -> tuple[Floats, Floats]:
    """``n`` points uniform in a disc [km east, km north]."""
    r = radius_km * np.sqrt(rng.random(n))
    a = rng.uniform(0, 2 * np.pi, n)
    return r * np.cos(a), r * np.sin(a)


def _grid(
    rng: np.random.Generator, homes: int, homes_per_feeder: int, feeders_per_transformer: int
) -> tuple[pd.DataFrame, Ints, Floats, Floats]:
    """Transformers, feeders and homes placed in space; returns nodes, feeder of each home, x, y.

    Transformers are spread over the region, feeders cluster around their transformer and
    homes around their feeder, so a grid node covers a neighbourhood.
    """
    n_feeders = max(1, round(homes / homes_per_feeder))
    n_feeders = min(n_feeders, homes)
    n_tx = -(-n_feeders // feeders_per_transformer)
    tx_x, tx_y = _disc(rng, n_tx, _REGION_RADIUS_KM * 0.9)
    feeder_tx = np.arange(n_feeders) // feeders_per_transformer
    fd_x = tx_x[feeder_tx] + rng.normal(0, 0.8, n_feeders)
    fd_y = tx_y[feeder_tx] + rng.normal(0, 0.8, n_feeders)
    sizes = _split_sizes(rng, homes, n_feeders, 0.15)
    home_feeder = np.repeat(np.arange(n_feeders), sizes)
    x = fd_x[home_feeder] + rng.normal(0, 0.35, homes)
    y = fd_y[home_feeder] + rng.normal(0, 0.35, homes)

    tx_homes = np.bincount(feeder_tx, weights=sizes, minlength=n_tx)
    feeder_ids = _ids("feeder-", np.arange(1, n_feeders + 1), _width(n_feeders, 3))
    tx_ids = _ids("tx-", np.arange(1, n_tx + 1), _width(n_tx, 2))
    feeders = pd.DataFrame(
        {
            "id": feeder_ids,
            "kind": GridNodeKind.FEEDER.value,
            "parent": tx_ids[feeder_tx],
            "limit_import_kw": np.round(
                _FEEDER_IMPORT_KW_PER_HOME * sizes * rng.uniform(0.85, 1.15, n_feeders), 1
            ),
            "limit_export_kw": np.round(
                _EXPORT_KW_PER_HOME * sizes * rng.uniform(0.9, 1.1, n_feeders), 1
            ),
        }
    )
    transformers = pd.DataFrame(
        {
            "id": tx_ids,
            "kind": GridNodeKind.TRANSFORMER.value,
            "parent": "",
            "limit_import_kw": np.round(
                _TRANSFORMER_IMPORT_KW_PER_HOME * tx_homes * rng.uniform(0.9, 1.1, n_tx), 1
            ),
            "limit_export_kw": np.round(
                _EXPORT_KW_PER_HOME * tx_homes * rng.uniform(0.9, 1.1, n_tx), 1
            ),
        }
    )
    nodes = pd.concat([transformers, feeders], ignore_index=True)
    return nodes, home_feeder, x, y


def _devices(
    kind: DeviceKind,
    suffix: str,
    home_ids: npt.NDArray[np.object_],
    mask: Bools,
    columns: dict[str, object],
) -> pd.DataFrame:
    """A device table for the homes in ``mask``: ids ``<home>-<suffix>``, then ``columns``."""
    site = home_ids[mask]
    return pd.DataFrame({"id": site + f"-{suffix}", "site_id": site, "kind": kind.value, **columns})


def generate_fleet(
    homes: int,
    seed: int,
    *,
    lat: float = 48.14,
    lon: float = 11.58,
    tz: str = "Europe/Berlin",
    homes_per_feeder: int = 120,
    feeders_per_transformer: int = 4,
) -> FleetSpec:
    """Generate ``homes`` homes spread ~10 km around (``lat``, ``lon``) with their grid.

    Parameters
    ----------
    homes
        Number of sites (homes); each has a ``load`` device and, by chance, PV (~65%),
        a battery (~35%, nearly always with PV), an EV charger (~28%), a heat pump (~35%),
        an electric water heater (~25%, mostly without heat pump), a small wind turbine (~1%).
    seed
        Seed of the random generator: the same arguments give the same fleet.
    lat, lon
        Centre of the region [deg].
    tz
        IANA time zone of every home.
    homes_per_feeder
        Typical homes on one feeder (sizes vary by ±15%).
    feeders_per_transformer
        Feeders under one transformer.

    Returns
    -------
    FleetSpec
        Transformers (roots) over feeders, sites tagged with a programme (~70%
        ``summer-peak``, the rest ``basic``) and a region (``north``/``south``/``east``/
        ``west`` of the centre), ~2% of customers opted out. Feeder import limits are about
        2.2 kW per home, transformer ones 1.8 kW per home, export limits 3.5 kW per home.

    """
    if homes < 1:
        raise ValueError(f"homes must be at least 1, got {homes}")
    if homes_per_feeder < 1 or feeders_per_transformer < 1:
        raise ValueError("homes_per_feeder and feeders_per_transformer must be at least 1")
    rng = np.random.default_rng(seed)
    n = homes
    nodes, home_feeder, x, y = _grid(rng, n, homes_per_feeder, feeders_per_transformer)
    home_ids = _ids("home-", np.arange(1, n + 1), _width(n, 6))
    size_m2 = np.clip(rng.lognormal(np.log(140), 0.3, n), 60, 350)
    size = size_m2 / 140  # relative house size scales the heat pump and the base load

    frames: dict[DeviceKind, pd.DataFrame] = {}
    annual = np.clip(3500 * size**0.3 * rng.lognormal(-0.045, 0.3, n), 1200, 9000)
    frames[DeviceKind.LOAD] = _devices(
        DeviceKind.LOAD,
        "load",
        home_ids,
        np.ones(n, dtype=bool),
        {"annual_kwh": np.round(annual, -1)},
    )

    pv = rng.random(n) < 0.65
    m = int(pv.sum())
    kwp = np.clip(rng.lognormal(np.log(7.5), 0.28, m), 3, 15)
    frames[DeviceKind.PV] = _devices(
        DeviceKind.PV,
        "pv",
        home_ids,
        pv,
        {
            "kwp": np.round(kwp * 2) / 2,
            "tilt_deg": np.round(np.clip(rng.normal(32, 8, m), 15, 45)),
            "azimuth_deg": np.round(rng.normal(180, 40, m)) % 360,
        },
    )

    battery = rng.random(n) < np.where(pv, 0.52, 0.03)
    m = int(battery.sum())
    e_kwh = rng.choice([5.0, 7.5, 10.0, 13.5, 15.0], m, p=[0.15, 0.15, 0.35, 0.2, 0.15])
    p_bat = np.clip(np.round(0.5 * e_kwh * rng.uniform(0.85, 1.15, m), 1), 3, 10)
    frames[DeviceKind.BATTERY] = _devices(
        DeviceKind.BATTERY,
        "bat",
        home_ids,
        battery,
        {
            "gateway_id": np.where(
                rng.random(m) < 0.3, np.where(rng.random(m) < 0.5, "oem-cloud-1", "oem-cloud-2"), ""
            ),
            "cost_per_kwh": np.round(rng.uniform(0.04, 0.10, m), 3),
            "e_kwh": e_kwh,
            "p_charge_max_kw": p_bat,
            "p_discharge_max_kw": p_bat,
            "soc_reserve": np.round(rng.uniform(0.1, 0.3, m), 2),
            "soc_initial": np.round(rng.uniform(0.3, 0.9, m), 2),
        },
    )

    ev = rng.random(n) < np.where(pv, 0.33, 0.19)
    m = int(ev.sum())
    p_ev = rng.choice([3.7, 7.4, 11.0], m, p=[0.15, 0.25, 0.6])
    three_phase = p_ev > 10
    ev_ids = home_ids[ev] + "-ev"
    frames[DeviceKind.EV_CHARGER] = _devices(
        DeviceKind.EV_CHARGER,
        "ev",
        home_ids,
        ev,
        {
            "gateway_id": ev_ids,  # a charger is its own (OCPP) gateway
            "cost_per_kwh": np.round(rng.uniform(0.02, 0.06, m), 3),
            "p_max_kw": p_ev,
            "p_min_kw": np.where(three_phase, 4.1, 1.4),
            "phases": np.where(three_phase, 3, 1),
            "arrival_hour": np.round(np.clip(rng.normal(18.5, 0.8, m), 17, 20) * 4) / 4,
            "departure_hour": np.round(np.clip(rng.normal(7.5, 0.5, m), 6.5, 8.5) * 4) / 4,
            "session_kwh": np.round(np.clip(rng.lognormal(np.log(12), 0.35, m), 6, 25), 1),
        },
    )

    hp = rng.random(n) < 0.35
    m = int(hp.sum())
    s = size[hp]
    frames[DeviceKind.HEAT_PUMP] = _devices(
        DeviceKind.HEAT_PUMP,
        "hp",
        home_ids,
        hp,
        {
            "cost_per_kwh": np.round(rng.uniform(0.01, 0.04, m), 3),
            "p_elec_max_kw": np.round(np.clip(3.0 * s * rng.uniform(0.85, 1.15, m), 1.5, 5), 1),
            "cop_nominal": np.round(rng.uniform(3.0, 4.3, m), 1),
            "ua_kw_per_k": np.round(np.clip(0.17 * s * rng.lognormal(0, 0.15, m), 0.10, 0.30), 3),
            "c_kwh_per_k": np.round(np.clip(7 * s * rng.uniform(0.8, 1.2, m), 4, 12), 1),
            "t_min_c": 19.0,
            "t_max_c": rng.choice([26.0, 26.5, 27.0], m),
            "t_heat_c": rng.choice([20.0, 20.5, 21.0, 21.5, 22.0], m),
            "t_cool_c": rng.choice([23.0, 23.5, 24.0, 24.5, 25.0], m),
            "can_cool": rng.random(m) < 0.85,
        },
    )

    wh = rng.random(n) < np.where(hp, 0.05, 0.358)
    m = int(wh.sum())
    volume = np.round(rng.uniform(150, 300, m), -1)
    frames[DeviceKind.WATER_HEATER] = _devices(
        DeviceKind.WATER_HEATER,
        "wh",
        home_ids,
        wh,
        {
            "cost_per_kwh": np.round(rng.uniform(0.005, 0.02, m), 3),
            "volume_l": volume,
            "p_element_kw": np.round(rng.uniform(2, 3, m) * 2) / 2,
            "daily_draw_kwh": np.round(volume * 0.03 * rng.uniform(0.7, 1.3, m), 1),
        },
    )

    wind = rng.random(n) < 0.01
    m = int(wind.sum())
    rated = np.round(rng.uniform(2, 10, m) * 2) / 2
    frames[DeviceKind.WIND] = _devices(
        DeviceKind.WIND,
        "wind",
        home_ids,
        wind,
        {
            "rated_kw": rated,
            "hub_height_m": np.round(rng.uniform(12, 25, m)),
        },
    )

    sites = _sites(rng, home_ids, nodes, home_feeder, x, y, frames, lat=lat, lon=lon, tz=tz)
    devices = pd.concat(frames.values(), ignore_index=True)
    return build_spec(nodes, sites, devices, source=f"generate_fleet(homes={homes}, seed={seed})")


def _per_home(frame: pd.DataFrame, column: str, home_index: pd.Index, n: int) -> Floats:
    """``frame[column]`` spread onto all homes (0 where the home has no such device)."""
    out = np.zeros(n)
    if len(frame):
        out[home_index.get_indexer(pd.Index(frame["site_id"]))] = frame[column].to_numpy(
            dtype=float
        )
    return out


def _sites(
    rng: np.random.Generator,
    home_ids: npt.NDArray[np.object_],
    nodes: pd.DataFrame,
    home_feeder: Ints,
    x: Floats,
    y: Floats,
    frames: dict[DeviceKind, pd.DataFrame],
    *,
    lat: float,
    lon: float,
    tz: str,
) -> pd.DataFrame:
    """Site table: position, feeder, connection limits sized to the devices, tags."""
    n = len(home_ids)
    index = pd.Index(home_ids)

    def per_home(kind: DeviceKind, column: str) -> Floats:
        return _per_home(frames[kind], column, index, n)

    # connected load [kW]: household base plus the big appliances and battery charging
    demand_kw = (
        6.0
        + 0.5 * per_home(DeviceKind.BATTERY, "p_charge_max_kw")
        + per_home(DeviceKind.EV_CHARGER, "p_max_kw")
        + per_home(DeviceKind.HEAT_PUMP, "p_elec_max_kw")
        + per_home(DeviceKind.WATER_HEATER, "p_element_kw")
    )
    generation_kw = np.maximum(
        per_home(DeviceKind.PV, "kwp"), per_home(DeviceKind.WIND, "rated_kw")
    )
    export_options = np.array([10.0, 15.0, 20.0, 25.0])
    export_step = np.searchsorted(export_options, generation_kw) + (rng.random(n) < 0.3)
    export = export_options[np.minimum(export_step, 3)]
    import_options = np.array([11.0, 17.0, 25.0, 35.0])
    step = np.searchsorted(import_options, np.maximum(demand_kw, export))
    step = np.minimum(step + (rng.random(n) < 0.2), 3)  # some connections are oversized

    feeder_ids = nodes.loc[nodes["kind"] == GridNodeKind.FEEDER.value, "id"].to_numpy()
    cos_lat = np.cos(np.radians(lat))
    region = np.where(
        np.abs(y) >= np.abs(x), np.where(y >= 0, "north", "south"), np.where(x >= 0, "east", "west")
    )
    return pd.DataFrame(
        {
            "id": home_ids,
            "lat": np.round(lat + y / _KM_PER_DEG_LAT, 6),
            "lon": np.round(lon + x / (_KM_PER_DEG_LAT * cos_lat), 6),
            "tz": tz,
            "grid_node": feeder_ids[home_feeder],
            "import_limit_kw": import_options[step],
            "export_limit_kw": export,
            "program": np.where(rng.random(n) < 0.7, "summer-peak", "basic"),
            "region": region,
            "opt_out": rng.random(n) < 0.02,
        }
    )
