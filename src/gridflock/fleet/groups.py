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

__all__ = ["GroupIndex", "NodeGroups"]


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
    """Each device's site and its chain of grid nodes, one :class:`GroupIndex` per level.

    Level ``k`` groups devices by their site's k-th node up the tree (the feeder, then its
    transformer...); devices with no node at a level fall in an extra, unlimited group.
    """

    site: GroupIndex
    levels: tuple[GroupIndex, ...]

    @staticmethod
    def build(
        site_idx: IntArray, site_node: IntArray, ancestors: IntArray, n_sites: int, n_nodes: int
    ) -> NodeGroups:
        """Plan the sums for a device layout."""
        anc = ancestors[site_node[site_idx]]
        levels = tuple(
            GroupIndex.of(np.where(anc[:, k] >= 0, anc[:, k], n_nodes), n_nodes + 1)
            for k in range(anc.shape[1])
        )
        return NodeGroups(GroupIndex.of(site_idx, n_sites), levels)
