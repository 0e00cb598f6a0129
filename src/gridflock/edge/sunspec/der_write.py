"""Write a device's grid-code curves to its SunSpec DER models 705, 706 and 711, and verify.

Each model keeps several curves (controls for 711); the first is the one in force and is
usually read-only. The writer fills the first writable curve with the settings in the
model's units, asks the device to adopt it (``AdptCrvReq`` / ``AdptCtlReq`` = its index)
when it is not the active one, waits for ``AdptCrvRslt`` = completed, sets ``Ena``, then
reads the model back and checks the active curve against what was meant.

Units (as the models define them): voltage in % of the nominal voltage (``VNomPct``);
model 705 reactive power in % of ``VarMax`` (``DeptRef`` = ``VAR_MAX_PCT``, taken as the
rated apparent power the profile's per-unit figures refer to); model 706 active power in
% of ``WMax`` (``W_MAX_PCT``); model 711 deadbands in Hz and the change ratios ``KOf`` /
``KUf`` as per-unit droop (0.05 = 5 %). Scale factors are the device's own (pysunspec2).

Nothing outside a model's ranges is written: percentages beyond ±100 % are clipped with a
logged reason; a value the register cannot hold at the device's scale factor, or a curve
with more points than the device takes, refuses that model (the others still go).
Blocking I/O: run in a worker thread under the device's lock.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from gridflock.edge.der import DerSettings
from gridflock.gridcode import Curve, FreqWatt

__all__ = ["DER_CURVE_MODELS", "DerOutcome", "DerVerifyError", "DerWriteError", "write_der"]

log = logging.getLogger(__name__)

#: The DER curve models the gateway writes: volt-var, volt-watt, frequency droop.
DER_CURVE_MODELS = (705, 706, 711)
_VAR_MAX_PCT = 1  # model 705 DeptRef
_W_MAX_PCT = 0  # model 706 DeptRef
_READ_ONLY = 1
_IN_PROGRESS, _COMPLETED = 0, 1
#: Largest raw values by point type (the all-ones value means "not implemented").
_RAW = {"uint16": (0, 0xFFFE), "int16": (-0x7FFF, 0x7FFF), "uint32": (0, 0xFFFFFFFE)}
_ADOPT_WAIT_S = 2.0


class DerWriteError(Exception):
    """A model's settings are refused before writing: outside what the device can hold."""


class DerVerifyError(DerWriteError):
    """The device did not adopt the settings or they did not read back as written."""


@dataclass(frozen=True)
class DerOutcome:
    """What happened to one DER model of one device."""

    model: int
    #: verified (written, adopted, read back), absent (the device lacks the model),
    #: refused (not written: beyond the device's registers), failed (the device refused,
    #: did not adopt or reads back otherwise), not_configured (no setting for it)
    status: str
    detail: str = ""

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready view."""
        return {"model": self.model, "status": self.status, "detail": self.detail}


def _raw(point: Any, value: float, sf: int | None, what: str) -> int:
    """The register value of ``value`` at scale factor ``sf``; DerWriteError if it cannot."""
    raw = round(value / 10.0**sf) if sf is not None else round(value)
    lo, hi = _RAW[str(point.pdef["type"])]
    if not lo <= raw <= hi:
        raise DerWriteError(
            f"{what} {value:.6g} does not fit the register at scale factor {sf} "
            f"(raw {raw} outside {lo}..{hi})"
        )
    return raw


def _sf(model: Any, name: str) -> int | None:
    v = model.points[name].value
    return None if v is None else int(v)


def _pct(value_pu: float, what: str, lo: float = -100.0, hi: float = 100.0) -> float:
    pct = 100.0 * value_pu
    if not lo <= pct <= hi:
        clipped = min(max(pct, lo), hi)
        log.warning("%s %.6g %% clipped to %.6g %%: outside the model's range", what, pct, clipped)
        return clipped
    return pct


def _slot(groups: list[Any]) -> int:
    """Index (0-based) of the curve to write: the first writable one after the active one."""
    for i in [*range(1, len(groups)), 0]:
        if groups[i].ReadOnly.value != _READ_ONLY:
            return int(i)
    raise DerWriteError("every stored curve is read-only")


def _adopt(model: Any, slot: int, req: str, rslt: str) -> None:
    if slot == 0:
        return
    model.points[req].value = slot + 1
    model.write()
    deadline = time.monotonic() + _ADOPT_WAIT_S
    while True:
        model.read()
        r = model.points[rslt].value
        if r == _COMPLETED:
            return
        if r != _IN_PROGRESS or time.monotonic() > deadline:
            raise DerVerifyError(f"the device did not adopt curve {slot + 1} ({rslt} = {r})")
        time.sleep(0.05)


def _check(point: Any, raw: int, what: str) -> None:
    if point.value != raw:
        raise DerVerifyError(f"{what} reads back as {point.value}, written {raw}")


def _write_curve(
    model: Any, curve: Curve, y_name: str, dept_ref: int, y_lo: float, write: bool = True
) -> str:
    """Write (``write``) and verify, or only verify, one volt-var or volt-watt curve."""
    mid = model.model_id
    model.read()
    npt = int(model.NPt.value or 0)
    n = len(curve.x)
    if n > npt:
        raise DerWriteError(f"the curve has {n} points, the device takes at most {npt}")
    groups = model.groups["Crv"]
    slot = _slot(groups)
    c = groups[slot]
    v_sf, y_sf, t_sf = _sf(model, "V_SF"), _sf(model, "DeptRef_SF"), _sf(model, "RspTms_SF")
    want: list[tuple[str, int]] = []
    for k in range(n):
        pt = c.Pt[k]
        v_raw = _raw(pt.V, 100.0 * curve.x[k], v_sf, f"model {mid} point {k + 1} V [% VNom]")
        y_pct = _pct(curve.y[k], f"model {mid} point {k + 1} {y_name}", lo=y_lo)
        y_raw = _raw(pt.points[y_name], y_pct, y_sf, f"model {mid} point {k + 1} {y_name} [%]")
        if write:
            pt.V.value, pt.points[y_name].value = v_raw, y_raw
        want += [(f"Pt[{k}].V", v_raw), (f"Pt[{k}].{y_name}", y_raw)]
    if write:
        c.ActPt.value = n
        c.DeptRef.value = dept_ref
    t_raw = _raw(c.RspTms, curve.response_s, t_sf, f"model {mid} RspTms [s]")
    if write:
        c.RspTms.value = t_raw
        model.write()
        _adopt(model, slot, "AdptCrvReq", "AdptCrvRslt")
        model.Ena.value = 1 if curve.enabled else 0
        model.write()
        model.read()
    act = model.groups["Crv"][0]
    _check(act.ActPt, n, f"model {mid} ActPt")
    _check(act.DeptRef, dept_ref, f"model {mid} DeptRef")
    _check(act.RspTms, t_raw, f"model {mid} RspTms")
    for k in range(n):
        _check(act.Pt[k].V, want[2 * k][1], f"model {mid} point {k + 1} V")
        _check(act.Pt[k].points[y_name], want[2 * k + 1][1], f"model {mid} point {k + 1} {y_name}")
    _check(model.Ena, 1 if curve.enabled else 0, f"model {mid} Ena")
    return f"{n} points, {'enabled' if curve.enabled else 'written, disabled by the code'}"


def _write_droop(
    model: Any, fw: FreqWatt, enabled: bool, uf_off_hz: float | None, write: bool = True
) -> str:
    """Write (``write``) and verify, or only verify, the frequency droop."""
    model.read()
    groups = model.groups["Ctl"]
    slot = _slot(groups)
    c = groups[slot]
    db_sf, k_sf, t_sf = _sf(model, "Db_SF"), _sf(model, "K_SF"), _sf(model, "RspTms_SF")
    note = ""
    db_uf, k_uf = fw.db_under_hz, fw.droop_under
    if db_uf is None or k_uf is None:
        # model 711 has no separate under-frequency switch: no response within continuous
        # operation, where the code asks none
        db_uf = uf_off_hz if uf_off_hz is not None else 2.0
        k_uf = fw.droop_over
        note = f"; no under-frequency response asked: DbUf set to {db_uf:.3g} Hz"
    vals = {
        "DbOf": _raw(c.DbOf, fw.db_over_hz, db_sf, "model 711 DbOf [Hz]"),
        "DbUf": _raw(c.DbUf, db_uf, db_sf, "model 711 DbUf [Hz]"),
        "KOf": _raw(c.KOf, fw.droop_over, k_sf, "model 711 KOf"),
        "KUf": _raw(c.KUf, k_uf, k_sf, "model 711 KUf"),
        "RspTms": _raw(c.RspTms, fw.response_s, t_sf, "model 711 RspTms [s]"),
    }
    for name in ("KOf", "KUf"):
        if vals[name] == 0:
            raise DerWriteError(f"model 711 {name} rounds to 0 at scale factor {k_sf}")
    if write:
        for name, raw in vals.items():
            c.points[name].value = raw
        model.write()
        _adopt(model, slot, "AdptCtlReq", "AdptCtlRslt")
        model.Ena.value = 1 if enabled else 0
        model.write()
        model.read()
    act = model.groups["Ctl"][0]
    for name, raw in vals.items():
        _check(act.points[name], raw, f"model 711 {name}")
    _check(model.Ena, 1 if enabled else 0, "model 711 Ena")
    return f"{'enabled' if enabled else 'written, disabled'}{note}"


def write_der(
    models: dict[int, Any], s: DerSettings, where: str, write: bool = True
) -> list[DerOutcome]:
    """Write and verify every DER function ``s`` gives on the models the device offers.

    ``write=False`` only reads the models and checks that the active curves are still
    what ``s`` asks (a device reset, or another tool, may have changed them): a model
    that differs comes back ``failed``.
    """
    jobs: list[tuple[int, Any]] = [
        (705, s.volt_var),
        (706, s.volt_watt),
        (711, s.freq_droop),
    ]
    out: list[DerOutcome] = []
    warn, err = (logging.WARNING, logging.ERROR) if write else (logging.DEBUG, logging.DEBUG)
    for mid, setting in jobs:
        if setting is None:
            out.append(DerOutcome(mid, "not_configured"))
            continue
        if mid not in models:
            log.log(
                warn,
                "%s: no SunSpec model %d; its %s settings are not written",
                where,
                mid,
                s.source,
            )
            out.append(DerOutcome(mid, "absent", f"the device lacks model {mid}"))
            continue
        m = models[mid]
        try:
            if mid == 705:
                detail = _write_curve(m, setting, "Var", _VAR_MAX_PCT, -100.0, write)
            elif mid == 706:
                detail = _write_curve(m, setting, "W", _W_MAX_PCT, -100.0, write)
            else:
                detail = _write_droop(m, setting, s.freq_enabled, s.uf_off_hz, write)
        except DerVerifyError as e:
            log.log(err, "%s: model %d (%s) not verified: %s", where, mid, s.source, e)
            out.append(DerOutcome(mid, "failed", str(e)))
            continue
        except DerWriteError as e:
            log.log(err, "%s: model %d (%s) refused: %s", where, mid, s.source, e)
            out.append(DerOutcome(mid, "refused", str(e)))
            continue
        except Exception as e:  # a device error: the other models still go
            text = " ".join(str(e).split())[:300]
            log.log(err, "%s: model %d (%s) not written: %s", where, mid, s.source, text)
            out.append(DerOutcome(mid, "failed", text))
            continue
        log.log(
            logging.INFO if write else logging.DEBUG,
            "%s: model %d from %s verified: %s",
            where,
            mid,
            s.source,
            detail,
        )
        out.append(DerOutcome(mid, "verified", detail))
    return out
