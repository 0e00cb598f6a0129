"""The planning problem: arrays over devices, sites, grid nodes and 15-minute steps.

A :class:`PlanProblem` is everything one optimal plan needs, already resolved to arrays:
each controllable device family (batteries, EV chargers, thermal loads, renewables) as a
struct of arrays with the site it sits at, the sites' forecasts and limits, the grid
nodes' caps per step, the tariff, the peak charge, support windows and costs. It is pure
data; :func:`PlanProblem.from_spec` builds one from a :class:`~gridflock.domain.spec.FleetSpec`
with initial state and forecasts, and :func:`gridflock.optimize.solve` turns it into a
:class:`~gridflock.optimize.plan.Plan`.

Signs: device powers in the plan follow the generator convention (``> 0`` to the grid).
Inside the problem the forecasts are magnitudes: ``load_kw >= 0`` consumed,
``avail_kw >= 0`` a renewable could produce.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gridflock.domain.errors import Problem
from gridflock.domain.messages import BoolArray, FloatArray, IntArray, StrArray

__all__ = [
    "STEP_H",
    "Batteries",
    "EVChargers",
    "Grid",
    "PlanProblem",
    "Renewables",
    "Sites",
    "SupportWindow",
    "Tariff",
    "Thermal",
]

#: Length of one planning step [h] (15 minutes).
STEP_H = 0.25


@dataclass(frozen=True)
class Batteries:
    """Stationary batteries, one row each.

    Stored energy moves by ``eta_charge * charge - discharge / eta_discharge`` [kW] per
    step (as the twin's battery model). The state of charge stays in
    ``[soc_floor, soc_max]`` where ``soc_floor = max(soc_min, soc_reserve)`` (the backup
    reserve is the customer's: plans never go below it); a battery starting outside its
    band may only move towards it. ``soc_end_min`` (NaN: free) is the least state of
    charge at the end of the horizon.
    """

    row: IntArray  #: index into ``PlanProblem.device_ids``
    site: IntArray  #: site index
    e_kwh: FloatArray
    p_charge_max_kw: FloatArray
    p_discharge_max_kw: FloatArray
    eta_charge: FloatArray
    eta_discharge: FloatArray
    soc_floor: FloatArray
    soc_max: FloatArray
    soc0: FloatArray
    soc_end_min: FloatArray
    wear_per_kwh: FloatArray  #: EUR per kWh charged or discharged (cell throughput, grid side)
    #: fastest change of power from one step to the next [kW per s], from the site's grid
    #: code (AS/NZS 4777.2 power rate limit); empty or inf: none
    ramp_kw_per_s: FloatArray = field(default_factory=lambda: np.zeros(0))

    def __len__(self) -> int:
        return len(self.row)


@dataclass(frozen=True)
class EVChargers:
    """EV chargers, one row each: charge ``e_need_kwh`` (into the car) while ``plugged``.

    ``plugged[i, t]`` is true for the steps the car is connected before its departure;
    the car gets its need by then (the customer's rule, a hard constraint; at least
    ``e_min_kwh`` within the horizon, at most ``e_need_kwh``). The
    LP keeps charging power in ``[0, p_max_kw]``; the charger's minimum current is not a
    linear constraint and is left to the device (a setpoint below it pauses or rounds up).
    """

    row: IntArray
    site: IntArray
    p_max_kw: FloatArray
    eta: FloatArray
    e_need_kwh: FloatArray
    plugged: BoolArray  #: (n, n_steps)
    #: least energy within the horizon [kWh]: ``e_need_kwh`` when the car leaves inside
    #: it, less what full power after the horizon's end can still give otherwise
    e_min_kwh: FloatArray

    def __len__(self) -> int:
        return len(self.row)


@dataclass(frozen=True)
class Thermal:
    """Heat pumps and water heaters, one row each, as the twin's exact first-order model.

    ``T[t+1] = a T[t] + (1 - a) t_env_c[t] + b (heat_per_kw[t] * p[t] + q_free_kw[t])``
    with ``p`` the electrical power [kW, >= 0] and ``(a, b)`` from
    :func:`gridflock.domain.bands.rc_step`. Heat pumps: ``heat_per_kw = mode * COP``
    (+COP heating, -COP cooling, 0 when off), ``t_env_c`` outdoors, ``q_free_kw`` the gains;
    water heaters: ``heat_per_kw = 1``, ``t_env_c`` the room around the tank,
    ``q_free_kw = -draw``. The temperature at the end of every step stays in
    ``[t_min_c, t_max_c]`` (comfort band or tank band, hard).
    """

    row: IntArray
    site: IntArray
    is_heat_pump: BoolArray
    p_max_kw: FloatArray
    a: FloatArray
    b: FloatArray
    t0_c: FloatArray
    t_min_c: FloatArray
    t_max_c: FloatArray
    heat_per_kw: FloatArray  #: (n, n_steps)
    t_env_c: FloatArray  #: (n, n_steps)
    q_free_kw: FloatArray  #: (n, n_steps)
    #: per-step bounds (n, n_steps) that replace the band where physics leaves it whatever
    #: the device does (``build_problem(thermal_best_effort=True)``); None: the band
    t_floor_c: FloatArray | None = None
    t_ceil_c: FloatArray | None = None

    def bounds(self) -> tuple[FloatArray, FloatArray]:
        """Lowest and highest temperature allowed at the end of every step, (n, n_steps)."""
        t = self.heat_per_kw.shape[1]
        lo = (
            self.t_floor_c if self.t_floor_c is not None else np.repeat(self.t_min_c[:, None], t, 1)
        )
        hi = self.t_ceil_c if self.t_ceil_c is not None else np.repeat(self.t_max_c[:, None], t, 1)
        return lo, hi

    def __len__(self) -> int:
        return len(self.row)


@dataclass(frozen=True)
class Renewables:
    """PV systems and wind turbines, one row each: output up to ``avail_kw``.

    Curtailable ones may be turned down (at ``Tariff.curtailment_cost_per_kwh``, a small
    cost so curtailment is the last resort); the others always give ``avail_kw``.
    """

    row: IntArray
    site: IntArray
    curtailable: BoolArray
    avail_kw: FloatArray  #: (n, n_steps) >= 0

    def __len__(self) -> int:
        return len(self.row)


@dataclass(frozen=True)
class Sites:
    """Sites: uncontrollable consumption, connection limits and grid node (-1: none).

    The limits [kW, magnitudes] are (n_sites,) static ones, or (n_sites, n_steps) where
    the grid operator's envelopes make them vary (``build_problem(envelopes=...)``).
    """

    ids: StrArray
    node: IntArray
    import_limit_kw: FloatArray
    export_limit_kw: FloatArray
    load_kw: FloatArray  #: (n_sites, n_steps) >= 0, uncontrollable consumption
    #: most the site's generators may give together [kW] (its grid code; EREC G98), or
    #: what its renewables give on their own where more; empty or inf: none
    gen_cap_kw: FloatArray = field(default_factory=lambda: np.zeros(0))

    def __len__(self) -> int:
        return len(self.ids)

    @staticmethod
    def limit_per_step(limit: FloatArray, n_steps: int) -> FloatArray:
        """A limit as (n_sites, n_steps), whether given static or per step."""
        arr = np.asarray(limit, dtype=np.float64)
        out: FloatArray = np.broadcast_to(
            arr if arr.ndim == 2 else arr[:, None], (len(arr), n_steps)
        )
        return out


@dataclass(frozen=True)
class Grid:
    """Grid nodes (a tree; sites hang at any depth) with caps per step.

    ``ancestors[j, k]`` is node ``j``'s k-th ancestor (column 0 is ``j``), -1 past the
    root, as :class:`gridflock.fleet.state.GridTopology`. A node's flow is the sum of the
    net power of every site below it; ``-import_cap_kw <= flow <= export_cap_kw`` (inf:
    no cap). ``fleet_import_cap_kw``/``fleet_export_cap_kw`` (n_steps, inf: none) cap the
    whole fleet, as a peak-shaving policy would.
    """

    ids: StrArray
    ancestors: IntArray
    import_cap_kw: FloatArray  #: (n_nodes, n_steps)
    export_cap_kw: FloatArray  #: (n_nodes, n_steps)
    fleet_import_cap_kw: FloatArray  #: (n_steps,)
    fleet_export_cap_kw: FloatArray  #: (n_steps,)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Tariff:
    """Prices [EUR/kWh] per site and step, peak charge, and the cost of curtailing.

    ``import_price``/``export_price`` are (n_sites, n_steps); the LP needs
    ``import_price >= export_price`` at every step (a meter that buys above what it sells
    cannot be arbitraged by importing and exporting at once). ``peak_price_per_kw`` is
    charged on each site's highest net import above ``peak_threshold_kw`` over the
    horizon (a capacity charge per site; (n_sites,)).
    """

    import_price: FloatArray
    export_price: FloatArray
    peak_price_per_kw: FloatArray
    peak_threshold_kw: FloatArray
    curtailment_cost_per_kwh: float = 1e-3

    @staticmethod
    def flat(
        n_sites: int,
        n_steps: int,
        import_price: float,
        export_price: float = 0.0,
        *,
        peak_price_per_kw: float = 0.0,
        peak_threshold_kw: float = 0.0,
    ) -> Tariff:
        """One import and one export price for every site and step."""
        return Tariff.dynamic(
            np.full(n_steps, import_price),
            np.full(n_steps, export_price),
            n_sites,
            peak_price_per_kw=peak_price_per_kw,
            peak_threshold_kw=peak_threshold_kw,
        )

    @staticmethod
    def time_of_use(
        n_sites: int,
        step_hours: FloatArray,
        bands: list[tuple[float, float, float]],
        base_price: float,
        export_price: float = 0.0,
        *,
        peak_price_per_kw: float = 0.0,
        peak_threshold_kw: float = 0.0,
    ) -> Tariff:
        """Time-of-use: ``bands`` of ``(from_hour, to_hour, price)`` in local hours.

        ``step_hours`` is each step's local hour of day (0..24); a band may wrap past
        midnight (``from > to``); steps in no band pay ``base_price``.
        """
        h = np.asarray(step_hours, dtype=np.float64)
        price = np.full(len(h), float(base_price))
        for lo, hi, p in bands:
            inside = (h >= lo) & (h < hi) if lo <= hi else (h >= lo) | (h < hi)
            price[inside] = p
        return Tariff.dynamic(
            price,
            np.full(len(h), export_price),
            n_sites,
            peak_price_per_kw=peak_price_per_kw,
            peak_threshold_kw=peak_threshold_kw,
        )

    @staticmethod
    def dynamic(
        import_price: FloatArray,
        export_price: FloatArray,
        n_sites: int,
        *,
        peak_price_per_kw: float | FloatArray = 0.0,
        peak_threshold_kw: float | FloatArray = 0.0,
    ) -> Tariff:
        """Prices per step (n_steps,) for all sites, or per site and step (n_sites, n_steps)."""
        imp = np.asarray(import_price, dtype=np.float64)
        exp = np.asarray(export_price, dtype=np.float64)
        n_steps = imp.shape[-1]
        return Tariff(
            np.broadcast_to(imp, (n_sites, n_steps)).copy(),
            np.broadcast_to(exp, (n_sites, n_steps)).copy(),
            np.broadcast_to(np.asarray(peak_price_per_kw, dtype=np.float64), (n_sites,)).copy(),
            np.broadcast_to(np.asarray(peak_threshold_kw, dtype=np.float64), (n_sites,)).copy(),
        )


@dataclass(frozen=True)
class SupportWindow:
    """A committed support window: extra export (or less import) over steps [start, end).

    The scope (every site, or the sites below grid node ``node``) delivers
    ``delivered[t] = min(kw, net[t] - reference_kw[t])`` [kW, generator sign], where
    ``net`` is the scope's net power in the plan and ``reference_kw`` its net power in the
    plan without any window (computed by :func:`~gridflock.optimize.solve` when not given).
    Each delivered kWh earns ``value_per_kwh``; each kWh short of ``kw`` costs
    ``penalty_per_kwh``.
    """

    start: int
    end: int
    kw: float
    value_per_kwh: float
    penalty_per_kwh: float = 0.0
    node: str | None = None
    reference_kw: FloatArray | None = None  #: (end - start,)


@dataclass(frozen=True)
class PlanProblem:
    """One planning problem over ``n_steps`` steps of ``step_h`` hours from ``start_ts``.

    ``device_ids``/``device_kinds`` list every device the plan gives a row (the
    families' ``row`` index into them; uncontrollable ``load`` devices get their share of
    the site's load forecast).
    """

    start_ts: float  #: UTC epoch seconds of the first step's start
    n_steps: int
    device_ids: StrArray
    device_kinds: StrArray
    device_site: IntArray
    sites: Sites
    grid: Grid
    tariff: Tariff
    batteries: Batteries
    evs: EVChargers
    thermal: Thermal
    renewables: Renewables
    windows: tuple[SupportWindow, ...] = ()
    load_share: FloatArray = field(default_factory=lambda: np.zeros(0))  #: per device
    step_h: float = STEP_H
    #: what the builder had to give way on (a house or tank that leaves its band whatever
    #: its device does, planned at best effort); copied to ``Plan.warnings``
    notes: tuple[Problem, ...] = ()

    @property
    def n_sites(self) -> int:
        """Number of sites."""
        return len(self.sites)

    @property
    def n_devices(self) -> int:
        """Number of devices with a row in the plan."""
        return len(self.device_ids)

    @property
    def step_ts(self) -> FloatArray:
        """Start of every step [UTC epoch s]."""
        out: FloatArray = self.start_ts + np.arange(self.n_steps, dtype=np.float64) * (
            self.step_h * 3600.0
        )
        return out
