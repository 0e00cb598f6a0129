"""Solve a :class:`PlanProblem` exactly: independent site blocks, coupling where it binds.

Without grid-node caps, fleet caps or support windows, the plan's LP is separable by site:
the optimum of the whole is the optimum of each site. Sites are packed ``chunk_sites`` to
one HiGHS model (a block-diagonal LP; fewer, larger models cost less Python and HiGHS
overhead per site) and the models solved on a few threads (HiGHS releases the GIL).

Caps couple sites. They are handled by constraint generation over the laminar family of
node subtrees: solve with no caps; find every node (or the fleet) whose flow breaks its
cap at some step; merge all sites below it into one component whose LP carries that cap
(and every active cap inside it); re-solve only the components that changed; repeat
until no cap is broken. Each round solves a relaxation of the full problem exactly (its
components are independent), so a relaxed optimum that keeps every cap is the full
optimum. Caps that never bind cost nothing; a binding cap costs one LP over the sites
below it. Support windows couple their scope from the start.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from gridflock.domain.errors import Problem
from gridflock.domain.messages import BoolArray, FloatArray, IntArray
from gridflock.optimize import _highs
from gridflock.optimize._lp import LP, build_lp, window_sites
from gridflock.optimize._reach import thermal_reach
from gridflock.optimize._warm import WarmStart
from gridflock.optimize.plan import Objective, Plan, PlanInfeasibleError, PlanTimeoutError
from gridflock.optimize.problem import PlanProblem

__all__ = ["precheck", "solve", "solve_monolithic"]

_SRC = "plan"
#: Scale of the site-specific tie-breaking costs of the first solve [EUR/kWh of net import].
TIE_EUR_PER_KWH = 1e-6
#: Number of distinct tie-breaking patterns (sites take them in turn; each has its own
#: warm-start template, so spreading costs few extra simplex iterations).
TIE_CLASSES = 16


# ---------------------------------------------------------------------------------------
# rules that no plan can keep, found per device before any LP


def precheck(pb: PlanProblem) -> list[Problem]:
    """Device rules no plan can keep, each naming the device and the rule (vectorised)."""
    out: list[Problem] = []
    dt, ids = pb.step_h, pb.device_ids
    ev = pb.evs
    if len(ev):
        most = (ev.eta * dt * (ev.plugged * ev.p_max_kw[:, None]).sum(axis=1)).astype(float)
        for i in np.flatnonzero(most < ev.e_min_kwh - 1e-9)[:50]:
            out.append(
                Problem(
                    _SRC,
                    f"ev_charger {ids[ev.row[i]]}",
                    "e_need_kwh",
                    f"the car needs {ev.e_min_kwh[i]:.3g} kWh before it leaves but can take at "
                    f"most {most[i]:.3g} kWh while plugged in at p_max_kw "
                    f"{ev.p_max_kw[i]:g}; lower the need or extend the session",
                )
            )
    th = pb.thermal
    if len(th):
        dead, first = thermal_reach(pb)[:2]
        for i in np.flatnonzero(dead)[:50]:
            what = "house" if th.is_heat_pump[i] else "tank"
            out.append(
                Problem(
                    _SRC,
                    f"{'heat_pump' if th.is_heat_pump[i] else 'water_heater'} {ids[th.row[i]]}",
                    "t_min_c/t_max_c",
                    f"the {what} leaves its band [{th.t_min_c[i]:g}, {th.t_max_c[i]:g}] degC at "
                    f"step {first[i]} whatever the device does (from {th.t0_c[i]:.3g} degC); "
                    "widen the band or check the forecasts",
                )
            )
    bt = pb.batteries
    if len(bt):
        reach = np.minimum(
            bt.soc0 + bt.eta_charge * bt.p_charge_max_kw * dt * pb.n_steps / bt.e_kwh, bt.soc_max
        )
        for i in np.flatnonzero(np.isfinite(bt.soc_end_min) & (reach < bt.soc_end_min - 1e-9))[:50]:
            out.append(
                Problem(
                    _SRC,
                    f"battery {ids[bt.row[i]]}",
                    "soc_end",
                    f"cannot reach {bt.soc_end_min[i]:.3g} by the horizon's end from "
                    f"{bt.soc0[i]:.3g}; lower the final state of charge",
                )
            )
    return out


def _bad_sites(pb: PlanProblem, problems: list[Problem]) -> BoolArray:
    """Sites whose devices are named in ``problems``."""
    bad = np.zeros(pb.n_sites, bool)
    names = {p.entry.split(" ", 1)[1] for p in problems if " " in p.entry}
    if names:
        hit = np.isin(pb.device_ids, list(names))
        bad[pb.device_site[hit]] = True
    return bad


# ---------------------------------------------------------------------------------------
# results


class _Acc:
    """Global result arrays, filled LP by LP."""

    def __init__(self, pb: PlanProblem) -> None:
        t = pb.n_steps
        self.c = np.full((len(pb.batteries), t), np.nan)
        self.d = np.full((len(pb.batteries), t), np.nan)
        self.s = np.full((len(pb.batteries), t), np.nan)
        self.e = np.full((len(pb.evs), t), np.nan)
        self.h = np.full((len(pb.thermal), t), np.nan)
        self.temp = np.full((len(pb.thermal), t), np.nan)
        self.u = np.zeros((len(pb.renewables), t))
        self.done = np.zeros(pb.n_sites, bool)

    def put(self, lp: LP, x: FloatArray, t: int) -> None:
        def blk(name: str, n: int) -> FloatArray:
            s = lp.col[name]
            out: FloatArray = x[s : s + n * t].reshape(n, t)
            return out

        nb, ne, nt, nr = len(lp.bat), len(lp.ev), len(lp.th), len(lp.ren)
        self.c[lp.bat], self.d[lp.bat], self.s[lp.bat] = blk("c", nb), blk("d", nb), blk("s", nb)
        self.e[lp.ev] = blk("e", ne)
        self.h[lp.th], self.temp[lp.th] = blk("h", nt), blk("T", nt)
        self.u[lp.ren] = blk("u", nr)
        self.done[lp.sites] = True


def _site_net(pb: PlanProblem, acc: _Acc) -> FloatArray:
    """Each site's net power [kW, generator sign] from the device values."""
    x = np.zeros((pb.n_sites, pb.n_steps))
    np.add.at(x, pb.batteries.site, acc.c - acc.d)
    np.add.at(x, pb.evs.site, acc.e)
    np.add.at(x, pb.thermal.site, acc.h)
    np.add.at(x, pb.renewables.site, acc.u - pb.renewables.avail_kw)
    net: FloatArray = -(pb.sites.load_kw + x)
    net[~acc.done] = np.nan
    return net


def _node_flow(pb: PlanProblem, site_net: FloatArray) -> FloatArray:
    """Each node's flow: the sum of the net power of the sites below it."""
    g = pb.grid
    flow = np.zeros((len(g) + 1, pb.n_steps))
    sn = pb.sites.node
    anc = np.where(sn[:, None] >= 0, g.ancestors[np.maximum(sn, 0)], -1)
    clean = np.nan_to_num(site_net)
    for k in range(anc.shape[1]):
        np.add.at(flow, np.where(anc[:, k] >= 0, anc[:, k], len(g)), clean)
    out: FloatArray = flow[: len(g)]
    return out


def _assemble(
    pb: PlanProblem,
    acc: _Acc,
    references: dict[int, FloatArray],
    status: str,
    timings: dict[str, float],
    stats: dict[str, int],
    infeasible: tuple[Problem, ...],
) -> Plan:
    t, dt = pb.n_steps, pb.step_h
    p = np.full((pb.n_devices, t), np.nan)
    bt, ev, th, rn = pb.batteries, pb.evs, pb.thermal, pb.renewables
    p[bt.row] = acc.d - acc.c
    p[ev.row] = -acc.e
    p[th.row] = -acc.h
    curtailed = np.zeros((pb.n_devices, t))
    curtailed[rn.row] = acc.u
    p[rn.row] = rn.avail_kw - acc.u
    load_rows = np.flatnonzero(pb.load_share > 0)
    p[load_rows] = -pb.sites.load_kw[pb.device_site[load_rows]] * pb.load_share[load_rows, None]
    done = acc.done
    p[~done[pb.device_site]] = np.nan
    curtailed[~done[pb.device_site]] = np.nan
    soc = np.concatenate(
        [bt.soc0[:, None], acc.s / np.where(bt.e_kwh > 0, bt.e_kwh, 1.0)[:, None]], 1
    )
    ev_kwh = np.concatenate([np.zeros((len(ev), 1)), np.cumsum(acc.e * ev.eta[:, None] * dt, 1)], 1)
    temp = np.concatenate([th.t0_c[:, None], acc.temp], 1)
    net = _site_net(pb, acc)
    flow = _node_flow(pb, net)
    ok = done
    imp = np.maximum(-net[ok], 0.0)
    exp = np.maximum(net[ok], 0.0)
    tar = pb.tariff
    energy = float(((tar.import_price[ok] * imp - tar.export_price[ok] * exp).sum()) * dt)
    peak_kw = np.maximum(imp.max(axis=1, initial=0.0) - tar.peak_threshold_kw[ok], 0.0)
    peak = float((tar.peak_price_per_kw[ok] * peak_kw).sum())
    bdone = done[bt.site]
    wear = float((bt.wear_per_kwh[bdone, None] * (acc.c[bdone] + acc.d[bdone])).sum() * dt)
    rdone = done[rn.site]
    curt = float(acc.u[rdone].sum() * dt * tar.curtailment_cost_per_kwh)
    support = np.full((len(pb.windows), t), np.nan)
    value = 0.0
    for wi, w in enumerate(pb.windows):
        members = window_sites(pb, wi)
        scope = np.nansum(net[members, w.start : w.end], axis=0)
        delivered = np.minimum(w.kw, scope - references[wi])
        support[wi, w.start : w.end] = delivered
        value += float(
            (w.value_per_kwh * delivered - w.penalty_per_kwh * (w.kw - delivered)).sum() * dt
        )
    return Plan(
        start_ts=pb.start_ts,
        step_h=dt,
        device_ids=pb.device_ids,
        device_kinds=pb.device_kinds,
        site_ids=pb.sites.ids,
        node_ids=pb.grid.ids,
        p_kw=p,
        curtailed_kw=curtailed,
        battery_rows=bt.row,
        soc=soc,
        ev_rows=ev.row,
        ev_kwh=ev_kwh,
        thermal_rows=th.row,
        temp_c=temp,
        site_net_kw=net,
        node_flow_kw=flow,
        support_kw=support,
        objective=Objective(energy, peak, value, wear, curt),
        status=status,
        timings_s=timings,
        stats=stats,
        infeasible=infeasible,
        warnings=pb.notes,
    )


# ---------------------------------------------------------------------------------------
# the decomposition


def _references(
    pb: PlanProblem, chunk_sites: int, threads: int, skip_infeasible: bool
) -> dict[int, FloatArray]:
    """Each window's reference: its scope's net power given, or in the plan without windows."""
    refs: dict[int, FloatArray] = {}
    missing = [wi for wi, w in enumerate(pb.windows) if w.reference_kw is None]
    base = None
    if missing:
        base = solve(
            dataclasses.replace(pb, windows=()),
            chunk_sites=chunk_sites,
            threads=threads,
            skip_infeasible=skip_infeasible,
        )
    for wi, w in enumerate(pb.windows):
        if w.reference_kw is not None:
            refs[wi] = np.broadcast_to(np.asarray(w.reference_kw, float), (w.end - w.start,))
        else:
            assert base is not None
            members = window_sites(pb, wi)
            refs[wi] = np.nansum(base.site_net_kw[members, w.start : w.end], axis=0)
    return refs


class _Components:
    """Union-find over sites: sites solved in one LP because a cap or window couples them."""

    def __init__(self, n: int) -> None:
        self.parent = np.arange(n, dtype=np.int64)

    def root(self, i: int) -> int:
        p = self.parent
        while p[i] != i:
            p[i] = p[p[i]]
            i = int(p[i])
        return i

    def merge(self, sites: Iterable[int]) -> None:
        it = iter(sites)
        first = next(it, None)
        if first is None:
            return
        r0 = self.root(int(first))
        for s in it:
            r = self.root(int(s))
            if r != r0:
                self.parent[r] = r0

    def labels(self) -> IntArray:
        """Root of every site (vectorised path compression)."""
        p = self.parent
        while True:
            pp = p[p]
            if np.array_equal(pp, p):
                break
            p = pp
        self.parent = p
        return p.copy()


def _node_sites(pb: PlanProblem) -> list[IntArray]:
    """The sites below each node."""
    g = pb.grid
    sn = pb.sites.node
    anc = np.where(sn[:, None] >= 0, g.ancestors[np.maximum(sn, 0)], -1)
    pairs_site = np.repeat(np.arange(pb.n_sites), anc.shape[1])
    pairs_node = anc.reshape(-1)
    keep = pairs_node >= 0
    order = np.argsort(pairs_node[keep], kind="stable")
    ps, pn = pairs_site[keep][order], pairs_node[keep][order]
    bounds = np.searchsorted(pn, np.arange(len(g) + 1))
    return [ps[bounds[j] : bounds[j + 1]] for j in range(len(g))]


def solve(
    problem: PlanProblem,
    *,
    chunk_sites: int = 16,
    threads: int = 2,
    skip_infeasible: bool = False,
    tol_kw: float = 1e-6,
    warm_start: bool = True,
    spread_ties: bool = True,
    time_limit_s: float | None = None,
) -> Plan:
    """The optimal plan of ``problem``.

    Sites are solved as independent LPs, ``chunk_sites`` to one HiGHS model, on
    ``threads`` threads; a grid-node or fleet cap that the plans break (by more than
    ``tol_kw``) joins the sites below it into one LP with that cap, until none is broken:
    the result is the optimum of the whole coupled problem. Raises
    :class:`~gridflock.optimize.plan.PlanInfeasibleError` naming every site, device or
    node and the rule that cannot be kept, unless ``skip_infeasible`` (those sites then
    get NaN rows and are listed in ``Plan.infeasible``; caps then hold over the rest).
    ``warm_start`` starts every LP from the optimal basis of a site built the same way
    (same optimum, several times fewer simplex iterations). ``spread_ties`` breaks ties
    between equally cheap steps differently at each site before the exact re-solve, so
    that tied choices do not all land on one step and break grid caps for nothing.
    ``time_limit_s`` bounds each HiGHS run; an LP that hits it raises
    :class:`~gridflock.optimize.plan.PlanTimeoutError` (a large coupled component).
    """
    pb = problem
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    problems = precheck(pb)
    if problems and not skip_infeasible:
        raise PlanInfeasibleError(problems)
    excluded = _bad_sites(pb, problems)
    refs = _references(pb, chunk_sites, threads, skip_infeasible) if pb.windows else {}
    timings["precheck_s"] = time.perf_counter() - t_start
    comps = _Components(pb.n_sites)
    for wi in range(len(pb.windows)):
        comps.merge(window_sites(pb, wi))
    node_sites = _node_sites(pb)
    g = pb.grid
    any_cap = bool(
        np.isfinite(g.import_cap_kw).any()
        or np.isfinite(g.export_cap_kw).any()
        or np.isfinite(g.fleet_import_cap_kw).any()
        or np.isfinite(g.fleet_export_cap_kw).any()
    )
    # sites solved with tie-breaking costs: all of them from the start under grid caps
    tie = tie_class = None
    if spread_ties and any_cap:
        patterns = np.random.default_rng(20_261_201).random((TIE_CLASSES, pb.n_steps))
        tie_class = np.arange(pb.n_sites, dtype=np.int64) % TIE_CLASSES
        tie = patterns[tie_class] * (TIE_EUR_PER_KWH * pb.step_h)
    spread = np.full(pb.n_sites, tie is not None)
    warm = WarmStart(pb, tie, tie_class) if warm_start else None
    timings["templates_s"] = time.perf_counter() - t_start - timings["precheck_s"]
    active = np.zeros(len(pb.grid), bool)
    fleet_active = False
    acc = _Acc(pb)
    dirty = np.ones(pb.n_sites, bool)
    stats = {"lps": 0, "rounds": 0, "coupled_sites": 0, "active_caps": 0}
    build_s = solve_s = 0.0
    pool = ThreadPoolExecutor(max(1, threads)) if threads > 1 else None
    try:
        while True:
            stats["rounds"] += 1
            labels = comps.labels()
            jobs = _jobs(labels, dirty & ~excluded, chunk_sites)
            t_round = time.perf_counter()
            results = _run_jobs(
                pb, jobs, active, fleet_active, refs, pool, warm, tie, spread, time_limit_s
            )
            timings[f"round{stats['rounds']}_s"] = time.perf_counter() - t_round
            for sites, lp, status, x, b_s, s_s in results:
                build_s += b_s
                solve_s += s_s
                stats["lps"] += 1
                if status == "optimal":
                    acc.put(lp, x, pb.n_steps)
                    continue
                if status == "time limit reached":
                    caps = [str(i) for i in pb.grid.ids[active]] + (
                        ["fleet"] if fleet_active else []
                    )
                    raise PlanTimeoutError(
                        f"an LP of {len(sites)} sites did not finish within {time_limit_s} s "
                        f"(caps coupling them: {', '.join(caps[:10]) or 'none'}); loosen "
                        "the caps, plan fewer steps or give more time"
                    )
                found = _diagnose(pb, sites, active, fleet_active, refs, status)
                problems += found
                excluded[sites] = True
                if not skip_infeasible:
                    raise PlanInfeasibleError(problems)
                acc.done[sites] = False
            net = _site_net(pb, acc)
            flow = _node_flow(pb, net)
            g = pb.grid
            broken = (~active) & (
                (flow < -g.import_cap_kw - tol_kw) | (flow > g.export_cap_kw + tol_kw)
            ).any(axis=1)
            fleet = np.nansum(np.where(acc.done[:, None], net, 0.0), axis=0)
            fleet_broken = not fleet_active and bool(
                (
                    (fleet < -g.fleet_import_cap_kw - tol_kw)
                    | (fleet > g.fleet_export_cap_kw + tol_kw)
                ).any()
            )
            if not broken.any() and not fleet_broken:
                break
            dirty = np.zeros(pb.n_sites, bool)
            for j in np.flatnonzero(broken):
                active[(pb.grid.ancestors == j).any(axis=1)] = True  # j and all below it
                members = node_sites[j][~excluded[node_sites[j]]]
                comps.merge(members)
                dirty[members] = True
            if fleet_broken:
                fleet_active = True
                comps.merge(np.flatnonzero(~excluded))
                dirty[:] = True
            labels = comps.labels()
            dirty = np.isin(labels, labels[dirty])
    finally:
        if pool is not None:
            pool.shutdown()
    labels = comps.labels()
    sizes = np.bincount(labels, minlength=pb.n_sites)
    stats["coupled_sites"] = int((sizes[labels] > 1).sum())
    stats["active_caps"] = int(active.sum()) + int(fleet_active)
    timings["build_s"] = build_s
    timings["solve_s"] = solve_s
    t_asm = time.perf_counter()
    status = "optimal" if not problems else "partial"
    plan = _assemble(pb, acc, refs, status, timings, stats, tuple(problems))
    timings["assemble_s"] = time.perf_counter() - t_asm
    timings["total_s"] = time.perf_counter() - t_start
    return plan


def _jobs(labels: IntArray, todo: BoolArray, chunk_sites: int) -> list[IntArray]:
    """Site sets to solve: components packed into LPs of about ``chunk_sites`` sites."""
    sites = np.flatnonzero(todo)
    if not len(sites):
        return []
    order = np.argsort(labels[sites], kind="stable")
    sites = sites[order]
    lab = labels[sites]
    starts = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]])
    ends = np.r_[starts[1:], len(sites)]
    out: list[IntArray] = []
    cur: list[IntArray] = []
    size = 0
    for s, e in zip(starts, ends, strict=True):
        comp = sites[s:e]
        if len(comp) >= chunk_sites:
            out.append(np.sort(comp))
            continue
        cur.append(comp)
        size += len(comp)
        if size >= chunk_sites:
            out.append(np.sort(np.concatenate(cur)))
            cur, size = [], 0
    if cur:
        out.append(np.sort(np.concatenate(cur)))
    return out


def _lp_for(
    pb: PlanProblem,
    sites: IntArray,
    active: BoolArray,
    fleet_active: bool,
    refs: dict[int, FloatArray],
) -> LP:
    """The LP of ``sites`` with the active caps and the windows whose scope is inside."""
    inside = np.zeros(pb.n_sites, bool)
    inside[sites] = True
    nodes = []
    if active.any():
        sn = pb.sites.node[sites]
        anc = np.where(sn[:, None] >= 0, pb.grid.ancestors[np.maximum(sn, 0)], -1)
        present = np.unique(anc[anc >= 0])
        nodes = [int(j) for j in present if active[j]]
    windows = tuple(wi for wi in range(len(pb.windows)) if inside[window_sites(pb, wi)].all())
    fleet = fleet_active and bool(inside.all())
    return build_lp(pb, sites, np.asarray(nodes, np.int64), fleet, windows, refs)


def _run_jobs(
    pb: PlanProblem,
    jobs: list[IntArray],
    active: BoolArray,
    fleet_active: bool,
    refs: dict[int, FloatArray],
    pool: ThreadPoolExecutor | None,
    warm: WarmStart | None,
    tie: FloatArray | None,
    spread: BoolArray,
    time_limit_s: float | None,
) -> list[tuple[IntArray, LP, str, FloatArray, float, float]]:
    def one(sites: IntArray) -> tuple[IntArray, LP, str, FloatArray, float, float]:
        t0 = time.perf_counter()
        lp = _lp_for(pb, sites, active, fleet_active, refs)
        basis = warm.basis(lp) if warm is not None else None
        perturb = None
        if tie is not None and spread[sites].all() and not len(lp.cap_cols):
            perturb = np.zeros(len(lp.cost))
            c0 = lp.col["n"]
            perturb[c0 : c0 + len(sites) * pb.n_steps] = tie[lp.sites].reshape(-1)
        t1 = time.perf_counter()
        status, x, _, _ = _highs.run(lp, basis=basis, perturb=perturb, time_limit_s=time_limit_s)
        return sites, lp, status, x, t1 - t0, time.perf_counter() - t1

    if pool is None or len(jobs) <= 1:
        return [one(s) for s in jobs]
    return list(pool.map(one, jobs))


def _diagnose(
    pb: PlanProblem,
    sites: IntArray,
    active: BoolArray,
    fleet_active: bool,
    refs: dict[int, FloatArray],
    status: str,
) -> list[Problem]:
    """Which site, node or window made an LP fail: sites alone first, then the coupling."""
    out: list[Problem] = []
    alone_ok = np.ones(len(sites), bool)
    for k, s in enumerate(sites):
        lp = build_lp(pb, np.array([s]), np.zeros(0, np.int64), False, (), refs)
        st, _, _, _ = _highs.run(lp)
        if st != "optimal":
            alone_ok[k] = False
            out.append(
                Problem(
                    _SRC,
                    f"site {pb.sites.ids[s]}",
                    "import_limit_kw/export_limit_kw",
                    f"no plan keeps the site within its connection limits together with its "
                    f"devices' rules (EV energy by departure, comfort and tank bands) [{st}]; "
                    "check the limits against the load and PV forecasts",
                )
            )
    if out:
        return out
    for j in np.flatnonzero(active):
        members = _node_members(pb, int(j))
        if np.isin(members, sites).all():
            out.append(
                Problem(
                    _SRC,
                    f"grid node {pb.grid.ids[j]}",
                    "limit_import_kw/limit_export_kw",
                    f"no plan of the {len(members)} sites below it keeps its cap at every step "
                    f"[{status}]; raise the cap or lower the load",
                )
            )
    if fleet_active:
        out.append(Problem(_SRC, "fleet", "fleet_import_cap_kw", "no plan keeps the fleet caps"))
    if not out:
        out.append(Problem(_SRC, "plan", "", f"HiGHS returned {status}"))
    return out


def _node_members(pb: PlanProblem, j: int) -> IntArray:
    sn = pb.sites.node
    anc = np.where(sn[:, None] >= 0, pb.grid.ancestors[np.maximum(sn, 0)], -1)
    out: IntArray = np.flatnonzero((anc == j).any(axis=1))
    return out


def solve_monolithic(problem: PlanProblem) -> Plan:
    """The optimal plan of ``problem`` as one LP with every coupling constraint.

    The reference :func:`solve` is checked against on small fleets; slow on large ones.
    """
    pb = problem
    t0 = time.perf_counter()
    problems = precheck(pb)
    if problems:
        raise PlanInfeasibleError(problems)
    refs = _references(pb, 64, 1, False) if pb.windows else {}
    sites = np.arange(pb.n_sites, dtype=np.int64)
    active: BoolArray = np.asarray(
        np.isfinite(pb.grid.import_cap_kw).any(axis=1)
        | np.isfinite(pb.grid.export_cap_kw).any(axis=1),
        dtype=bool,
    )
    fleet = bool(
        np.isfinite(pb.grid.fleet_import_cap_kw).any()
        or np.isfinite(pb.grid.fleet_export_cap_kw).any()
    )
    lp = build_lp(
        pb,
        sites,
        np.flatnonzero(active).astype(np.int64),
        fleet,
        tuple(range(len(pb.windows))),
        refs,
    )
    t1 = time.perf_counter()
    status, x, _, _ = _highs.run(lp)
    if status != "optimal":
        raise PlanInfeasibleError(_diagnose(pb, sites, active, fleet, refs, status))
    acc = _Acc(pb)
    acc.put(lp, x, pb.n_steps)
    timings = {"build_s": t1 - t0, "solve_s": time.perf_counter() - t1}
    stats = {"lps": 1, "rounds": 1, "coupled_sites": pb.n_sites, "active_caps": int(active.sum())}
    plan = _assemble(pb, acc, refs, "optimal", timings, stats, ())
    timings["total_s"] = time.perf_counter() - t0
    return plan
