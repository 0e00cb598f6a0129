"""Optimal day-ahead and intraday plans for the fleet, solved exactly as LPs with HiGHS.

Pure: no database, no clock (the start time is handed in). The public API:

- :func:`build_problem` a :class:`PlanProblem` from a fleet spec, forecasts
  (:class:`SiteForecasts`), the devices' :class:`InitialState`, a :class:`Tariff` and
  support windows (:class:`SupportWindow`);
- :func:`solve` the problem into a :class:`Plan` (per-device setpoints, trajectories,
  site and node flows, the :class:`Objective` broken down), exactly: sites are solved in
  independent blocks, and grid-node caps and support windows that couple sites are added
  where they bind (see ``docs/optimize.md``);
- :func:`solve_monolithic` the same problem as one LP (the reference for the
  decomposition, for small fleets).

See ``docs/optimize.md``.
"""

from gridflock.optimize.build import build_problem
from gridflock.optimize.inputs import InitialState, SiteForecasts, pick_quantile
from gridflock.optimize.plan import Objective, Plan, PlanInfeasibleError, PlanTimeoutError
from gridflock.optimize.problem import (
    STEP_H,
    Batteries,
    EVChargers,
    Grid,
    PlanProblem,
    Renewables,
    Sites,
    SupportWindow,
    Tariff,
    Thermal,
)
from gridflock.optimize.solve import solve, solve_monolithic

__all__ = [
    "STEP_H",
    "Batteries",
    "EVChargers",
    "Grid",
    "InitialState",
    "Objective",
    "Plan",
    "PlanInfeasibleError",
    "PlanProblem",
    "PlanTimeoutError",
    "Renewables",
    "SiteForecasts",
    "Sites",
    "SupportWindow",
    "Tariff",
    "Thermal",
    "build_problem",
    "pick_quantile",
    "solve",
    "solve_monolithic",
]
