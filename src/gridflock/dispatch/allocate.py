"""The allocator: a fleet target in kW becomes per-device changes within every limit.

Method, in two vectorised passes:

1. **Limits as headroom.** Each device's sustainable headroom (from
   :mod:`gridflock.fleet.flexibility`) is scaled down, site by site and then grid
   node by grid node from the feeders up, wherever the group's total headroom exceeds
   what that connection or node can still carry in the requested direction. After
   this pass *any* allocation with ``0 <= delta <= headroom`` respects every device,
   site and node limit, and the total headroom is exactly the most the scope can
   deliver (the nested minimum of the limits).
2. **Spreading.** By default every device gives the same fraction of its (limited)
   headroom, so the target is met exactly when it is within reach. With a merit order
   the cheapest devices are used up first, ties sharing equally.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridflock.domain.messages import BoolArray, FloatArray, IntArray
from gridflock.fleet.groups import GroupIndex, NodeGroups
from gridflock.fleet.state import GridTopology

__all__ = ["Allocation", "allocate", "limit_headroom"]


@dataclass(frozen=True)
class Allocation:
    """Result of one allocation.

    ``delta_kw`` is each device's change from its baseline [kW], signed with the
    generator convention (> 0 for an "up" request, < 0 for "down").
    """

    delta_kw: FloatArray
    requested_kw: float
    available_kw: float
    allocated_kw: float

    @property
    def shortfall_kw(self) -> float:
        """What the scope could not deliver [kW, >= 0]."""
        return max(abs(self.requested_kw) - abs(self.allocated_kw), 0.0)

    @property
    def met(self) -> bool:
        """Whether the whole request is allocated (to 1 W)."""
        return self.shortfall_kw < 1e-3


def limit_headroom(
    headroom: FloatArray,
    site_idx: IntArray | NodeGroups,
    grid: GridTopology,
    site_p_kw: FloatArray,
    node_p_kw: FloatArray,
    up: bool,
) -> FloatArray:
    """Scale device headroom so no site connection or grid node limit can be exceeded.

    ``site_p_kw`` and ``node_p_kw`` are the present net flows [kW, generator sign] the
    limits apply to; an "up" request moves them towards the export limits, "down"
    towards the import limits.
    """
    if up:
        site_cap = np.maximum(grid.site_export_limit_kw - site_p_kw, 0.0)
        node_cap = np.maximum(grid.limit_export_kw - node_p_kw, 0.0)
    else:
        site_cap = np.maximum(grid.site_import_limit_kw + site_p_kw, 0.0)
        node_cap = np.maximum(grid.limit_import_kw + node_p_kw, 0.0)
    groups = (
        site_idx
        if isinstance(site_idx, NodeGroups)
        else NodeGroups.build(site_idx, grid.site_node, grid.ancestors, grid.n_sites, grid.n_nodes)
    )
    h = _scale_to_caps(headroom, groups.site, site_cap)
    capped = np.append(node_cap, np.inf)  # the extra group (no node at that level) is unlimited
    for level in groups.levels:
        h = _scale_to_caps(h, level, capped)
    return h


def _scale_to_caps(h: FloatArray, group: GroupIndex, cap: FloatArray) -> FloatArray:
    total = group.sum(h)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        scale = np.where(total > cap, cap / total, 1.0)
    out: FloatArray = h * scale[group.codes]
    return out


def allocate(
    headroom: FloatArray,
    target_kw: float,
    *,
    mask: BoolArray | None = None,
    cost: FloatArray | None = None,
) -> Allocation:
    """Spread ``target_kw`` over devices with ``headroom`` [kW, >= 0, already limited].

    ``target_kw > 0`` asks for up, ``< 0`` for down (``headroom`` must be the headroom in
    that direction). ``mask`` restricts the scope; ``cost`` (per kWh) switches from equal
    fractions to a merit order.
    """
    if not np.isfinite(target_kw):
        raise ValueError(f"target_kw must be a finite number of kW, got {target_kw}")
    h = np.where(mask, headroom, 0.0) if mask is not None else headroom
    h = np.maximum(np.nan_to_num(h, nan=0.0), 0.0)
    want = abs(float(target_kw))
    available = float(h.sum())
    if cost is None:
        frac = min(want / available, 1.0) if available > 1e-12 else 0.0
        delta = h * frac
    else:
        delta = _merit_order(h, want, cost)
    sign = 1.0 if target_kw >= 0 else -1.0
    return Allocation(sign * delta, float(target_kw), sign * available, sign * float(delta.sum()))


def _merit_order(h: FloatArray, want: float, cost: FloatArray) -> FloatArray:
    """Fill cost levels cheapest first; the marginal level shares equally."""
    levels, inv = np.unique(np.nan_to_num(cost, nan=np.inf), return_inverse=True)
    per_level = np.bincount(inv, weights=h, minlength=len(levels))
    before = np.concatenate(([0.0], np.cumsum(per_level)[:-1]))
    remaining = np.clip(want - before, 0.0, None)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        frac = np.where(per_level > 1e-12, np.minimum(remaining / per_level, 1.0), 0.0)
    return h * frac[inv]
