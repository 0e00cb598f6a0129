"""Envelope hold: bring sites and grid nodes that break an envelope back inside it.

An operating envelope is a hard limit for events and plans, but a site whose PV alone
exports past its export envelope (or whose heat pump and EV charger import past an
import envelope or §14a dimming) breaks it with no event running. Each control cycle
the dispatcher asks :func:`hold` for the smallest changes, on devices no event holds,
that bring every site and node with an envelope in force back inside it.

The problem, for one direction (export excess: move *down*; import excess: move *up*):
devices ``i`` with usable headroom ``0 <= x_i <= a_i`` [kW]; every site and node ``S``
in breach by ``e_S`` [kW] needs ``sum(x over the devices below S) >= e_S``. ``a`` is the
allocator's effective headroom in that direction (``limit_headroom``), so no change
pushes any site or node past its limit on the other side. The sets are laminar (a
tree), so a greedy pass bottom-up is exact: each site, then each node deepest first,
takes what is still missing from the devices below it, cheapest rank first. The
ranks make the result the least curtailment: storage first (no energy lost), then
flexible consumers, then curtailed generation (export) or reduced consumption (import).
Checked against an exact LP in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridflock.dispatch.allocate import limit_headroom
from gridflock.domain.kinds import DeviceKind
from gridflock.domain.messages import BoolArray, FloatArray, IntArray
from gridflock.fleet.groups import NodeGroups
from gridflock.fleet.state import FleetState, GridTopology

__all__ = ["HoldIndex", "HoldResult", "breach_kw", "hold", "hold_arrays", "hold_index", "ranks"]

_EPS_KW = 1e-6


@dataclass(frozen=True)
class HoldResult:
    """What the hold asks and what it leaves.

    ``delta_kw``: each device's change from its baseline [kW, generator sign];
    ``site_breach_kw``/``node_breach_kw``: the breach before [kW, + export past the
    export limit, - import past the import limit, 0 inside]; ``site_left_kw``/
    ``node_left_kw``: the breach the devices could not remove [kW, same sign].
    """

    delta_kw: FloatArray
    site_breach_kw: FloatArray
    node_breach_kw: FloatArray
    site_left_kw: FloatArray
    node_left_kw: FloatArray

    @property
    def curtailed_kw(self) -> float:
        """Generation given up and consumption shed together [kW, >= 0]."""
        return float(np.abs(self.delta_kw).sum())


@dataclass(frozen=True)
class HoldIndex:
    """Orders the hold walks devices in, built once per fleet (they depend on it alone).

    Per direction: devices by (site, rank, position), each one's site in that order and
    the position its site's run starts at; and devices by (rank, position) for nodes.
    """

    rank_down: IntArray
    rank_up: IntArray
    site_order: tuple[IntArray, IntArray]
    site_of: tuple[IntArray, IntArray]
    site_start: tuple[IntArray, IntArray]
    by_rank: tuple[IntArray, IntArray]


def hold_index(site_idx: IntArray, rank_down: IntArray, rank_up: IntArray) -> HoldIndex:
    """The :class:`HoldIndex` of devices at ``site_idx`` with their ranks."""
    n = len(site_idx)
    pos = np.arange(n)
    orders, sites, starts, by_rank = [], [], [], []
    for rank in (rank_down, rank_up):
        order = np.lexsort((pos, rank, site_idx))
        s = site_idx[order]
        orders.append(order)
        sites.append(s)
        starts.append(np.searchsorted(s, s, "left"))
        by_rank.append(np.lexsort((pos, rank)))
    return HoldIndex(
        rank_down,
        rank_up,
        (orders[0], orders[1]),
        (sites[0], sites[1]),
        (starts[0], starts[1]),
        (by_rank[0], by_rank[1]),
    )


def ranks(state: FleetState) -> tuple[IntArray, IntArray]:
    """Each device's rank for moving down (export excess) and up (import excess).

    Down: batteries 0 (charge), other consumers 1 (consume more), generators 2
    (curtail). Up: batteries 0 (discharge), generators 0 (give back curtailed power),
    consumers 1 (shed load).
    """
    down = np.ones(state.n, np.int64)
    up = np.ones(state.n, np.int64)
    for kind, sl in state.kind_slices.items():
        if kind == DeviceKind.BATTERY:
            down[sl], up[sl] = 0, 0
        elif kind in (DeviceKind.PV, DeviceKind.WIND):
            down[sl], up[sl] = 2, 0
    return down, up


def breach_kw(
    site_p: FloatArray, node_p: FloatArray, grid: GridTopology
) -> tuple[FloatArray, FloatArray]:
    """Signed breach of every site and node [kW]: + past export, - past import, else 0."""

    def one(p: FloatArray, imp: FloatArray, exp: FloatArray) -> FloatArray:
        over = np.nan_to_num(p - exp, nan=0.0, neginf=0.0)
        under = np.nan_to_num(-p - imp, nan=0.0, neginf=0.0)
        out: FloatArray = np.where(over > _EPS_KW, over, np.where(under > _EPS_KW, -under, 0.0))
        return out

    return (
        one(site_p, grid.site_import_limit_kw, grid.site_export_limit_kw),
        one(node_p, grid.limit_import_kw, grid.limit_export_kw),
    )


def _take(need: float, room: FloatArray, order: IntArray) -> FloatArray:
    """Up to ``need`` from ``room`` taken in ``order`` (a cumulative sum, no loop)."""
    r = room[order]
    before = np.cumsum(r) - r
    x = np.zeros(len(room))
    x[order] = np.clip(need - before, 0.0, r)
    return x


def _direction(
    up: bool,
    grid: GridTopology,
    groups: NodeGroups,
    site_idx: IntArray,
    site_node: IntArray,
    headroom: FloatArray,
    index: HoldIndex,
    site_p: FloatArray,
    node_p: FloatArray,
) -> FloatArray:
    """Changes [kW, >= 0 magnitudes] removing the breaches in one direction."""
    sb, nb = breach_kw(site_p, node_p, grid)
    sign = -1.0 if up else 1.0  # import breaches are negative
    site_need = np.maximum(sign * sb, 0.0)
    node_need = np.maximum(sign * nb, 0.0)
    n = len(headroom)
    if not (site_need > 0).any() and not (node_need > 0).any():
        return np.zeros(n)
    a = limit_headroom(headroom, groups, grid, site_p, node_p, up)
    x = np.zeros(n)
    # sites: devices in (site, rank) order; per site the missing kW, cheapest first
    k = int(up)
    order, s, start = index.site_order[k], index.site_of[k], index.site_start[k]
    r = a[order]
    cum = np.cumsum(r)
    before = cum - r - np.where(start > 0, cum[start - 1], 0.0)
    x[order] = np.clip(site_need[s] - before, 0.0, r)
    if (node_need > 0).any():  # nodes, deepest first, each takes what is still missing
        anc = grid.ancestors
        depth = (anc >= 0).sum(axis=1)
        dev_chain = anc[site_node[site_idx]] if len(anc) else np.zeros((n, 0), np.int64)
        dev_chain = np.where(site_node[site_idx, None] >= 0, dev_chain, -1)
        by_rank = index.by_rank[k]
        for j in sorted(np.flatnonzero(node_need > 0), key=lambda j: -depth[j]):
            below: BoolArray = (dev_chain == j).any(axis=1)
            missing = node_need[j] - float(x[below].sum())
            if missing > _EPS_KW:
                room = np.where(below, a - x, 0.0)
                x += _take(missing, room, by_rank)
    return x


def hold(
    state: FleetState,
    grid: GridTopology,
    base: FloatArray,
    up_kw: FloatArray,
    down_kw: FloatArray,
    free: BoolArray,
    other_kw: FloatArray | None = None,
    index: HoldIndex | None = None,
) -> HoldResult:
    """Changes on ``free`` devices that bring every site and node of ``grid`` within its limits.

    ``grid`` carries the limits to hold (inf where none is in force); ``base`` the
    devices' baselines [kW, generator sign]; ``other_kw`` changes already decided for
    other devices (events, releases), counted in the flows. Export breaches are removed
    first, then import breaches within the export limits. Offline devices take no part.
    ``index``: the fleet's :func:`hold_index` with :func:`ranks`, when kept from before.
    """
    if index is None:
        index = hold_index(state.site_idx, *ranks(state))
    return hold_arrays(
        grid,
        state.node_groups,
        state.site_idx,
        base,
        up_kw,
        down_kw,
        free & state.online,
        index.rank_down,
        index.rank_up,
        other_kw,
        index,
    )


def hold_arrays(
    grid: GridTopology,
    groups: NodeGroups,
    site_idx: IntArray,
    base: FloatArray,
    up_kw: FloatArray,
    down_kw: FloatArray,
    free: BoolArray,
    rank_down: IntArray,
    rank_up: IntArray,
    other_kw: FloatArray | None = None,
    index: HoldIndex | None = None,
) -> HoldResult:
    """:func:`hold` on plain arrays (``groups`` index ``site_idx`` on ``grid``'s tree)."""
    if index is None:
        index = hold_index(site_idx, rank_down, rank_up)
    flow = base + (0.0 if other_kw is None else other_kw)
    site_p = groups.site.sum(flow)
    node_p = grid.node_flow_kw(site_p)
    sb, nb = breach_kw(site_p, node_p, grid)
    down = _direction(
        False,
        grid,
        groups,
        site_idx,
        grid.site_node,
        np.where(free, np.nan_to_num(down_kw), 0.0),
        index,
        site_p,
        node_p,
    )
    delta = -down
    if (sb < 0).any() or (nb < 0).any():
        site_p2 = groups.site.sum(flow + delta)
        node_p2 = grid.node_flow_kw(site_p2)
        up = _direction(
            True,
            grid,
            groups,
            site_idx,
            grid.site_node,
            np.where(free & (down <= 0), np.nan_to_num(up_kw), 0.0),
            index,
            site_p2,
            node_p2,
        )
        delta = delta + up
    site_after = groups.site.sum(flow + delta)
    sl, nl = breach_kw(site_after, grid.node_flow_kw(site_after), grid)
    return HoldResult(delta, sb, nb, sl, nl)
