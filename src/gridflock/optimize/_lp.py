"""The plan's LP over a subset of sites, assembled as sparse arrays (no per-variable calls).

Variables, per step ``t`` (kW unless said): battery charge ``c``, discharge ``d`` and
stored energy ``s`` [kWh, end of step]; EV charging ``e``; thermal electrical power
``h`` and temperature ``T`` [degC, end of step]; curtailment ``u`` of curtailable
renewables; each site's net import ``n`` (``n = base + x`` with ``base = load -
available renewables`` a constant and ``x = c - d + e + h + u`` over its devices,
``-export_limit <= n <= import_limit``), its import ``imp >= max(n, 0)`` where the import
price is above the export price or a peak charge applies, and its peak ``P`` [kW]; a flow
``F`` per active grid-node cap; delivered support ``w`` per window step. Energy cost
``dt (pe n + (pi - pe) imp)`` is exact for ``pi >= pe``.

Rows: battery balance, EV energy, thermal step (equalities and ranges per device),
site limits, import and peak (per site), the grid codes' rules (per site: a generation
cap ``sum d - sum u <= max(cap - available, 0)``, so the generators give at most
``max(cap, what the renewables give on their own)``; per battery a power rate limit
``|(d - c)[t] - (d - c)[t-1]| <= ramp * step``), and the coupling rows that are active:
grid-node caps, fleet caps, support windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from gridflock.domain.messages import BoolArray, FloatArray, IntArray
from gridflock.optimize.problem import PlanProblem

__all__ = ["LP", "Solution", "build_lp"]

_INF = np.inf


@dataclass
class LP:
    """One assembled LP and where each family's variables sit in it."""

    cost: FloatArray
    lb: FloatArray
    ub: FloatArray
    row_lo: FloatArray
    row_hi: FloatArray
    a: sp.csc_matrix
    offset: float
    sites: IntArray  #: global site indices in this LP
    bat: IntArray  #: global battery indices
    ev: IntArray
    th: IntArray
    ren: IntArray  #: global renewable indices with a curtailment variable
    col: dict[str, int]  #: first column of each block
    row_of: dict[str, int]  #: first row of each row block
    windows: tuple[int, ...]  #: indices of the windows in this LP
    window_cols: tuple[int, ...]  #: first column of each window's w block
    cap_cols: IntArray  #: the flow variables of the caps (bounded by them)
    imp_sites: IntArray  #: global sites with an import variable, in LP order
    peak_sites: IntArray  #: global sites with a peak variable, in LP order
    site_cols_end: int  #: columns before this one belong to single sites
    site_rows_end: int  #: rows before this one belong to single sites
    code_rows: int = 0  #: rows of grid-code rules, just before ``site_rows_end``


@dataclass
class Solution:
    """Per-family values of one solved LP (global indices in ``lp``)."""

    lp: LP
    x: FloatArray
    status: str
    objective: float


class _Builder:
    """Collects columns, rows and triplets; column and row numbers are handed out in order."""

    def __init__(self) -> None:
        self.n_col = 0
        self.n_row = 0
        self.cost: list[FloatArray] = []
        self.lb: list[FloatArray] = []
        self.ub: list[FloatArray] = []
        self.rlo: list[FloatArray] = []
        self.rhi: list[FloatArray] = []
        self.ri: list[IntArray] = []
        self.ci: list[IntArray] = []
        self.v: list[FloatArray] = []

    def cols(self, cost: FloatArray, lb: FloatArray | float, ub: FloatArray | float) -> int:
        start = self.n_col
        n = cost.size
        self.cost.append(np.asarray(cost, np.float64).reshape(-1))
        self.lb.append(np.broadcast_to(np.asarray(lb, np.float64), cost.shape).reshape(-1))
        self.ub.append(np.broadcast_to(np.asarray(ub, np.float64), cost.shape).reshape(-1))
        self.n_col += n
        return start

    def rows(self, lo: FloatArray, hi: FloatArray | float) -> int:
        start = self.n_row
        lo = np.asarray(lo, np.float64)
        self.rlo.append(lo.reshape(-1))
        self.rhi.append(np.broadcast_to(np.asarray(hi, np.float64), lo.shape).reshape(-1))
        self.n_row += lo.size
        return start

    def add(self, r: IntArray, c: IntArray, v: FloatArray | float) -> None:
        r = np.asarray(r, np.int64)
        self.ri.append(r.reshape(-1))
        self.ci.append(np.asarray(c, np.int64).reshape(-1))
        self.v.append(np.broadcast_to(np.asarray(v, np.float64), r.shape).reshape(-1))

    def matrix(self) -> sp.csc_matrix:
        r = np.concatenate(self.ri) if self.ri else np.zeros(0, np.int64)
        c = np.concatenate(self.ci) if self.ci else np.zeros(0, np.int64)
        v = np.concatenate(self.v) if self.v else np.zeros(0)
        return sp.csc_matrix((v, (r, c)), shape=(self.n_row, self.n_col))


def _grid(start: int, n: int, t: int) -> IntArray:
    """Indices ``start + i * t + k`` as an (n, t) array."""
    out: IntArray = start + np.arange(n * t, dtype=np.int64).reshape(n, t)
    return out


def build_lp(
    pb: PlanProblem,
    sites: IntArray,
    active_nodes: IntArray,
    fleet_cap: bool,
    windows: tuple[int, ...],
    references: dict[int, FloatArray],
) -> LP:
    """The LP of ``sites`` (sorted global indices) with the listed coupling rows.

    ``active_nodes`` are nodes whose caps are rows here (all their sites must be in
    ``sites``); ``fleet_cap`` adds the fleet caps (then ``sites`` is every site);
    ``windows`` the support windows (their scope's sites all in ``sites``), with each
    window's reference net power in ``references``.
    """
    t_n, dt = pb.n_steps, pb.step_h
    n_all = pb.n_sites
    local = np.full(n_all, -1, np.int64)
    local[sites] = np.arange(len(sites))
    ns = len(sites)
    tar = pb.tariff
    pi = tar.import_price[sites]
    pe = tar.export_price[sites]
    b = _Builder()
    col: dict[str, int] = {}
    row_of: dict[str, int] = {}
    # contributions to x (the controllable part of net import): (site local, col grid, coef)
    xs: list[tuple[IntArray, IntArray, float]] = []

    def pick(site: IntArray) -> IntArray:
        idx: IntArray = np.flatnonzero(local[site] >= 0)
        return idx

    # batteries
    bt = pb.batteries
    bi = pick(bt.site)
    nb = len(bi)
    e_kwh = bt.e_kwh[bi]
    wear = bt.wear_per_kwh[bi][:, None] * dt
    zero = np.zeros((nb, t_n))
    col["c"] = b.cols(zero + wear, 0.0, np.repeat(bt.p_charge_max_kw[bi][:, None], t_n, 1))
    col["d"] = b.cols(zero + wear, 0.0, np.repeat(bt.p_discharge_max_kw[bi][:, None], t_n, 1))
    soc0 = bt.soc0[bi]
    lo = np.minimum(bt.soc_floor[bi], soc0) * e_kwh
    hi = np.maximum(bt.soc_max[bi], soc0) * e_kwh
    s_lo = np.repeat(lo[:, None], t_n, 1)
    end = bt.soc_end_min[bi]
    s_lo[:, -1] = np.where(np.isfinite(end), np.maximum(end * e_kwh, lo), lo)
    col["s"] = b.cols(zero, s_lo, np.repeat(hi[:, None], t_n, 1))
    cg, dg, sg = _grid(col["c"], nb, t_n), _grid(col["d"], nb, t_n), _grid(col["s"], nb, t_n)
    rhs = np.zeros((nb, t_n))
    rhs[:, 0] = soc0 * e_kwh
    r0 = b.rows(rhs, rhs)
    row_of["bat"] = r0
    rg = _grid(r0, nb, t_n)
    b.add(rg, sg, 1.0)
    b.add(rg[:, 1:], sg[:, :-1], -1.0)
    b.add(rg, cg, np.repeat((-bt.eta_charge[bi] * dt)[:, None], t_n, 1))
    b.add(rg, dg, np.repeat((dt / bt.eta_discharge[bi])[:, None], t_n, 1))
    bsite = np.repeat(local[bt.site[bi]][:, None], t_n, 1)
    xs += [(bsite, cg, 1.0), (bsite, dg, -1.0)]

    # EV chargers
    ev = pb.evs
    ei = pick(ev.site)
    ne = len(ei)
    plugged = ev.plugged[ei]
    p_max = np.where(plugged, ev.p_max_kw[ei][:, None], 0.0)
    col["e"] = b.cols(np.zeros((ne, t_n)), 0.0, p_max)
    eg = _grid(col["e"], ne, t_n)
    r0 = b.rows(ev.e_min_kwh[ei], ev.e_need_kwh[ei])
    row_of["ev"] = r0
    b.add(
        np.repeat((r0 + np.arange(ne))[:, None], t_n, 1),
        eg,
        np.repeat((ev.eta[ei] * dt)[:, None], t_n, 1),
    )
    esite = np.repeat(local[ev.site[ei]][:, None], t_n, 1)
    xs.append((esite, eg, 1.0))

    # thermal
    th = pb.thermal
    ti = pick(th.site)
    nt = len(ti)
    k = th.heat_per_kw[ti]
    hp_max = np.where(k != 0.0, th.p_max_kw[ti][:, None], 0.0)
    col["h"] = b.cols(np.zeros((nt, t_n)), 0.0, hp_max)
    t_lo, t_hi = th.bounds()
    col["T"] = b.cols(np.zeros((nt, t_n)), t_lo[ti], t_hi[ti])
    hg, tg = _grid(col["h"], nt, t_n), _grid(col["T"], nt, t_n)
    a = th.a[ti][:, None]
    bb = th.b[ti][:, None]
    rhs = (1.0 - a) * th.t_env_c[ti] + bb * th.q_free_kw[ti]
    rhs[:, 0] += a[:, 0] * th.t0_c[ti]
    r0 = b.rows(rhs, rhs)
    row_of["th"] = r0
    rg = _grid(r0, nt, t_n)
    b.add(rg, tg, 1.0)
    b.add(rg[:, 1:], tg[:, :-1], np.repeat(-a, t_n - 1, 1))
    b.add(rg, hg, -bb * k)
    tsite = np.repeat(local[th.site[ti]][:, None], t_n, 1)
    xs.append((tsite, hg, 1.0))

    # curtailable renewables
    rn = pb.renewables
    ri = pick(rn.site)
    ri = ri[rn.curtailable[ri]]
    nr = len(ri)
    col["u"] = b.cols(np.full((nr, t_n), tar.curtailment_cost_per_kwh * dt), 0.0, rn.avail_kw[ri])
    ug = _grid(col["u"], nr, t_n)
    usite = np.repeat(local[rn.site[ri]][:, None], t_n, 1)
    xs.append((usite, ug, 1.0))

    # site net import n = base + x, within the connection limits
    here = pick(rn.site)  # every renewable of these sites, curtailable or not
    avail = np.zeros((ns, t_n))
    np.add.at(avail, local[rn.site[here]], rn.avail_kw[here])
    base = pb.sites.load_kw[sites] - avail
    imp_lim = pb.sites.limit_per_step(pb.sites.import_limit_kw, t_n)[sites]
    exp_lim = pb.sites.limit_per_step(pb.sites.export_limit_kw, t_n)[sites]
    col["n"] = b.cols(pe * dt, -exp_lim, imp_lim)
    ng = _grid(col["n"], ns, t_n)
    r0 = b.rows(base, base)  # n - x = base
    row_of["site"] = r0
    site_rows = _grid(r0, ns, t_n)
    b.add(site_rows, ng, 1.0)
    xs_site = np.concatenate([s.reshape(-1) for s, _, _ in xs])
    xs_col = np.concatenate([c.reshape(-1) for _, c, _ in xs])
    xs_coef = np.concatenate([np.full(c.size, v) for _, c, v in xs])
    xs_t = np.concatenate([np.broadcast_to(np.arange(t_n), c.shape).reshape(-1) for _, c, _ in xs])
    b.add(site_rows[xs_site, xs_t], xs_col, -xs_coef)
    offset = 0.0

    # import above export price, and peak charge
    peak = tar.peak_price_per_kw[sites] > 0
    needs_imp = (pi > pe + 1e-15).any(axis=1) | peak
    si = np.flatnonzero(needs_imp)
    nm = len(si)
    col["imp"] = b.cols((pi[si] - pe[si]) * dt, 0.0, _INF)
    mg = _grid(col["imp"], nm, t_n)
    r0 = b.rows(np.zeros((nm, t_n)), _INF)  # imp - n >= 0
    row_of["imp"] = r0
    ig = _grid(r0, nm, t_n)
    b.add(ig, mg, 1.0)
    b.add(ig, ng[si], -1.0)
    loc_imp = np.full(ns, -1, np.int64)
    loc_imp[si] = np.arange(nm)
    pk = np.flatnonzero(peak)
    npk = len(pk)
    col["P"] = b.cols(tar.peak_price_per_kw[sites][pk], 0.0, _INF)
    r0 = b.rows(np.repeat(-tar.peak_threshold_kw[sites][pk][:, None], t_n, 1), _INF)
    row_of["peak"] = r0
    pg = _grid(r0, npk, t_n)
    b.add(pg, np.repeat((col["P"] + np.arange(npk))[:, None], t_n, 1), 1.0)
    b.add(pg, mg[loc_imp[pk]], -1.0)

    code_rows = _code_rows(pb, b, sites, local, bi, cg, dg, ri, ug, avail)

    site_cols_end, site_rows_end = b.n_col, b.n_row

    # coupling: a flow variable F (net import below the node) per active node and step,
    # F = sum of n over its sites not under an active descendant + the descendants' F;
    # short rows keep the basis sparse when many sites share a cap
    g = pb.grid
    site_node = pb.sites.node[sites]
    anc = (
        np.where(site_node[:, None] >= 0, g.ancestors[np.maximum(site_node, 0)], -1)
        if len(g)
        else np.full((ns, 1), -1)
    )
    caps: list[tuple[int, FloatArray, FloatArray]] = [
        (int(j), g.import_cap_kw[j], g.export_cap_kw[j]) for j in active_nodes
    ]
    if fleet_cap:
        caps.append((-2, g.fleet_import_cap_kw, g.fleet_export_cap_kw))
    cap_cols: list[IntArray] = []
    if caps:
        is_active = np.zeros(len(g) + 1, bool)
        is_active[np.asarray([j for j, _, _ in caps if j >= 0], np.int64)] = True
        # nearest active ancestor of each site, and of each active node (its parent cap)
        anc_c = np.where(anc >= 0, anc, len(g))
        act = is_active[anc_c] & (anc >= 0)
        first = np.where(act.any(axis=1), act.argmax(axis=1), -1)
        owner = np.where(
            first >= 0, anc[np.arange(ns), np.maximum(first, 0)], -2 if fleet_cap else -1
        )
        fcol: dict[int, int] = {}
        for j, imp_cap, exp_cap in caps:
            fcol[j] = b.cols(np.zeros(t_n), -exp_cap, imp_cap)
            cap_cols.append(fcol[j] + np.arange(t_n))
        for j, _, _ in caps:
            r = b.rows(np.zeros(t_n), np.zeros(t_n))  # F - sum(n) - sum(child F) = 0
            b.add(r + np.arange(t_n), fcol[j] + np.arange(t_n), 1.0)
            mine = np.flatnonzero(owner == j)
            b.add(
                r + np.tile(np.arange(t_n), len(mine)),
                ng[mine].reshape(-1),
                -1.0,
            )
            for kk, _, _ in caps:
                if kk < 0 or kk == j:
                    continue
                chain = g.ancestors[kk][1:]
                chain = chain[chain >= 0]
                up = [int(node) for node in chain if is_active[node]]
                parent = up[0] if up else (-2 if fleet_cap else -1)
                if parent == j:
                    b.add(r + np.arange(t_n), fcol[kk] + np.arange(t_n), -1.0)

    # support windows: w <= kw, w <= flow - reference, flow = -sum n
    wcols = []
    for wi in windows:
        w = pb.windows[wi]
        n_w = w.end - w.start
        c0 = b.cols(np.full(n_w, -(w.value_per_kwh + w.penalty_per_kwh) * dt), -_INF, w.kw)
        offset += w.penalty_per_kwh * w.kw * n_w * dt
        wcols.append(c0)
        member = np.flatnonzero(_window_members(pb, wi, sites))
        ref = references[wi]
        r = b.rows(np.full(n_w, -_INF), -ref)  # w + sum n <= -ref
        b.add(r + np.arange(n_w), c0 + np.arange(n_w), 1.0)
        b.add(
            r + np.tile(np.arange(n_w), len(member)),
            ng[member][:, w.start : w.end].reshape(-1),
            1.0,
        )

    return LP(
        cost=np.concatenate(b.cost),
        lb=np.concatenate(b.lb),
        ub=np.concatenate(b.ub),
        row_lo=np.concatenate(b.rlo),
        row_hi=np.concatenate(b.rhi),
        a=b.matrix(),
        offset=offset,
        sites=sites,
        bat=bi,
        ev=ei,
        th=ti,
        ren=ri,
        col=col,
        row_of=row_of,
        windows=windows,
        window_cols=tuple(wcols),
        cap_cols=np.concatenate(cap_cols) if cap_cols else np.zeros(0, np.int64),
        imp_sites=sites[si],
        peak_sites=sites[pk],
        site_cols_end=site_cols_end,
        site_rows_end=site_rows_end,
        code_rows=code_rows,
    )


def _code_rows(
    pb: PlanProblem,
    b: _Builder,
    sites: IntArray,
    local: IntArray,
    bi: IntArray,
    cg: IntArray,
    dg: IntArray,
    ri: IntArray,
    ug: IntArray,
    avail: FloatArray,
) -> int:
    """Rows of the sites' grid-code rules (module doc); returns how many."""
    t_n, step_s = pb.n_steps, pb.step_h * 3600.0
    before = b.n_row
    bt = pb.batteries
    cap = pb.sites.gen_cap_kw
    if len(cap) and np.isfinite(cap[sites]).any():
        ls = np.flatnonzero(np.isfinite(cap[sites]))  # local sites with a cap
        row_of_site = np.full(len(sites), -1, np.int64)
        row_of_site[ls] = np.arange(len(ls))
        hi = np.maximum(cap[sites][ls][:, None] - avail[ls], 0.0)
        r0 = b.rows(np.full(hi.shape, -_INF), hi)
        rg = _grid(r0, len(ls), t_n)
        bl = row_of_site[local[bt.site[bi]]]
        has = bl >= 0
        if has.any():
            b.add(rg[bl[has]], dg[has], 1.0)
        ul = row_of_site[local[pb.renewables.site[ri]]]
        has = ul >= 0
        if has.any():
            b.add(rg[ul[has]], ug[has], -1.0)
    ramp = bt.ramp_kw_per_s[bi] * step_s if len(bt.ramp_kw_per_s) else np.zeros(0)
    if t_n > 1 and len(ramp):
        span = bt.p_charge_max_kw[bi] + bt.p_discharge_max_kw[bi]
        k = np.flatnonzero(ramp < span)  # a bound that can bind
        if len(k):
            lim = np.repeat(ramp[k][:, None], t_n - 1, 1)
            r0 = b.rows(-lim, lim)
            rg = _grid(r0, len(k), t_n - 1)
            for g_, sign in ((dg, 1.0), (cg, -1.0)):
                b.add(rg, g_[k][:, 1:], sign)
                b.add(rg, g_[k][:, :-1], -sign)
    return b.n_row - before


def _window_members(pb: PlanProblem, wi: int, sites: IntArray) -> BoolArray:
    """Which of ``sites`` are in window ``wi``'s scope."""
    w = pb.windows[wi]
    if w.node is None:
        return np.ones(len(sites), bool)
    j = int(np.flatnonzero(pb.grid.ids == w.node)[0])
    sn = pb.sites.node[sites]
    anc = np.where(sn[:, None] >= 0, pb.grid.ancestors[np.maximum(sn, 0)], -1)
    out: BoolArray = (anc == j).any(axis=1)
    return out


def window_sites(pb: PlanProblem, wi: int) -> IntArray:
    """Global indices of the sites in window ``wi``'s scope."""
    all_sites = np.arange(pb.n_sites, dtype=np.int64)
    out: IntArray = all_sites[_window_members(pb, wi, all_sites)]
    return out
