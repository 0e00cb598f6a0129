"""Fleet validation against the grid codes: which sites and devices break their profile.

``check_fleet(spec)`` returns every finding at once, each with the entry, the field, the
clause it breaks and what to do. Errors are breaches (a fleet file with one is refused);
warnings are things an operator should know (no code for a site, a device that cannot
keep a control floor).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from gridflock.domain.kinds import DeviceKind, kind_decl
from gridflock.domain.messages import IntArray, StrArray
from gridflock.domain.spec import FleetSpec
from gridflock.gridcode._assign import site_codes
from gridflock.gridcode._load import profiles
from gridflock.gridcode._model import Profile

__all__ = ["CodeIssue", "check_fleet"]

#: The attribute that sets each generating kind's largest output.
_GEN_FIELD = {"battery": "p_discharge_max_kw", "pv": "kwp", "wind": "rated_kw"}


@dataclass(frozen=True)
class CodeIssue:
    """One finding: ``entry`` (``site S`` or ``<kind> D``), the field, clause and message."""

    severity: Literal["error", "warning"]
    entry: str
    field: str
    clause: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.entry}: {self.field}: {self.message} [{self.clause}]"


def check_fleet(spec: FleetSpec) -> list[CodeIssue]:
    """Check every site and device of ``spec`` against its site's grid code."""
    known = profiles()
    sites = spec.sites
    codes = site_codes(sites)
    site_ids = sites["id"].to_numpy(dtype=object)
    issues: list[CodeIssue] = []
    given = (
        sites["grid_code"].fillna("").astype(str).str.strip().to_numpy(dtype=object)
        if "grid_code" in sites.columns
        else np.full(len(sites), "", dtype=object)
    )
    for i in np.flatnonzero((given != "") & ~np.isin(given.astype(str), list(known))):
        issues.append(
            CodeIssue(
                "error",
                f"site {site_ids[i]}",
                "grid_code",
                "grid code list",
                f"unknown grid code {given[i]!r}; use one of {', '.join(known)}",
            )
        )
    for i in np.flatnonzero(codes == ""):
        issues.append(
            CodeIssue(
                "warning",
                f"site {site_ids[i]}",
                "grid_code",
                "docs/grid-codes.md, how a site gets its code",
                "no grid code: its position lies in no known region and none is given; "
                "set grid_code so dispatch can respect the local rules",
            )
        )
    issues += _generation_caps(spec, codes, site_ids)
    issues += _floors(spec, codes)
    return issues


def _site_index(spec: FleetSpec, kind: DeviceKind) -> IntArray:
    pos = pd.Index(spec.sites["id"].to_numpy(dtype=object))
    return np.asarray(pos.get_indexer(spec.devices[kind]["site_id"].to_numpy(dtype=object)))


def _generation_caps(spec: FleetSpec, codes: StrArray, site_ids: StrArray) -> list[CodeIssue]:
    """Devices at sites whose generating capacity exceeds their code's cap."""
    known = profiles()
    cap = np.array([_cap(known, str(c)) for c in codes], dtype=np.float64)
    if not np.isfinite(cap).any():
        return []
    total = np.zeros(len(codes))
    per_kind = {}
    for kind in DeviceKind:
        df = spec.devices.get(kind)
        if df is None or not len(df) or kind.value not in _GEN_FIELD:
            continue
        gen = np.asarray(kind_decl(kind).state_columns(df)["p_gen_max_kw"], dtype=np.float64)
        idx = _site_index(spec, kind)
        total += np.bincount(idx, weights=gen, minlength=len(codes))
        per_kind[kind] = (df, gen, idx)
    over = total > cap + 1e-9
    issues = []
    for kind, (df, gen, idx) in per_kind.items():
        for j in np.flatnonzero(over[idx] & (gen > 0)):
            s = idx[j]
            p = known[str(codes[s])]
            issues.append(
                CodeIssue(
                    "error",
                    f"{kind.value} {df['id'].iloc[j]}",
                    _GEN_FIELD[kind.value],
                    p.export.clause,
                    f"site {site_ids[s]} under {p.code} may have {cap[s]:g} kW of generation; "
                    f"its devices give {total[s]:.2f} kW (this one {gen[j]:.2f} kW). Connect "
                    "the site under a code without the cap (grid_code) or reduce the rating",
                )
            )
    return issues


def _cap(known: dict[str, Profile], code: str) -> float:
    p = known.get(code)
    if p is None or p.export.max_site_generation_kw is None:
        return float("inf")
    return p.export.max_site_generation_kw


def _floors(spec: FleetSpec, codes: StrArray) -> list[CodeIssue]:
    """Controlled consumers whose minimum power lies above their code's floor."""
    issues = []
    for code, p in profiles().items():
        floor = p.control.floor_kw
        if not floor:
            continue
        for kind_name in p.control.floor_kinds:
            df = spec.devices.get(DeviceKind(kind_name))
            if df is None or not len(df) or "p_min_kw" not in df.columns:
                continue
            at = codes[_site_index(spec, DeviceKind(kind_name))] == code
            p_min = df["p_min_kw"].to_numpy(dtype=np.float64)
            for j in np.flatnonzero(at & (p_min > floor)):
                issues.append(
                    CodeIssue(
                        "warning",
                        f"{kind_name} {df['id'].iloc[j]}",
                        "p_min_kw",
                        p.control.clause,
                        f"minimum power {p_min[j]:g} kW lies above the {floor:g} kW a "
                        f"controlled device keeps under {code}: dimmed, it stops instead",
                    )
                )
    return issues
