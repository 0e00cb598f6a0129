"""The simulated devices' DER curve models 705 (volt-var), 706 (volt-watt), 711 (droop).

Built from pysunspec2's model definitions like the rest of the map: ``n_curves`` stored
curves (controls for 711) of ``n_points`` points each; the first is the one in force and
read-only, as on real inverters. A write of ``AdptCrvReq`` / ``AdptCtlReq`` = k copies
curve k into the first and sets the result to completed, or to failed when the curve has
fewer than two active points or voltages that do not rise. Every write is checked as a
device checks it: voltages within 50..150 % VNom, percentages within ±100 %, ``ActPt``
within ``NPt``, the active curve left alone; a refused write changes nothing.
"""

from __future__ import annotations

import itertools
from typing import Any

import sunspec2.device as ssdev

__all__ = ["DER_MODELS", "DerModels", "der_model"]

DER_MODELS = (705, 706, 711)
_COMPLETED, _FAILED = 1, 2


def der_model(model_id: int, n_curves: int = 3, n_points: int = 4) -> Any:
    """A model 705, 706 or 711 with its factory curves (flat, disabled)."""
    if model_id not in DER_MODELS:
        raise ValueError(f"model {model_id} is not a DER curve model; use one of {DER_MODELS}")
    if not 1 <= n_curves <= 10 or not 2 <= n_points <= 10:
        raise ValueError(f"1-10 curves of 2-10 points, got {n_curves} of {n_points}")
    if model_id == 711:
        ctl = [
            {"DbOf": 36, "DbUf": 36, "KOf": 50, "KUf": 50, "RspTms": 50, "PMin": 0, "ReadOnly": 0}
            for _ in range(n_curves)
        ]
        ctl[0]["ReadOnly"] = 1
        data: dict[str, Any] = {
            "ID": 711,
            "Ena": 0,
            "AdptCtlReq": 0,
            "AdptCtlRslt": _COMPLETED,
            "NCtl": n_curves,
            "RvrtTms": 0,
            "RvrtRem": 0,
            "RvrtCtl": 0,
            "Db_SF": -3,
            "K_SF": -3,
            "RspTms_SF": -1,
            "Ctl": ctl,
        }
    else:
        y = "Var" if model_id == 705 else "W"
        crv = [
            {
                "ActPt": 2,
                "DeptRef": 1 if model_id == 705 else 0,
                "RspTms": 100,
                "ReadOnly": 0,
                "Pt": [{"V": 9000 + 500 * k, y: 0} for k in range(n_points)],
            }
            for _ in range(n_curves)
        ]
        crv[0]["ReadOnly"] = 1
        if model_id == 705:
            for c in crv:
                c.update({"Pri": 1, "VRef": 10000, "VRefAuto": 10000, "VRefAutoEna": 0})
        data = {
            "ID": model_id,
            "Ena": 0,
            "AdptCrvReq": 0,
            "AdptCrvRslt": _COMPLETED,
            "NPt": n_points,
            "NCrv": n_curves,
            "RvrtTms": 0,
            "RvrtRem": 0,
            "RvrtCrv": 0,
            "V_SF": -2,
            "DeptRef_SF": -2,
            "RspTms_SF": -1,
            "Crv": crv,
        }
    return ssdev.Model(model_id=model_id, data=data)


def _group(model: Any) -> tuple[str, str, str]:
    if model.model_id == 711:
        return "Ctl", "AdptCtlReq", "AdptCtlRslt"
    return "Crv", "AdptCrvReq", "AdptCrvRslt"


def _values(g: Any) -> dict[str, Any]:
    return {k: v for k, v in g.get_dict().items() if k != "ReadOnly"}


class DerModels:
    """Keeps a unit's DER models consistent: checks writes, adopts requested curves."""

    def __init__(self, models: list[Any]) -> None:
        self.models = {m.model_id: m for m in models if m.model_id in DER_MODELS}
        self._active = {mid: _values(m.groups[_group(m)[0]][0]) for mid, m in self.models.items()}

    def check(self, model: Any) -> str | None:
        """Why a write to a DER model is refused (None: accepted)."""
        mid = model.model_id
        if mid not in self.models:
            return None
        name, req, _ = _group(model)
        groups = model.groups[name]
        if _values(groups[0]) != self._active[mid]:
            return "the active curve is read-only: write another and adopt it"
        k = model.points[req].value or 0
        if not 0 <= k <= len(groups):
            return f"{req} {k}: no such curve"
        if model.Ena.value not in (0, 1):
            return f"Ena {model.Ena.value} is neither 0 nor 1"
        for g in groups:  # each value within its range; the shape is checked on adoption
            why = _check_710(g) if mid == 711 else _check_values(model, g)
            if why:
                return why
        return None

    def written(self, model: Any) -> None:
        """Adopt a requested curve into the active slot."""
        mid = model.model_id
        if mid not in self.models:
            return
        name, req, rslt = _group(model)
        k = model.points[req].value or 0
        model.points[req].value = 0
        if k >= 2 and name == "Crv" and _check_curve(model, model.groups[name][k - 1]):
            model.points[rslt].value = _FAILED
            return
        if k >= 2:
            groups = model.groups[name]
            src, dst = groups[k - 1], groups[0]
            for pname, p in src.points.items():
                if pname != "ReadOnly":
                    dst.points[pname].value = p.value
            if name == "Crv":
                for a, b in zip(src.Pt, dst.Pt, strict=True):
                    for pname, p in a.points.items():
                        b.points[pname].value = p.value
            self._active[mid] = _values(dst)
        model.points[rslt].value = _COMPLETED


def _check_values(model: Any, g: Any) -> str | None:
    """Each point of a stored curve within its range (% VNom, % of the reference)."""
    if not 0 <= g.ActPt.value <= int(model.NPt.value):
        return f"ActPt {g.ActPt.value} outside 0..{model.NPt.value}"
    y = "Var" if model.model_id == 705 else "W"
    vs = [p.V.cvalue for p in g.Pt]
    if not all(50.0 <= v <= 150.0 for v in vs):
        return f"voltages outside 50..150 % VNom: {vs}"
    ys = [p.points[y].cvalue for p in g.Pt]
    if not all(-100.0 <= v <= 100.0 for v in ys):
        return f"{y} outside -100..100 %: {ys}"
    return None


def _check_curve(model: Any, g: Any) -> str | None:
    """Why a curve cannot be adopted: too few points, voltages not rising."""
    n = g.ActPt.value
    if not 2 <= n <= int(model.NPt.value):
        return f"ActPt {n} outside 2..{model.NPt.value}"
    vs = [g.Pt[k].V.cvalue for k in range(n)]
    if any(b <= a for a, b in itertools.pairwise(vs)):
        return f"voltages must rise: {vs}"
    return None


def _check_710(g: Any) -> str | None:
    db = (g.DbOf.cvalue, g.DbUf.cvalue)
    if not all(0.0 <= v <= 5.0 for v in db):
        return f"deadbands outside 0..5 Hz: {db}"
    k = (g.KOf.cvalue, g.KUf.cvalue)
    if not all(0.0 < v <= 1.0 for v in k):
        return f"change ratios outside (0, 1]: {k}"
    return None
