"""What dispatch may ask of a device under its site's grid code, as array operations.

Two kinds of rule reach dispatch, both applied to the power bands that flexibility comes
from (``fleet.flexibility``), so the allocator, tracker and every figure built on them
never ask for more:

* **Floors for controlled consumers** (§14a EnWG), when the grid operator dims: a device
  of a listed kind that draws power is never asked to draw less than
  ``min(its draw, floor_kw)``: its band's ceiling (generator sign) becomes
  ``min(ceiling, max(baseline, -floor_kw))``. The plant's own dispatch runs with the
  customer's consent and is not bound by it (``flexibility(grid_operator=True)``).
* **Generation caps per site** (EREC G98: 16 A per phase): the generating devices of a
  site are never asked to give more than ``max_site_generation_kw`` together (or what
  they give now, if more): what their ceilings would add is scaled down pro rata.

A site's own export limit (``export_limit_kw``, from its connection agreement) is a
site limit the allocator already honours.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from gridflock.domain.messages import FloatArray, IntArray, StrArray
from gridflock.gridcode._load import profiles
from gridflock.gridcode._model import Profile

__all__ = ["PlanRules", "SiteRules", "plan_rules", "site_rules"]


@dataclass(frozen=True)
class SiteRules:
    """Per-site limits from each site's code (``inf``/0 where its code sets none).

    ``gen_cap_kw`` [kW]: most the site's generators may give together;
    ``floor_kw_by_code`` [kW] and ``floor_kinds_by_code``: each code's §14a-style floor
    and the kinds it covers (``code_idx`` maps sites to codes).
    """

    codes: StrArray
    code_idx: IntArray
    gen_cap_kw: FloatArray
    floor_kw_by_code: FloatArray
    floor_kinds_by_code: tuple[frozenset[str], ...]
    _kind_floor: dict[str, FloatArray] = field(default_factory=dict, repr=False)

    @property
    def active(self) -> bool:
        """Whether any rule binds any site (else dispatch can skip the code pass)."""
        return bool(np.isfinite(self.gen_cap_kw).any() or (self.floor_kw_by_code > 0).any())

    def floor_for(self, kind: str) -> FloatArray:
        """Per-site floor [kW] that applies to devices of ``kind`` (0 where none)."""
        got = self._kind_floor.get(kind)
        if got is None:
            per_code = np.array(
                [
                    f if kind in kinds else 0.0
                    for f, kinds in zip(
                        self.floor_kw_by_code, self.floor_kinds_by_code, strict=True
                    )
                ]
                + [0.0]
            )
            got = per_code[self.code_idx]
            self._kind_floor[kind] = got
        return got

    def clip_floor(
        self,
        kind: str,
        band_floor: FloatArray,
        ceiling: FloatArray,
        baseline: FloatArray,
        site_idx: IntArray,
    ) -> FloatArray:
        """Ceiling of a consumer's band under its code floor (generator sign).

        A device drawing ``-baseline`` kW is not asked to draw less than
        ``min(-baseline, floor_kw)``. The band's own floor wins where the two disagree
        (a house that must cool less to stay in its comfort band): the ceiling never
        drops below ``band_floor``. NaN stays NaN.
        """
        floor = self.floor_for(kind)[site_idx]
        if not (floor > 0).any():
            return ceiling
        cap = np.where(floor > 0, np.maximum(baseline, -floor), np.inf)
        out: FloatArray = np.maximum(np.minimum(ceiling, cap), band_floor)
        return out

    def cap_generation(
        self, ceiling: FloatArray, baseline: FloatArray, site_idx: IntArray
    ) -> FloatArray:
        """Ceilings under each site's generation cap (generator sign, every device).

        What the generators give now (``max(baseline, 0)``, NaN as 0) is left alone; the
        extra a higher ceiling would add is scaled pro rata so a site's generation never
        goes past ``max(cap, what it gives now)``.
        """
        cap = self.gen_cap_kw
        if not np.isfinite(cap).any():
            return ceiling
        now = np.fmax(baseline, 0.0)
        extra = np.fmax(ceiling - now, 0.0)  # NaN ceiling -> 0
        given = np.bincount(site_idx, weights=now, minlength=len(cap))
        wanted = np.bincount(site_idx, weights=extra, minlength=len(cap))
        room = np.maximum(cap - given, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = np.where(wanted > room, room / wanted, 1.0)
        out: FloatArray = np.where(
            ceiling > 0, np.minimum(ceiling, now + extra * factor[site_idx]), ceiling
        )
        return out


def site_rules(codes: StrArray) -> SiteRules:
    """The rules of every site from its code (an unknown or empty code sets none)."""
    known = profiles()
    names = tuple(known)
    lookup = {c: i for i, c in enumerate(names)}
    codes = np.asarray(codes, dtype=object)
    uniq, inv = np.unique(codes.astype(str), return_inverse=True)
    idx_u = np.array([lookup.get(str(u), len(names)) for u in uniq], dtype=np.int64)
    code_idx = idx_u[inv] if len(codes) else np.zeros(0, dtype=np.int64)
    gen = np.array([p.export.max_site_generation_kw or np.inf for p in known.values()] + [np.inf])
    floor = np.array([p.control.floor_kw or 0.0 for p in known.values()])
    kinds = tuple(frozenset(p.control.floor_kinds) for p in known.values())
    return SiteRules(codes, code_idx, gen[code_idx], floor, kinds)


@dataclass(frozen=True)
class PlanRules:
    """What each site's code lets a plan schedule (inf where its code sets nothing).

    ``gen_cap_kw`` [kW]: most the site's generators may give together (EREC G98);
    ``export_cap_kw`` [kW]: most the site may export under the code itself;
    ``ramp_pu_per_s`` [pu of rated per s]: fastest change of a controlled inverter's
    power (AS/NZS 4777.2 power rate limit).
    """

    gen_cap_kw: FloatArray
    export_cap_kw: FloatArray
    ramp_pu_per_s: FloatArray


def plan_rules(codes: StrArray, known: Mapping[str, Profile] | None = None) -> PlanRules:
    """The planning rules of every site from its code (``known``: the shipped profiles)."""
    known = profiles() if known is None else known
    table = {
        c: (
            p.export.max_site_generation_kw or np.inf,
            np.inf if p.export.max_site_export_kw is None else p.export.max_site_export_kw,
            p.control.ramp_pu_per_s or np.inf,
        )
        for c, p in known.items()
    }
    none = (np.inf, np.inf, np.inf)
    rows = np.array([table.get(str(c), none) for c in np.asarray(codes, dtype=object)], float)
    rows = rows.reshape(-1, 3)
    return PlanRules(rows[:, 0].copy(), rows[:, 1].copy(), rows[:, 2].copy())
