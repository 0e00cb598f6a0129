"""The DER curve settings of an edge device, derived from its grid-code profile.

A SunSpec device entry may name ``grid_code`` (a profile id of :mod:`gridflock.gridcode`)
and/or ``der_curves`` overrides. The volt-var, volt-watt and frequency-droop settings come
from the profile's settings document (:func:`gridflock.gridcode.device_settings`, the
document pushed to devices), with the overrides laid over it and the result validated by
the grid-code models (:class:`~gridflock.gridcode.Curve`,
:class:`~gridflock.gridcode.FreqWatt`): the numbers exist once, in the profile files.

Units: voltage [pu of nominal], reactive power [pu of rated apparent power, > 0
injected], active power [pu of rated], frequency [Hz], droop [1] (0.05 is 5 %).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from gridflock.gateways.mqtt.protocol import CurveSetting, DeviceSettings
from gridflock.gridcode import Curve, FreqWatt, device_settings, profile, profiles

__all__ = [
    "CurveOverride",
    "DerCurvesOverride",
    "DerSettings",
    "DroopOverride",
    "derive_der_settings",
    "known_grid_codes",
    "pushed_der_settings",
]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CurveOverride(_Closed):
    """A volt-var or volt-watt curve given in the configuration (any field replaces the code's)."""

    v_pu: list[float] | None = Field(None, description="Voltages [pu of nominal], increasing.")
    y_pu: list[float] | None = Field(
        None, description="Ordinates: reactive power (volt-var) or active power (volt-watt) [pu]."
    )
    response_s: float | None = Field(None, description="Open-loop response time [s].")
    enabled: bool | None = Field(None, description="Switch the function on or off.")


class DroopOverride(_Closed):
    """A frequency droop given in the configuration (any field replaces the code's)."""

    db_over_hz: float | None = None
    droop_over: float | None = None
    db_under_hz: float | None = None
    droop_under: float | None = None
    response_s: float | None = None
    enabled: bool | None = None


class DerCurvesOverride(_Closed):
    """``der_curves``: site-specific settings laid over the grid code's."""

    volt_var: CurveOverride | None = None
    volt_watt: CurveOverride | None = None
    freq_droop: DroopOverride | None = None


@dataclass(frozen=True)
class DerSettings:
    """What the gateway writes to a device's DER models 705, 706 and 711.

    A function is None when neither the code nor the configuration gives it.
    ``uf_off_hz``: where the code asks no under-frequency response, the deviation [Hz]
    below nominal from which a device may respond at all (the bottom of continuous
    operation), since model 711 has no separate under-frequency switch.
    """

    source: str
    volt_var: Curve | None
    volt_watt: Curve | None
    freq_droop: FreqWatt | None
    freq_enabled: bool
    uf_off_hz: float | None


def known_grid_codes() -> list[str]:
    """The profile ids a device entry may name."""
    return sorted(profiles())


def _curve(
    base: dict[str, Any] | None, ov: CurveOverride | None, y_key: str, where: str
) -> Curve | None:
    if ov is None:
        return None if base is None else _to_curve(base, y_key, base["clause"], where)
    merged: dict[str, Any] = dict(base or {})
    for name, key in (("v_pu", "v_pu"), ("y_pu", y_key), ("response_s", "response_s")):
        val = getattr(ov, name)
        if val is not None:
            merged[key] = val
    merged["enabled"] = ov.enabled if ov.enabled is not None else merged.get("enabled", True)
    missing = [k for k in ("v_pu", y_key, "response_s") if k not in merged]
    if missing:
        names = ["y_pu" if k == y_key else k for k in missing]
        raise ValueError(f"{where}: give {', '.join(names)} (no grid_code to take them from)")
    clause = f"{merged['clause']}; overridden in the configuration" if base else "configuration"
    return _to_curve(merged, y_key, clause, where)


def _to_curve(d: dict[str, Any], y_key: str, clause: str, where: str) -> Curve:
    try:
        return Curve(
            x=tuple(d["v_pu"]),
            y=tuple(d[y_key]),
            response_s=d["response_s"],
            enabled=d["enabled"],
            clause=clause,
        )
    except PydanticValidationError as e:
        raise ValueError(f"{where}: {_why(e)}") from None


def _why(e: PydanticValidationError) -> str:
    """The validation messages, one line, without its boilerplate."""
    parts = []
    for err in e.errors(include_url=False):
        loc = ".".join(str(x) for x in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def derive_der_settings(
    device_id: str,
    kind: str,
    grid_code: str | None,
    overrides: DerCurvesOverride | None,
) -> DerSettings | None:
    """The device's DER settings (None: the entry asks for none).

    ``ValueError`` (pydantic's included) names what is wrong: an unknown code with the
    list of known ones, a curve out of its ranges, an override missing a field.
    """
    if grid_code is None and overrides is None:
        return None
    doc: dict[str, Any] = {}
    uf_off: float | None = None
    if grid_code is not None:
        if grid_code not in profiles():
            raise ValueError(f"unknown grid code {grid_code!r}; known: {known_grid_codes()}")
        prof = profile(grid_code)
        doc = device_settings(prof, device_id, kind, 0.0)
        uf_off = prof.f_nom_hz - prof.ride_through.f_min_hz
    ov = overrides or DerCurvesOverride()
    vv = _curve(doc.get("volt_var"), ov.volt_var, "q_pu", "der_curves.volt_var")
    vw = _curve(doc.get("volt_watt"), ov.volt_watt, "p_pu", "der_curves.volt_watt")
    fw_base: dict[str, Any] = dict(doc.get("freq_watt") or {})
    fw: FreqWatt | None = None
    f_on = bool(fw_base.get("enabled", True))
    if fw_base or ov.freq_droop is not None:
        if ov.freq_droop is not None:
            for k, v in ov.freq_droop.model_dump(exclude_none=True).items():
                if k == "enabled":
                    f_on = bool(v)
                else:
                    fw_base[k] = v
            fw_base["clause"] = (
                f"{fw_base['clause']}; overridden in the configuration"
                if "clause" in fw_base
                else "configuration"
            )
        fw_base.pop("enabled", None)
        missing = [k for k in ("db_over_hz", "droop_over", "response_s") if k not in fw_base]
        if missing:
            raise ValueError(
                f"der_curves.freq_droop: give {', '.join(missing)} (no grid_code to take them from)"
            )
        try:
            fw = FreqWatt(**fw_base)
        except PydanticValidationError as e:
            raise ValueError(f"der_curves.freq_droop: {_why(e)}") from None
    source = grid_code or "configuration"
    if grid_code is not None and overrides is not None:
        source += " with overrides"
    return DerSettings(source, vv, vw, fw, f_on, uf_off)


def _pushed_curve(c: CurveSetting | None, where: str) -> Curve | None:
    if c is None:
        return None
    try:
        return Curve(
            x=tuple(c.v_pu),
            y=tuple(c.y_pu),
            response_s=c.response_s,
            enabled=c.enabled,
            clause=c.clause,
        )
    except PydanticValidationError as e:
        raise ValueError(f"{where}: {_why(e)}") from None


def pushed_der_settings(s: DeviceSettings) -> DerSettings:
    """The DER settings of a pushed ``settings`` item (protocol v1), checked as a profile's.

    ``ValueError`` names what a grid-code model refuses (a curve it cannot hold).
    """
    vv = _pushed_curve(s.volt_var, "volt_var")
    vw = _pushed_curve(s.volt_watt, "volt_watt")
    fw: FreqWatt | None = None
    on = True
    if s.freq_watt is not None:
        d = s.freq_watt
        on = d.enabled
        try:
            fw = FreqWatt(
                db_over_hz=d.db_over_hz,
                droop_over=d.droop_over,
                db_under_hz=d.db_under_hz,
                droop_under=d.droop_under,
                response_s=d.response_s,
                clause=d.clause,
            )
        except PydanticValidationError as e:
            raise ValueError(f"freq_watt: {_why(e)}") from None
    uf_off: float | None = None
    if s.profile in profiles():
        prof = profile(s.profile)
        uf_off = prof.f_nom_hz - prof.ride_through.f_min_hz
    return DerSettings(f"{s.profile} (pushed, seq {s.seq})", vv, vw, fw, on, uf_off)
