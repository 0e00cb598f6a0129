"""The result of planning: setpoints, state trajectories, site and node flows, costs."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gridflock.domain.errors import GridflockError, InfeasibleError, Problem
from gridflock.domain.messages import FloatArray, IntArray, StrArray

__all__ = ["Objective", "Plan", "PlanInfeasibleError", "PlanTimeoutError"]


class PlanInfeasibleError(InfeasibleError):
    """No plan keeps every rule: ``problems`` names each site or device and the rule broken."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        shown = "\n".join(f"  - {p}" for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"no feasible plan: {len(problems)} problem(s):\n{shown}{more}")


class PlanTimeoutError(GridflockError):
    """An LP of the plan did not finish within the time limit given to ``solve``.

    Says how many sites the LP held and which caps coupled them: a hard cap high in the
    grid tree (or on the whole fleet) makes one large LP; loosen it or plan a shorter
    horizon.
    """


@dataclass(frozen=True)
class Objective:
    """The plan's cost over the horizon, broken down [EUR].

    ``total = energy_cost + peak_charge + wear_cost + curtailment_cost - support_value``,
    the LP's objective. ``energy_cost`` is imports at the import price less exports at
    the export price; ``support_value`` is what the support windows earn, net of
    penalties for kWh short.
    """

    energy_cost: float
    peak_charge: float
    support_value: float
    wear_cost: float
    curtailment_cost: float

    @property
    def total(self) -> float:
        """The objective minimised [EUR]."""
        return (
            self.energy_cost
            + self.peak_charge
            + self.wear_cost
            + self.curtailment_cost
            - self.support_value
        )


@dataclass(frozen=True)
class Plan:
    """An optimal plan over ``n_steps`` steps of ``step_h`` hours from ``start_ts``.

    ``p_kw[i, t]`` is device ``device_ids[i]``'s setpoint in step ``t`` [kW, generator
    sign: discharge and PV > 0, charging and loads < 0]; trajectories have one more
    column than steps (the value at the start of every step, then at the end):
    ``soc`` per battery (``battery_rows`` into ``device_ids``), ``ev_kwh`` the energy
    delivered into each car so far, ``temp_c`` per thermal device. ``site_net_kw`` is
    each site's net power [generator sign; net import = -site_net_kw], ``node_flow_kw``
    each grid node's (sum over the sites below it). Sites in ``infeasible`` (only with
    ``skip_infeasible``) have NaN rows.
    """

    start_ts: float
    step_h: float
    device_ids: StrArray
    device_kinds: StrArray
    site_ids: StrArray
    node_ids: StrArray
    p_kw: FloatArray
    curtailed_kw: FloatArray  #: (n_devices, n_steps), > 0 where PV or wind is turned down
    battery_rows: IntArray
    soc: FloatArray
    ev_rows: IntArray
    ev_kwh: FloatArray
    thermal_rows: IntArray
    temp_c: FloatArray
    site_net_kw: FloatArray
    node_flow_kw: FloatArray
    support_kw: FloatArray  #: (n_windows, n_steps), delivered kW (NaN outside the window)
    objective: Objective
    status: str
    timings_s: dict[str, float] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)
    infeasible: tuple[Problem, ...] = ()
    #: what the plan had to give way on (``PlanProblem.notes``), e.g. a house planned at
    #: its pump's utmost where no power keeps it in its comfort band
    warnings: tuple[Problem, ...] = ()

    @property
    def n_steps(self) -> int:
        """Number of steps."""
        return int(self.p_kw.shape[1])

    @property
    def step_ts(self) -> FloatArray:
        """Start of every step [UTC epoch s]."""
        out: FloatArray = self.start_ts + np.arange(self.n_steps, dtype=np.float64) * (
            self.step_h * 3600.0
        )
        return out

    def kind_totals_kw(self) -> dict[str, FloatArray]:
        """Fleet power by device kind per step [kW, generator sign]."""
        out: dict[str, FloatArray] = {}
        for kind in np.unique(self.device_kinds):
            out[str(kind)] = np.nansum(self.p_kw[self.device_kinds == kind], axis=0)
        return out

    def to_frame(self) -> pd.DataFrame:
        """Long table: one row per device and step (ts, device_id, kind, p_kw)."""
        n, t = self.p_kw.shape
        ts = pd.to_datetime(np.tile(self.step_ts, n), unit="s", utc=True)
        return pd.DataFrame(
            {
                "ts": ts,
                "device_id": np.repeat(self.device_ids, t),
                "kind": np.repeat(self.device_kinds, t),
                "p_kw": self.p_kw.reshape(-1),
            }
        )
