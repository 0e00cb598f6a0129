"""What a plan starts from: forecasts per site and the devices' state now."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridflock.domain.kinds import DeviceKind
from gridflock.domain.messages import FloatArray, StrArray
from gridflock.fleet.state import FleetState

__all__ = ["InitialState", "SiteForecasts", "pick_quantile"]


@dataclass(frozen=True)
class SiteForecasts:
    """Forecasts per site and step, (n_sites, n_steps), in the spec's site order.

    ``load_kw`` uncontrollable consumption [kW, >= 0]; ``pv_kw``/``wind_kw`` what the
    site's PV systems / turbines could produce [kW, >= 0] (shared among a site's devices in
    proportion to their rated output); ``t_out_c`` outdoor temperature; ``gain_kw``
    thermal gains of the house (sun, people) and ``hot_water_kw`` hot water drawn, as
    heat [kW]; ``cop`` each site's heat-pump COP per step (None: ``cop_nominal``; the
    twin's ``sim.physics.cop`` gives the same values the twin will use).
    """

    load_kw: FloatArray
    pv_kw: FloatArray
    wind_kw: FloatArray
    t_out_c: FloatArray
    gain_kw: FloatArray | None = None
    hot_water_kw: FloatArray | None = None
    cop: FloatArray | None = None


def pick_quantile(levels: FloatArray, values: FloatArray, q: float) -> FloatArray:
    """The forecast at quantile ``q`` from quantile forecasts ``values[k]`` at ``levels[k]``.

    Linear interpolation between the two nearest levels (clamped at the ends); ``values``
    has the levels on its first axis. Planning on a high load quantile and a low PV one
    gives a cautious plan.
    """
    lv = np.asarray(levels, dtype=np.float64)
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {q}")
    order = np.argsort(lv)
    lv, vals = lv[order], np.asarray(values, dtype=np.float64)[order]
    k = int(np.clip(np.searchsorted(lv, q), 1, len(lv) - 1)) if len(lv) > 1 else 0
    if len(lv) == 1:
        return np.asarray(vals[0], dtype=np.float64)
    lo, hi = lv[k - 1], lv[k]
    w = float(np.clip((q - lo) / (hi - lo), 0.0, 1.0)) if hi > lo else 0.0
    out: FloatArray = (1.0 - w) * vals[k - 1] + w * vals[k]
    return out


@dataclass(frozen=True)
class InitialState:
    """The devices' state at the plan's start, by device id (NaN: unknown, use defaults).

    ``soc`` for batteries [0..1]; ``e_need_kwh`` energy a plugged-in car still needs,
    ``arrival_ts`` (NaN: plugged now) and ``departure_ts`` [UTC epoch s] for EV chargers;
    ``temp_c`` indoor temperature of heat pumps' houses and tank temperature of water
    heaters. Defaults: a battery's ``soc_initial``; an EV charger with no session has no
    car; a thermal device starts at its setpoint.
    """

    device_ids: StrArray
    soc: FloatArray
    e_need_kwh: FloatArray
    arrival_ts: FloatArray
    departure_ts: FloatArray
    temp_c: FloatArray

    @staticmethod
    def from_fleet_state(state: FleetState) -> InitialState:
        """The live state as last reported (telemetry in ``FleetState``), stale or not.

        Batteries' ``soc``; EV chargers' ``e_need_kwh`` and ``departure_ts`` (a car
        reported with a need is plugged in now); heat pumps' ``t_in_c``; water heaters'
        ``t_tank_c``. Devices that reported nothing keep NaN (the spec's defaults).
        """
        n = len(state.device_ids)
        temp = np.full(n, np.nan)
        nan = np.full(n, np.nan)
        extras = state.extras
        hp = state.kind_slices.get(DeviceKind.HEAT_PUMP)
        wh = state.kind_slices.get(DeviceKind.WATER_HEATER)
        if hp is not None:
            temp[hp] = extras.get("t_in_c", nan)[hp]
        if wh is not None:
            temp[wh] = extras.get("t_tank_c", nan)[wh]
        need = extras.get("e_need_kwh", nan).copy()
        departure = extras.get("departure_ts", nan).copy()
        ev = state.kind_slices.get(DeviceKind.EV_CHARGER)
        if ev is not None:  # only EV chargers carry sessions
            keep = np.zeros(n, bool)
            keep[ev] = True
            need[~keep] = np.nan
            departure[~keep] = np.nan
        return InitialState(
            device_ids=np.asarray(state.device_ids, dtype=object),
            soc=np.asarray(state.soc, dtype=np.float64).copy(),
            e_need_kwh=need,
            arrival_ts=np.full(n, np.nan),
            departure_ts=departure,
            temp_c=temp,
        )

    @staticmethod
    def empty() -> InitialState:
        """No state known: every device at its defaults."""
        z = np.zeros(0)
        return InitialState(np.zeros(0, dtype=object), z, z, z, z, z)
