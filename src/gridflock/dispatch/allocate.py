"""The allocator: a fleet target in kW becomes per-device changes within every limit.

The problem, for one direction: devices ``i`` with headroom ``h_i >= 0`` [kW], each at a
site, each site under a chain of grid nodes (a tree; sites may hang at any depth). Every
site and node has a remaining capacity ``c`` [kW] in that direction. Find ``x`` with
``0 <= x_i <= h_i`` and ``sum(x over the devices below a site or node) <= c`` for every
site and node, delivering ``min(target, most feasible)``. The caps form a laminar family,
so the exact answers come from simple passes up the tree (each pass a vectorised sum over
one level, deepest nodes first), checked against an exact LP in the tests:

* **Most deliverable.** A site or node can pass on ``min(c, what its children can
  pass)``; scaling each device's headroom by ``min(1, c / total)`` at every site, then
  node level bottom-up, gives *effective headroom* ``a_i`` whose sum is that optimum and
  any ``0 <= x <= a`` respects every cap.
* **Fair rule** (default). Every device gives the same fraction ``f = min(1, target /
  sum(a))`` of its effective headroom: within a binding site or node, the devices below it
  share its capacity in proportion to what they could give.
* **Merit order** (with costs per kWh). Greedy is optimal on a laminar (polymatroid)
  family: at every site and node, bottom-up, keep the cheapest kW up to its capacity;
  then take the cheapest kW of what is left up to the target. The result is the
  least-cost allocation of the largest feasible amount; ties are broken by position.

Devices outside the scope, held by another event, offline or excluded have their
headroom set to zero *before* the caps are applied, so they take no share of a cap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridflock.domain.messages import BoolArray, FloatArray, IntArray
from gridflock.fleet.groups import GroupIndex, MeritPlan, NodeGroups
from gridflock.fleet.state import GridTopology

__all__ = ["Allocation", "GridCaps", "allocate", "grid_caps", "limit_headroom"]


@dataclass(frozen=True)
class Allocation:
    """Result of one allocation.

    ``delta_kw`` is each device's change from its baseline [kW], signed with the
    generator convention (> 0 for an "up" request, < 0 for "down"); ``available_kw`` is
    the most the scope could deliver within every limit, with the request's sign.
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


@dataclass(frozen=True)
class GridCaps:
    """Remaining capacity in one direction [kW, >= 0] of every site and grid node."""

    site_kw: FloatArray
    node_kw: FloatArray


def grid_caps(
    grid: GridTopology, site_p_kw: FloatArray, node_p_kw: FloatArray, up: bool
) -> GridCaps:
    """What each site connection and node can still carry from the flows it has now.

    ``site_p_kw`` and ``node_p_kw`` are net flows [kW, generator sign]; an "up" request
    moves them towards the export limits, "down" towards the import limits. A flow
    already past its limit leaves a capacity of zero, never a negative one.
    """
    if up:
        site = grid.site_export_limit_kw - site_p_kw
        node = grid.limit_export_kw - node_p_kw
    else:
        site = grid.site_import_limit_kw + site_p_kw
        node = grid.limit_import_kw + node_p_kw
    return GridCaps(
        np.maximum(np.nan_to_num(site, nan=0.0, posinf=np.inf), 0.0),
        np.maximum(np.nan_to_num(node, nan=0.0, posinf=np.inf), 0.0),
    )


def limit_headroom(
    headroom: FloatArray,
    site_idx: IntArray | NodeGroups,
    grid: GridTopology,
    site_p_kw: FloatArray,
    node_p_kw: FloatArray,
    up: bool,
    mask: BoolArray | None = None,
) -> FloatArray:
    """Effective headroom [kW]: any ``0 <= x <= result`` keeps every site and node limit.

    Its sum is the most the devices (those in ``mask``, if given) can deliver together.
    """
    groups = (
        site_idx
        if isinstance(site_idx, NodeGroups)
        else NodeGroups.build(site_idx, grid.site_node, grid.ancestors, grid.n_sites, grid.n_nodes)
    )
    h = _clean(headroom, mask)
    factor, _ = _limit_fair(h, groups, grid_caps(grid, site_p_kw, node_p_kw, up))
    out: FloatArray = h * factor[groups.site.codes]
    return out


def allocate(
    headroom: FloatArray,
    target_kw: float,
    *,
    mask: BoolArray | None = None,
    cost: FloatArray | None = None,
    groups: NodeGroups | None = None,
    caps: GridCaps | None = None,
    plan: MeritPlan | None = None,
) -> Allocation:
    """Spread ``target_kw`` over devices with ``headroom`` [kW, >= 0] in its direction.

    ``target_kw > 0`` asks for up, ``< 0`` for down. ``mask`` restricts the devices;
    ``groups`` and ``caps`` add the site and grid-node limits; ``cost`` (per kWh) switches
    from the fair rule to the least-cost merit order, with ``plan`` the cost order planned
    once for the fleet (``MeritPlan.build(groups, cost)``), built here when not given.
    """
    if not np.isfinite(target_kw):
        raise ValueError(f"target_kw must be a finite number of kW, got {target_kw}")
    if caps is not None and groups is None:
        raise ValueError("grid caps need the fleet's node groups")
    h = _clean(headroom, mask)
    want = abs(float(target_kw))
    if cost is None:
        if caps is not None and groups is not None:
            factor, available = _limit_fair(h, groups, caps)
            frac = min(want / available, 1.0) if available > 1e-12 else 0.0
            delta = h * (factor * frac)[groups.site.codes]
        else:
            available = float(h.sum())
            frac = min(want / available, 1.0) if available > 1e-12 else 0.0
            delta = h * frac
    else:
        if groups is None:
            groups = NodeGroups(GroupIndex(np.zeros(len(h), np.int64), 1, None, None), ())
            caps = GridCaps(np.array([np.inf]), np.zeros(0))
        if plan is None:
            plan = MeritPlan.build(groups, cost)
        a = _limit_merit(h, groups, caps, plan)
        available = float(a.sum())
        delta = _keep_cheapest(a, np.array([want]), len(plan.perm) - 1, plan)
    sign = 1.0 if target_kw >= 0 else -1.0
    return Allocation(sign * delta, float(target_kw), sign * available, sign * float(delta.sum()))


def _clean(headroom: FloatArray, mask: BoolArray | None) -> FloatArray:
    """Headroom with NaN, infinite, negative and masked-out entries at zero."""
    headroom = np.asarray(headroom, dtype=np.float64)
    ok = (headroom > 0.0) & (headroom < np.inf)  # NaN compares False
    if mask is not None:
        ok &= mask
    h: FloatArray = np.where(ok, headroom, 0.0)
    return h


def _level_caps(groups: NodeGroups, caps: GridCaps) -> list[tuple[GroupIndex, FloatArray]]:
    """Each level's groups with their capacities (the extra no-node group is unlimited)."""
    node = np.append(caps.node_kw, np.inf)
    return [(groups.site, caps.site_kw)] + [(level, node) for level in groups.levels]


def _limit_fair(h: FloatArray, groups: NodeGroups, caps: GridCaps) -> tuple[FloatArray, float]:
    """Per-site factor that scales headroom within every binding site and node, bottom-up.

    Returns the factor (``h * factor[site]`` is the effective headroom) and the sum of
    the effective headroom. One device-level sum (per site); the node levels then work on
    site totals, since scaling inside a site keeps its total at ``min(cap, total)``.
    """
    total = groups.site.sum(h)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        factor = np.where(total > caps.site_kw, caps.site_kw / total, 1.0)
    t = total * factor
    site_levels = groups.site_levels or _site_levels_of(groups, len(total))
    for level in site_levels:
        scale = _scale(level.sum(t), caps.node_kw)
        if (scale < 1.0).any():
            f = scale[level.codes]
            t = t * f
            factor = factor * f
    return factor, float(t.sum())


def _site_levels_of(groups: NodeGroups, n_sites: int) -> tuple[GroupIndex, ...]:
    """Node levels over sites, recovered from a per-device plan (any device of a site)."""
    first = np.zeros(n_sites, np.int64)
    first[groups.site.codes[::-1]] = np.arange(len(groups.site.codes))[::-1]
    return tuple(GroupIndex.of(level.codes[first], level.size) for level in groups.levels)


def _scale(total: FloatArray, node_cap: FloatArray) -> FloatArray:
    """Per node group, the factor that brings its total within its cap (extra group: 1)."""
    cap = np.append(node_cap, np.inf)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out: FloatArray = np.where(total > cap, cap / total, 1.0)
    return out


def _limit_merit(
    h: FloatArray, groups: NodeGroups, caps: GridCaps | None, plan: MeritPlan
) -> FloatArray:
    """Keep, at every binding site and node bottom-up, only its cheapest kW up to its cap."""
    if caps is None:
        return h
    for k, (group, cap) in enumerate(_level_caps(groups, caps)):
        if (group.sum(h) > cap).any():
            h = _keep_cheapest(h, cap, k, plan)
    return h


def _keep_cheapest(a: FloatArray, cap: FloatArray, level: int, plan: MeritPlan) -> FloatArray:
    """Within each group of ``level``, the cheapest-first prefix of ``a`` up to ``cap``.

    A running sum in (group, cost) order tells each device how much cheaper devices of
    its group already take; it keeps what is left of the group's cap, up to its own.
    """
    perm, pos, codes, start = (
        plan.perm[level],
        plan.pos[level],
        plan.codes[level],
        plan.start[level],
    )
    s = a[perm]
    run = np.cumsum(s)
    before = run - s  # everything earlier in the order, all groups
    group_before = np.concatenate(([0.0], run))[start]  # earlier groups only
    room = (group_before + cap)[codes] - before
    kept: FloatArray = np.clip(room, 0.0, s)[pos]
    return kept
