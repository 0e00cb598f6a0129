"""Where a thermal device can keep its temperature: the exact reachable interval, forward."""

from __future__ import annotations

import numpy as np

from gridflock.domain.messages import BoolArray, FloatArray, IntArray
from gridflock.optimize.problem import PlanProblem

__all__ = ["thermal_reach"]


def thermal_reach(pb: PlanProblem) -> tuple[BoolArray, IntArray, FloatArray, FloatArray]:
    """Where each thermal device's temperature can be kept, step by step (exact).

    Forward pass of the reachable interval under the exact step, each step clamped to
    the allowed bounds. Returns (leaves bounds at some step, first such step, and the
    bounds at best effort (n, n_steps): the allowed ones, widened where no power keeps
    them to what the device's utmost gives).
    """
    th = pb.thermal
    t_lo, t_hi = th.bounds()
    n = len(th)
    lo, hi = th.t0_c.copy(), th.t0_c.copy()
    dead = np.zeros(n, bool)
    first = np.full(n, -1, np.int64)
    floor, ceil = t_lo.copy(), t_hi.copy()
    for t in range(pb.n_steps):
        k = th.heat_per_kw[:, t]
        q_lo = np.minimum(k * th.p_max_kw, 0.0) + th.q_free_kw[:, t]
        q_hi = np.maximum(k * th.p_max_kw, 0.0) + th.q_free_kw[:, t]
        free = (1.0 - th.a) * th.t_env_c[:, t]
        new_lo = th.a * lo + free + th.b * q_lo
        new_hi = th.a * hi + free + th.b * q_hi
        bad = (new_lo > t_hi[:, t] + 1e-9) | (new_hi < t_lo[:, t] - 1e-9)
        first[bad & ~dead] = t
        dead |= bad
        ceil[:, t] = np.maximum(t_hi[:, t], new_lo)
        floor[:, t] = np.minimum(t_lo[:, t], new_hi)
        lo = np.maximum(new_lo, floor[:, t])
        hi = np.minimum(new_hi, ceil[:, t])
    return dead, first, floor, ceil
