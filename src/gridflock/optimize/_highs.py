"""One LP through HiGHS: arrays in, arrays out (the only module that touches highspy)."""

from __future__ import annotations

import highspy
import numpy as np

from gridflock.domain.messages import FloatArray
from gridflock.optimize._lp import LP

__all__ = ["run"]


def run(lp: LP, *, time_limit_s: float | None = None) -> tuple[str, FloatArray, float]:
    """Solve ``lp``; returns (status, x, objective with offset).

    An LP with grid caps is solved twice in one HiGHS instance: first with the caps'
    flow variables free (the sites then decouple and the dual simplex runs fast), then
    with their bounds tightened, hot-started from that optimal basis: the dual simplex
    only repairs the broken caps, many times faster than a cold start.
    """
    n_col, n_row = len(lp.cost), len(lp.row_lo)
    if n_col == 0:
        return "optimal", np.zeros(0), float(lp.offset)
    h = highspy.Highs()
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
    h.passModel(
        n_col,
        n_row,
        int(a.nnz),
        1,  # column-wise
        1,  # minimise
        float(lp.offset),
        lp.cost,
        lb,
        ub,
        lp.row_lo,
        lp.row_hi,
        a.indptr.astype(np.int32),
        a.indices.astype(np.int32),
        a.data,
        np.zeros(n_col, dtype=np.int32),  # continuous
    )
    h.run()
    if relax and h.getModelStatus() == highspy.HighsModelStatus.kOptimal:
        cols = lp.cap_cols.astype(np.int32)
        h.changeColsBounds(len(cols), cols, lp.lb[lp.cap_cols], lp.ub[lp.cap_cols])
        h.run()
    status = h.getModelStatus()
    if status == highspy.HighsModelStatus.kOptimal:
        x = np.asarray(h.getSolution().col_value, dtype=np.float64)
        return "optimal", x, float(h.getInfo().objective_function_value)
    if status in (
        highspy.HighsModelStatus.kInfeasible,
        highspy.HighsModelStatus.kUnboundedOrInfeasible,
    ):
        return "infeasible", np.zeros(n_col), float("nan")
    return h.modelStatusToString(status).lower(), np.zeros(n_col), float("nan")
