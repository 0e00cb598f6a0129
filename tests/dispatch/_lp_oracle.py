"""An exact LP oracle for the allocator (HiGHS): random grid trees and their optima."""

from __future__ import annotations

from dataclasses import dataclass

import highspy
import numpy as np

from gridflock.fleet.groups import NodeGroups
from gridflock.fleet.state import GridTopology

INF = highspy.kHighsInf


@dataclass
class RandomFleet:
    """A grid tree with sites at mixed depths, devices, flows and costs."""

    grid: GridTopology
    site_idx: np.ndarray
    headroom: np.ndarray
    mask: np.ndarray
    cost: np.ndarray
    site_p: np.ndarray
    up: bool

    @property
    def groups(self) -> NodeGroups:
        g = self.grid
        return NodeGroups.build(self.site_idx, g.site_node, g.ancestors, g.n_sites, g.n_nodes)

    def members(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Devices below each site, and below each node (its whole subtree)."""
        g = self.grid
        sites = [np.flatnonzero(self.site_idx == s) for s in range(g.n_sites)]
        dev_node = g.site_node[self.site_idx]
        below = np.zeros((len(self.site_idx), g.n_nodes), bool)
        for k in range(g.ancestors.shape[1]):
            anc = g.ancestors[dev_node, k]
            ok = anc >= 0
            below[np.flatnonzero(ok), anc[ok]] = True
        return sites, [np.flatnonzero(below[:, j]) for j in range(g.n_nodes)]


def topology(parent: np.ndarray, node_cap: np.ndarray, site_node: np.ndarray, site_cap: np.ndarray):
    """A ``GridTopology`` straight from arrays (symmetric import/export caps)."""
    n_nodes, n_sites = len(parent), len(site_node)
    chain = [np.arange(n_nodes)]
    while True:
        prev = chain[-1]
        nxt = np.where(prev >= 0, parent[np.maximum(prev, 0)], -1)
        if (nxt < 0).all():
            break
        chain.append(nxt)
    obj = np.array([f"n{j}" for j in range(n_nodes)], dtype=object)
    sites = np.array([f"s{i}" for i in range(n_sites)], dtype=object)
    return GridTopology(
        node_ids=obj,
        node_kind=np.full(n_nodes, "feeder", dtype=object),
        limit_import_kw=node_cap.copy(),
        limit_export_kw=node_cap.copy(),
        ancestors=np.stack(chain, axis=1).astype(np.int64),
        site_ids=sites,
        site_node=site_node.astype(np.int64),
        site_import_limit_kw=site_cap.copy(),
        site_export_limit_kw=site_cap.copy(),
        site_opt_out=np.zeros(n_sites, bool),
        site_lat=np.zeros(n_sites),
        site_lon=np.zeros(n_sites),
        site_program=np.full(n_sites, "p", dtype=object),
        site_region=np.full(n_sites, "r", dtype=object),
    )


def random_fleet(rng: np.random.Generator) -> RandomFleet:
    """A small fleet with the awkward cases: mixed depths, zero ranges, binding caps."""
    n_nodes = int(rng.integers(1, 9))
    parent = np.array([-1] + [int(rng.integers(-1, j)) if j else -1 for j in range(1, n_nodes)])
    parent[0] = -1
    node_cap = rng.choice([np.inf, 5.0, 12.0, 30.0, 80.0], n_nodes) * rng.uniform(0.5, 1.5, n_nodes)
    node_cap[rng.random(n_nodes) < 0.15] = 0.0
    n_sites = int(rng.integers(1, 12))
    site_node = rng.integers(0, n_nodes, n_sites)
    site_cap = rng.choice([np.inf, 4.0, 10.0, 25.0], n_sites) * rng.uniform(0.5, 1.5, n_sites)
    n_dev = int(rng.integers(0, 30))
    site_idx = rng.integers(0, n_sites, n_dev)
    headroom = rng.uniform(0, 12, n_dev) * (rng.random(n_dev) > 0.15)
    mask = rng.random(n_dev) > 0.25
    cost = rng.choice([0.05, 0.1, 0.2, 0.3], n_dev) + rng.choice([0.0, 0.01], n_dev)
    site_p = rng.uniform(-6, 6, n_sites)
    grid = topology(parent, node_cap, site_node, site_cap)
    return RandomFleet(grid, site_idx, headroom, mask, cost, site_p, bool(rng.random() < 0.5))


def lp_optimum(
    headroom: np.ndarray,
    site_members: list[np.ndarray],
    site_cap: np.ndarray,
    node_members: list[np.ndarray],
    node_cap: np.ndarray,
    cost: np.ndarray,
    target: float,
) -> tuple[float, float]:
    """Most deliverable kW up to ``target``, and the least cost of delivering it."""
    rows = [(m, c) for m, c in zip(site_members, site_cap, strict=True) if len(m)]
    rows += [(m, c) for m, c in zip(node_members, node_cap, strict=True) if len(m)]
    n = len(headroom)
    if n == 0:
        return 0.0, 0.0
    best = _solve(headroom, rows, np.ones(n), -1.0, (0.0, target))
    if best <= 0.0:
        return 0.0, 0.0
    least = _solve(headroom, rows, cost, 1.0, (best, best))
    return best, least


def _solve(
    headroom: np.ndarray,
    rows: list[tuple[np.ndarray, float]],
    obj: np.ndarray,
    sense: float,
    total: tuple[float, float],
) -> float:
    n = len(headroom)
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("primal_feasibility_tolerance", 1e-9)
    lp = highspy.HighsLp()
    lp.num_col_ = n
    all_rows = [*rows, (np.arange(n), total)]
    lp.num_row_ = len(all_rows)
    lp.col_cost_ = np.asarray(sense * obj, dtype=np.float64)
    lp.col_lower_ = np.zeros(n)
    lp.col_upper_ = np.asarray(headroom, dtype=np.float64)
    lower, upper, start, index = [], [], [0], []
    for members, cap in all_rows:
        lo, hi = cap if isinstance(cap, tuple) else (-INF, cap)
        lower.append(lo)
        upper.append(INF if not np.isfinite(hi) else hi)
        index.extend(int(i) for i in members)
        start.append(len(index))
    lp.row_lower_ = np.array(lower, dtype=np.float64)
    lp.row_upper_ = np.array(upper, dtype=np.float64)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = np.array(start, dtype=np.int32)
    lp.a_matrix_.index_ = np.array(index, dtype=np.int32)
    lp.a_matrix_.value_ = np.ones(len(index))
    h.passModel(lp)
    h.run()
    assert h.getModelStatus() == highspy.HighsModelStatus.kOptimal, h.modelStatusToString(
        h.getModelStatus()
    )
    return float(sense * h.getInfo().objective_function_value)
