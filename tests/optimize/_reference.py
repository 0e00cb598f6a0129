"""A plain reference LP of a PlanProblem, written independently of gridflock.optimize._lp.

Loops over sites, devices and steps, one named variable at a time, gross import and export
per site (not the net/excess split the optimiser uses), SoC as a fraction, solved by
``scipy.optimize.linprog(method="highs")``. Every grid-node cap, fleet cap and window is
in one LP (no decomposition).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.optimize import linprog

from gridflock.domain.spec import FleetSpec, build_spec
from gridflock.optimize import PlanProblem


class _Model:
    def __init__(self) -> None:
        self.names: dict[tuple, int] = {}
        self.lb: list[float] = []
        self.ub: list[float] = []
        self.c: list[float] = []
        self.eq: list[tuple[dict[int, float], float]] = []
        self.ub_rows: list[tuple[dict[int, float], float]] = []
        self.const = 0.0

    def var(self, key: tuple, lb: float, ub: float, cost: float = 0.0) -> int:
        self.names[key] = len(self.lb)
        self.lb.append(lb)
        self.ub.append(ub)
        self.c.append(cost)
        return self.names[key]

    def solve(self) -> tuple[float, dict[tuple, float]]:
        n = len(self.c)

        def mat(rows: list[tuple[dict[int, float], float]]):
            if not rows:
                return None, None
            m = sp.lil_matrix((len(rows), n))
            for i, (coefs, _) in enumerate(rows):
                for j, v in coefs.items():
                    m[i, j] += v
            return m.tocsr(), np.array([r for _, r in rows])

        a_eq, b_eq = mat(self.eq)
        a_ub, b_ub = mat(self.ub_rows)
        bounds = [
            (None if not np.isfinite(lo) else lo, None if not np.isfinite(hi) else hi)
            for lo, hi in zip(self.lb, self.ub, strict=True)
        ]
        res = linprog(
            self.c, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs"
        )
        if res.status != 0:
            raise RuntimeError(f"reference LP: {res.message}")
        return float(res.fun) + self.const, {k: float(res.x[i]) for k, i in self.names.items()}


def reference_optimum(pb: PlanProblem) -> tuple[float, dict[tuple, float]]:
    """The optimum [EUR] of ``pb`` and the value of every named variable."""
    m = _Model()
    dt, tn = pb.step_h, pb.n_steps
    tar = pb.tariff
    site_terms: dict[tuple[int, int], dict[int, float]] = {
        (s, t): {} for s in range(pb.n_sites) for t in range(tn)
    }
    base = pb.sites.load_kw.copy()
    for r in range(len(pb.renewables)):
        s = int(pb.renewables.site[r])
        for t in range(tn):
            avail = float(pb.renewables.avail_kw[r, t])
            base[s, t] -= avail
            if pb.renewables.curtailable[r]:
                j = m.var(("u", r, t), 0.0, avail, tar.curtailment_cost_per_kwh * dt)
                site_terms[s, t][j] = 1.0
    bt = pb.batteries
    for i in range(len(bt)):
        s, e = int(bt.site[i]), float(bt.e_kwh[i])
        lo = min(bt.soc_floor[i], bt.soc0[i])
        hi = max(bt.soc_max[i], bt.soc0[i])
        prev = None
        for t in range(tn):
            c = m.var(("c", i, t), 0.0, bt.p_charge_max_kw[i], bt.wear_per_kwh[i] * dt)
            d = m.var(("d", i, t), 0.0, bt.p_discharge_max_kw[i], bt.wear_per_kwh[i] * dt)
            lo_t = lo
            if t == tn - 1 and np.isfinite(bt.soc_end_min[i]):
                lo_t = max(lo, bt.soc_end_min[i])
            soc = m.var(("soc", i, t), lo_t, hi)
            # soc_t - soc_{t-1} - (eta_c c - d / eta_d) dt / E = 0
            row = {soc: 1.0, c: -bt.eta_charge[i] * dt / e, d: dt / (bt.eta_discharge[i] * e)}
            if prev is None:
                m.eq.append((row, float(bt.soc0[i])))
            else:
                row[prev] = -1.0
                m.eq.append((row, 0.0))
            prev = soc
            site_terms[s, t][c] = site_terms[s, t].get(c, 0.0) + 1.0
            site_terms[s, t][d] = site_terms[s, t].get(d, 0.0) - 1.0
    ev = pb.evs
    for i in range(len(ev)):
        s = int(ev.site[i])
        energy: dict[int, float] = {}
        for t in range(tn):
            p = m.var(("ev", i, t), 0.0, ev.p_max_kw[i] if ev.plugged[i, t] else 0.0)
            energy[p] = ev.eta[i] * dt
            site_terms[s, t][p] = 1.0
        m.ub_rows.append((energy, float(ev.e_need_kwh[i])))
        m.ub_rows.append(({k: -v for k, v in energy.items()}, -float(ev.e_min_kwh[i])))
    th = pb.thermal
    t_lo, t_hi = th.bounds()  # the band, or its best-effort widening
    for i in range(len(th)):
        s = int(th.site[i])
        prev = None
        for t in range(tn):
            k = float(th.heat_per_kw[i, t])
            p = m.var(("th", i, t), 0.0, th.p_max_kw[i] if k != 0.0 else 0.0)
            temp = m.var(("T", i, t), t_lo[i, t], t_hi[i, t])
            rhs = (1 - th.a[i]) * th.t_env_c[i, t] + th.b[i] * th.q_free_kw[i, t]
            row = {temp: 1.0, p: -th.b[i] * k}
            if prev is None:
                rhs += th.a[i] * th.t0_c[i]
            else:
                row[prev] = -th.a[i]
            m.eq.append((row, float(rhs)))
            prev = temp
            site_terms[s, t][p] = 1.0
    # gross import and export per site: imp - exp = base + terms
    net_terms: dict[tuple[int, int], dict[int, float]] = {}
    for s in range(pb.n_sites):
        peak = None
        if tar.peak_price_per_kw[s] > 0:
            peak = m.var(("peak", s), 0.0, np.inf, float(tar.peak_price_per_kw[s]))
        for t in range(tn):
            imp_lim = np.broadcast_to(pb.sites.import_limit_kw[s], (tn,))[t]  # static or per step
            exp_lim = np.broadcast_to(pb.sites.export_limit_kw[s], (tn,))[t]
            imp = m.var(("imp", s, t), 0.0, imp_lim, tar.import_price[s, t] * dt)
            exp = m.var(("exp", s, t), 0.0, exp_lim, -tar.export_price[s, t] * dt)
            row = {imp: 1.0, exp: -1.0}
            for j, v in site_terms[s, t].items():
                row[j] = row.get(j, 0.0) - v
            m.eq.append((row, float(base[s, t])))
            net_terms[s, t] = {imp: 1.0, exp: -1.0}
            if peak is not None:  # imp - peak <= threshold
                m.ub_rows.append(({imp: 1.0, peak: -1.0}, float(tar.peak_threshold_kw[s])))

    def members_of(node: int) -> list[int]:
        out = []
        for s in range(pb.n_sites):
            j = int(pb.sites.node[s])
            while j >= 0:
                if j == node:
                    out.append(s)
                    break
                parents = pb.grid.ancestors[j]
                j = int(parents[1]) if len(parents) > 1 else -1
        return out

    def cap(sites: list[int], imp_cap: np.ndarray, exp_cap: np.ndarray) -> None:
        for t in range(tn):
            row: dict[int, float] = {}
            for s in sites:
                for j, v in net_terms[s, t].items():
                    row[j] = row.get(j, 0.0) + v
            if np.isfinite(imp_cap[t]):
                m.ub_rows.append((row, float(imp_cap[t])))  # net import <= cap
            if np.isfinite(exp_cap[t]):
                m.ub_rows.append(({k: -v for k, v in row.items()}, float(exp_cap[t])))

    for j in range(len(pb.grid)):
        cap(members_of(j), pb.grid.import_cap_kw[j], pb.grid.export_cap_kw[j])
    cap(list(range(pb.n_sites)), pb.grid.fleet_import_cap_kw, pb.grid.fleet_export_cap_kw)
    for wi, w in enumerate(pb.windows):
        sites = (
            list(range(pb.n_sites))
            if w.node is None
            else members_of(int(np.flatnonzero(pb.grid.ids == w.node)[0]))
        )
        assert w.reference_kw is not None
        for t in range(w.start, w.end):
            v = m.var(("w", wi, t), -np.inf, w.kw, -(w.value_per_kwh + w.penalty_per_kwh) * dt)
            m.const += w.penalty_per_kwh * w.kw * dt
            # w <= -(net import summed) - reference
            row = {v: 1.0}
            for s in sites:
                for j, c in net_terms[s, t].items():
                    row[j] = row.get(j, 0.0) + c
            m.ub_rows.append((row, -float(w.reference_kw[t - w.start])))
    return m.solve()


def small_fleet(
    rng: np.random.Generator, n_sites: int, *, caps: bool = True, kinds: tuple[str, ...] = ()
) -> FleetSpec:
    """A random small fleet: two levels of grid nodes, sites at mixed depths, mixed devices."""
    kinds = kinds or ("battery", "pv", "ev_charger", "heat_pump", "water_heater", "load", "wind")
    cap = (lambda lo, hi: float(rng.uniform(lo, hi))) if caps else (lambda lo, hi: 1e6)
    nodes = [
        {
            "id": "tr",
            "kind": "transformer",
            "limit_import_kw": cap(3, 15) * n_sites,
            "limit_export_kw": cap(3, 15) * n_sites,
        },
        {
            "id": "fa",
            "kind": "feeder",
            "parent": "tr",
            "limit_import_kw": cap(2, 12) * n_sites,
            "limit_export_kw": cap(2, 12) * n_sites,
        },
    ]
    sites, devices = [], []
    for s in range(n_sites):
        sid = f"s{s}"
        sites.append(
            {
                "id": sid,
                "lat": 48.0,
                "lon": 11.0,
                "grid_node": "fa" if s % 3 else "tr",
                "import_limit_kw": float(rng.uniform(12, 30)),
                "export_limit_kw": float(rng.uniform(3, 12)),
                "tz": "Europe/Berlin",
            }
        )
        for kind in kinds:
            if rng.random() < 0.5:
                continue
            d = {"id": f"{sid}-{kind}", "site_id": sid, "kind": kind}
            if kind == "battery":
                e = float(rng.uniform(2, 12))
                d |= {
                    "e_kwh": e,
                    "p_charge_max_kw": e / 2,
                    "p_discharge_max_kw": e / 2,
                    "eta_charge": float(rng.uniform(0.85, 1.0)),
                    "eta_discharge": float(rng.uniform(0.85, 1.0)),
                    "soc_reserve": float(rng.uniform(0.05, 0.3)),
                    "soc_initial": float(rng.uniform(0.3, 0.9)),
                }
            elif kind == "pv":
                d |= {"kwp": float(rng.uniform(2, 9)), "curtailable": bool(rng.random() < 0.7)}
            elif kind == "wind":
                d |= {"rated_kw": float(rng.uniform(1, 5))}
            elif kind == "ev_charger":
                d |= {
                    "p_max_kw": float(rng.choice([3.7, 7.4, 11.0])),
                    "session_kwh": float(rng.uniform(1, 10)),
                }
            elif kind == "heat_pump":
                d |= {
                    "p_elec_max_kw": float(rng.uniform(2, 5)),
                    "ua_kw_per_k": 0.15,
                    "c_kwh_per_k": float(rng.uniform(4, 10)),
                }
            elif kind == "water_heater":
                d |= {"volume_l": float(rng.uniform(100, 300)), "p_element_kw": 3.0}
            elif kind == "load":
                d |= {"annual_kwh": 3000.0}
            devices.append(d)
    return build_spec(nodes, sites, pd.DataFrame(devices) if devices else [], source="test")
