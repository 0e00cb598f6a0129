"""Operating envelopes applied to a fleet's grid: effective site and node limits.

The effective limit of a site or grid node at a time is ``min(static limit, envelope)``
(``domain.envelopes`` gives the overlap rule). Everything that keeps limits works on
the result, unchanged: the dispatcher and the flexibility figures on a
:class:`GridTopology` with the limits of *now* (or the strictest over a hold's window),
the planner on per-step arrays. §14a import limits are raised here to 4.2 kW per
controllable device below their target (a heat pump, EV charger or battery).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gridflock.domain.envelopes import (
    PARA14A_FLOOR_KW,
    Envelope,
    EnvelopeArrays,
    EnvelopeKind,
    TargetType,
    resolve,
)
from gridflock.domain.kinds import DeviceKind
from gridflock.domain.messages import FloatArray, IntArray
from gridflock.fleet.state import FleetState, GridTopology

__all__ = [
    "PARA14A_KINDS",
    "GridLimits",
    "PreparedEnvelopes",
    "controllable_per_site",
    "effective_grid",
    "grid_limits",
    "prepare",
    "unknown_targets",
]

#: Kinds a §14a EnWG dimming may act on (controllable consumers).
PARA14A_KINDS = ("heat_pump", "ev_charger", "battery")


@dataclass(frozen=True)
class GridLimits:
    """Effective limits per step [kW, magnitudes, inf = none]: sites and nodes x steps."""

    site_import_kw: FloatArray
    site_export_kw: FloatArray
    node_import_kw: FloatArray
    node_export_kw: FloatArray


def controllable_per_site(state: FleetState) -> IntArray:
    """How many §14a controllable devices (:data:`PARA14A_KINDS`) each site has."""
    is_ctrl = np.zeros(state.n, bool)
    for kind in PARA14A_KINDS:
        sl = state.kind_slices.get(DeviceKind(kind))
        if sl is not None:
            is_ctrl[sl] = True
    out: IntArray = np.bincount(
        state.site_idx, weights=is_ctrl, minlength=state.grid.n_sites
    ).astype(np.int64)
    return out


def _floors(grid: GridTopology, ctrl_per_site: IntArray) -> tuple[FloatArray, FloatArray]:
    """§14a floor [kW] of every site and every node (its sites' devices below it)."""
    site = PARA14A_FLOOR_KW * np.asarray(ctrl_per_site, np.float64)
    node = np.zeros(grid.n_nodes + 1)
    anc = grid.ancestors[grid.site_node] if grid.n_nodes else np.zeros((grid.n_sites, 0), int)
    for k in range(anc.shape[1]):
        col = np.where((grid.site_node >= 0) & (anc[:, k] >= 0), anc[:, k], grid.n_nodes)
        np.add.at(node, col, site)
    return site, node[: grid.n_nodes]


@dataclass(frozen=True)
class PreparedEnvelopes:
    """Envelopes made ready for one grid: §14a floors applied, targets located.

    ``site_row``/``node_row`` (n_targets,) give each target's row in the grid's sites or
    nodes (-1: not that kind, or unknown). Prepared once per batch (and per fleet), so
    each control cycle only selects and resolves.
    """

    arrays: EnvelopeArrays
    site_row: IntArray
    node_row: IntArray

    def take(self, rows: IntArray) -> PreparedEnvelopes:
        """The envelopes at ``rows`` (same targets)."""
        return PreparedEnvelopes(self.arrays.take(rows), self.site_row, self.node_row)


def prepare(
    grid: GridTopology,
    envelopes: Sequence[Envelope] | EnvelopeArrays,
    ctrl_per_site: IntArray | None = None,
) -> PreparedEnvelopes:
    """Locate the envelopes' targets in ``grid`` and raise §14a limits to their floor."""
    arr = envelopes if isinstance(envelopes, EnvelopeArrays) else EnvelopeArrays.of(envelopes)
    is_site = arr.target_type == TargetType.SITE.value
    site_row = np.full(len(arr.target_id), -1, np.int64)
    node_row = np.full(len(arr.target_id), -1, np.int64)
    site_row[is_site] = pd.Index(grid.site_ids).get_indexer(pd.Index(arr.target_id[is_site]))
    node_row[~is_site] = pd.Index(grid.node_ids).get_indexer(pd.Index(arr.target_id[~is_site]))
    para = arr.kind == list(EnvelopeKind).index(EnvelopeKind.PARA14A)
    if ctrl_per_site is not None and para.any():
        site_floor, node_floor = _floors(grid, ctrl_per_site)
        floor = np.where(
            site_row >= 0,
            site_floor[np.maximum(site_row, 0)] if len(site_floor) else 0.0,
            np.where(
                node_row >= 0, node_floor[np.maximum(node_row, 0)] if len(node_floor) else 0.0, 0.0
            ),
        )
        imp = np.where(para & np.isfinite(arr.imp), np.fmax(arr.imp, floor[arr.tgt]), arr.imp)
        arr = dataclasses.replace(arr, imp=imp)
    return PreparedEnvelopes(arr, site_row, node_row)


def grid_limits(
    grid: GridTopology,
    envelopes: Sequence[Envelope] | EnvelopeArrays | PreparedEnvelopes,
    edges: FloatArray,
    ctrl_per_site: IntArray | None = None,
) -> GridLimits:
    """Effective limits of every site and node over steps ``[edges[k], edges[k+1])``.

    Each is ``min(static, the strictest envelope during the step)``; envelopes on ids
    the grid does not have are left out (:func:`unknown_targets` names them).
    ``ctrl_per_site`` (for the §14a floors) is used unless ``envelopes`` is prepared.
    """
    n_steps = len(edges) - 1
    s_imp = np.repeat(grid.site_import_limit_kw[:, None], n_steps, 1).astype(np.float64)
    s_exp = np.repeat(grid.site_export_limit_kw[:, None], n_steps, 1).astype(np.float64)
    n_imp = np.repeat(grid.limit_import_kw[:, None], n_steps, 1).astype(np.float64)
    n_exp = np.repeat(grid.limit_export_kw[:, None], n_steps, 1).astype(np.float64)
    prep = (
        envelopes
        if isinstance(envelopes, PreparedEnvelopes)
        else prepare(grid, envelopes, ctrl_per_site)
    )
    if len(prep.arrays):
        res = resolve(prep.arrays, edges)
        for row, imp, exp in ((prep.site_row, s_imp, s_exp), (prep.node_row, n_imp, n_exp)):
            ok = row >= 0
            if ok.any():  # targets are distinct, so are their rows: no repeated index
                r = row[ok]
                imp[r] = np.minimum(imp[r], res.import_kw[ok])
                exp[r] = np.minimum(exp[r], res.export_kw[ok])
    return GridLimits(s_imp, s_exp, n_imp, n_exp)


def effective_grid(
    grid: GridTopology,
    envelopes: Sequence[Envelope] | EnvelopeArrays | PreparedEnvelopes,
    start: float,
    end: float | None = None,
    ctrl_per_site: IntArray | None = None,
) -> GridTopology:
    """``grid`` with the strictest limits over ``[start, end)`` (default: the instant).

    The same topology (ids, tree) with its four limit arrays replaced; ``grid`` itself
    when no envelope is given, so callers without envelopes pay nothing.
    """
    n = len(envelopes.arrays) if isinstance(envelopes, PreparedEnvelopes) else len(envelopes)
    if not n:
        return grid
    stop = end if end is not None and end > start else start + 1e-3
    lim = grid_limits(grid, envelopes, np.array([start, stop]), ctrl_per_site)
    out = dataclasses.replace(
        grid,
        site_import_limit_kw=lim.site_import_kw[:, 0],
        site_export_limit_kw=lim.site_export_kw[:, 0],
        limit_import_kw=lim.node_import_kw[:, 0],
        limit_export_kw=lim.node_export_kw[:, 0],
    )
    if "_site_levels" in grid.__dict__:  # same tree: keep its cached grouping
        out.__dict__["_site_levels"] = grid.__dict__["_site_levels"]
    return out


def unknown_targets(grid: GridTopology, envelopes: Sequence[Envelope]) -> list[Envelope]:
    """The envelopes whose site or grid node the grid does not have."""
    sites, nodes = set(grid.site_ids.tolist()), set(grid.node_ids.tolist())
    return [
        e
        for e in envelopes
        if e.target_id not in (sites if e.target_type is TargetType.SITE else nodes)
    ]
