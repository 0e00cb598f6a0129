"""Solve a :class:`PlanProblem` exactly: independent site blocks, coupling where it binds."""

from __future__ import annotations

from gridflock.optimize.plan import Plan
from gridflock.optimize.problem import PlanProblem

__all__ = ["solve", "solve_monolithic"]


def solve(
    problem: PlanProblem,
    *,
    chunk_sites: int = 64,
    threads: int = 2,
    skip_infeasible: bool = False,
    tol_kw: float = 1e-6,
) -> Plan:
    """The optimal plan of ``problem``.

    Sites are solved as independent LPs, ``chunk_sites`` to one HiGHS model, on
    ``threads`` threads; a grid-node or fleet cap that the plans break (by more than
    ``tol_kw``) joins the sites below it into one LP with that cap, until none is broken:
    the result is the optimum of the whole coupled problem. Raises
    :class:`~gridflock.optimize.plan.PlanInfeasibleError` naming every site, device or
    node and the rule that cannot be kept, unless ``skip_infeasible`` (those sites then
    get NaN rows and are listed in ``Plan.infeasible``).
    """
    raise NotImplementedError


def solve_monolithic(problem: PlanProblem) -> Plan:
    """The optimal plan of ``problem`` as one LP with every coupling constraint.

    The reference :func:`solve` is checked against on small fleets; slow on large ones.
    """
    raise NotImplementedError
