"""One LP through HiGHS: arrays in, arrays out (the only module that touches highspy)."""

from __future__ import annotations

import highspy
import numpy as np
import numpy.typing as npt

from gridflock.domain.messages import FloatArray
from gridflock.optimize._lp import LP

__all__ = ["BASIC", "LOWER", "UPPER", "run"]

#: HiGHS basis statuses as small integers (``highspy.HighsBasisStatus`` values).
LOWER, BASIC, UPPER = 0, 1, 2
_STATUS = np.array([highspy.HighsBasisStatus(i) for i in range(5)], dtype=object)

Basis = tuple[npt.NDArray[np.int8], npt.NDArray[np.int8]]


def run(
    lp: LP,
    *,
    basis: Basis | None = None,
    perturb: FloatArray | None = None,
    want_basis: bool = False,
    time_limit_s: float | None = None,
) -> tuple[str, FloatArray, float, Basis | None]:
    """Solve ``lp``; returns (status, x, objective with offset, optimal basis if wanted).

    ``basis`` (column and row statuses) starts the simplex from there: a basis that is
    optimal for a similar site cuts the iterations several-fold, and any basis still
    ends at the same optimum. ``perturb`` is added to the costs for a first solve that
    picks among tied optima (tiny, site-specific costs spread tied choices, such as which
    of several equally cheap night steps to charge in, across sites); the costs are then
    restored and the simplex continues from that basis to the exact optimum.

    An LP with grid caps is solved twice in one HiGHS instance: first with the caps'
    flow variables free (the sites then decouple and the dual simplex runs fast), then
    with their bounds tightened, hot-started from that optimal basis: the dual simplex
    only repairs the broken caps, many times faster than a cold start.
    """
    n_col, n_row = len(lp.cost), len(lp.row_lo)
    if n_col == 0:
        return "optimal", np.zeros(0), float(lp.offset), None
    h = highspy.Highs()  # type: ignore[no-untyped-call,unused-ignore]
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    h.setOptionValue("presolve", "off")
    if time_limit_s is not None:
        h.setOptionValue("time_limit", float(time_limit_s))
    a = lp.a
    relax = len(lp.cap_cols) > 0
    lb, ub = lp.lb, lp.ub
    if relax:
        lb, ub = lb.copy(), ub.copy()
        lb[lp.cap_cols] = -np.inf
        ub[lp.cap_cols] = np.inf
    cost = lp.cost if perturb is None else lp.cost + perturb
    h.passModel(
        n_col,
        n_row,
        int(a.nnz),
        1,  # column-wise
        1,  # minimise
        float(lp.offset),
        cost,
        lb,
        ub,
        lp.row_lo,
        lp.row_hi,
        a.indptr.astype(np.int32),
        a.indices.astype(np.int32),
        a.data,
        np.zeros(n_col, dtype=np.int32),  # continuous
    )
    if basis is not None:
        hb = highspy.HighsBasis()
        hb.col_status = _STATUS[basis[0]].tolist()
        hb.row_status = _STATUS[basis[1]].tolist()
        hb.valid = True
        h.setBasis(hb)
    h.run()
    if relax and h.getModelStatus() == highspy.HighsModelStatus.kOptimal:
        cols = lp.cap_cols.astype(np.int32)
        h.changeColsBounds(len(cols), cols, lp.lb[lp.cap_cols], lp.ub[lp.cap_cols])
        h.run()
    if perturb is not None and h.getModelStatus() == highspy.HighsModelStatus.kOptimal:
        cols = np.flatnonzero(perturb).astype(np.int32)
        h.changeColsCost(len(cols), cols, lp.cost[cols])
        h.run()
    status = h.getModelStatus()
    if status == highspy.HighsModelStatus.kOptimal:
        x = np.asarray(h.getSolution().col_value, dtype=np.float64)
        got = None
        if want_basis:
            hb = h.getBasis()
            got = (
                np.fromiter((int(v) for v in hb.col_status), np.int8, n_col),
                np.fromiter((int(v) for v in hb.row_status), np.int8, n_row),
            )
        return "optimal", x, float(h.getInfo().objective_function_value), got
    if status in (
        highspy.HighsModelStatus.kInfeasible,
        highspy.HighsModelStatus.kUnboundedOrInfeasible,
    ):
        return "infeasible", np.zeros(n_col), float("nan"), None
    return h.modelStatusToString(status).lower(), np.zeros(n_col), float("nan"), None
