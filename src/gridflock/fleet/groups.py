"""Sums over groups of devices (sites, grid nodes, kinds), fast on the fleet's layout.

The fleet state stores devices kind by kind and, within a kind, site by site, so group
codes come in long runs of equal values. A weighted ``np.bincount`` slows down about 3x on
such runs (each add waits for the previous one to the same bin); summing each run with
``np.add.reduceat`` first and then binning the run totals avoids that. The run plan
depends only on the layout, so it is computed once per fleet and reused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridflock.domain.messages import FloatArray, IntArray

__all__ = ["GroupIndex", "MeritPlan", "NodeGroups"]


@dataclass(frozen=True)
class GroupIndex:
    """Which of ``size`` groups each device belongs to, with a plan for summing."""

    codes: IntArray
    size: int
    starts: IntArray | None  # run starts, when runs are long enough to pay off
    run_codes: IntArray | None

    @staticmethod
    def of(codes: IntArray, size: int) -> GroupIndex:
        """Index ``codes`` (each in ``0..size-1``)."""
        codes = np.asarray(codes, dtype=np.int64)
        if len(codes) == 0:
            return GroupIndex(codes, size, None, None)
        starts = np.flatnonzero(np.concatenate(([True], codes[1:] != codes[:-1])))
        if len(starts) > len(codes) // 4:  # short runs: plain binning is as fast
            return GroupIndex(codes, size, None, None)
        return GroupIndex(codes, size, starts, codes[starts])

    def sum(self, values: FloatArray) -> FloatArray:
        """Per-group sums of a per-device array."""
        if self.starts is None or self.run_codes is None:
            out = np.bincount(self.codes, weights=values, minlength=self.size)
        else:
            runs = np.add.reduceat(values, self.starts)
            out = np.bincount(self.run_codes, weights=runs, minlength=self.size)
        return np.asarray(out, dtype=np.float64)

    def counts(self) -> IntArray:
        """Devices per group."""
        return np.asarray(np.bincount(self.codes, minlength=self.size), dtype=np.int64)


@dataclass(frozen=True)
class NodeGroups:
    """Each device's site and the grid nodes above it, one :class:`GroupIndex` per depth.

    ``levels[0]`` groups devices by their ancestor at the *deepest* level of the tree,
    the last entry by the root. Grouping by depth from the root, not by distance from the
    site, matters when sites hang at different depths: a transformer then meets every
    device below it in one group, whether their site is on one of its feeders or on the
    transformer itself. Devices with no node at a depth fall in an extra, unlimited group
    (code ``n_nodes``).
    """

    site: GroupIndex
    levels: tuple[GroupIndex, ...]
    site_levels: tuple[GroupIndex, ...] = ()  # the same levels over sites (one row a site)

    @staticmethod
    def build(
        site_idx: IntArray, site_node: IntArray, ancestors: IntArray, n_sites: int, n_nodes: int
    ) -> NodeGroups:
        """Plan the sums for a device layout (``ancestors`` as in ``GridTopology``)."""
        site_idx = np.asarray(site_idx, dtype=np.int64)
        by_site = _depth_levels(np.asarray(site_node, dtype=np.int64), ancestors, n_nodes)
        by_device = tuple(GroupIndex.of(level.codes[site_idx], n_nodes + 1) for level in by_site)
        return NodeGroups(GroupIndex.of(site_idx, n_sites), by_device, by_site)


def _depth_levels(row_node: IntArray, ancestors: IntArray, n_nodes: int) -> tuple[GroupIndex, ...]:
    """For rows under ``row_node``, their ancestor at each depth, deepest first."""
    node_depth = (ancestors >= 0).sum(axis=1) - 1
    depth = node_depth[row_node]
    anc = ancestors[row_node]
    rows = np.arange(len(row_node))
    levels = []
    for d in range(ancestors.shape[1] - 1, -1, -1):
        col = depth - d
        code = np.where(col >= 0, anc[rows, np.maximum(col, 0)], n_nodes)
        levels.append(GroupIndex.of(code, n_nodes + 1))
    return tuple(levels)


@dataclass(frozen=True)
class MeritPlan:
    """Cost orders for a least-cost allocation, planned once per fleet layout and cost.

    One entry per level (the site level, each node level deepest first, then the whole
    fleet as one group): ``perm`` lists the devices grouped by that level's group and,
    within a group, cheapest first (ties by position); ``pos`` is each device's place in
    ``perm``; ``codes`` the group of each place; ``start`` each group's first place.
    """

    perm: tuple[IntArray, ...]
    pos: tuple[IntArray, ...]
    codes: tuple[IntArray, ...]
    start: tuple[IntArray, ...]

    @staticmethod
    def build(groups: NodeGroups, cost: FloatArray) -> MeritPlan:
        """Order devices by (group, cost) for every level of ``groups``."""
        cost = np.nan_to_num(np.asarray(cost, dtype=np.float64), nan=np.inf)
        n = len(cost)
        rank = np.empty(n, np.int64)
        rank[np.argsort(cost, kind="stable")] = np.arange(n)
        whole = GroupIndex(np.zeros(n, np.int64), 1, None, None)
        perms, poss, codes, starts = [], [], [], []
        for g in (groups.site, *groups.levels, whole):
            perm = np.lexsort((rank, g.codes))
            pos = np.empty_like(perm)
            pos[perm] = np.arange(n)
            counts = np.bincount(g.codes, minlength=g.size)
            perms.append(perm)
            poss.append(pos)
            codes.append(g.codes[perm])
            starts.append(np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64))
        return MeritPlan(tuple(perms), tuple(poss), tuple(codes), tuple(starts))
