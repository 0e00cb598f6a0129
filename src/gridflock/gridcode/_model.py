"""The grid-code profile as data: pydantic models every profile file is validated against.

A profile is one country's (or standard's) rules for a small generator or controllable
load: its volt-var, volt-watt and frequency-watt curves, trip and ride-through limits,
export rules and control rules. Every setting carries the clause of the standard it
comes from (``clause``), so a report or a pushed setting can say why.

Units: voltage in per unit of nominal [pu], frequency [Hz], time [s], power [kW] or per
unit of rated power [pu]; reactive power per unit of rated apparent power, > 0 injected
(over-excited). Curves are piecewise linear through their points and flat beyond them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "ControlRules",
    "Curve",
    "ExportRules",
    "FreqWatt",
    "FrequencyProduct",
    "KindResponse",
    "Profile",
    "RideThrough",
    "Trip",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Curve(_Strict):
    """A piecewise-linear curve: ``y(x)`` through the points, flat outside them."""

    x: tuple[float, ...] = Field(min_length=2, description="Abscissae [pu of nominal voltage].")
    y: tuple[float, ...] = Field(min_length=2, description="Ordinates [pu of rating].")
    response_s: float = Field(gt=0, le=90, description="Open-loop response time (90 %) [s].")
    enabled: bool = Field(description="Whether the code enables the function by default.")
    clause: str = Field(min_length=3)

    @model_validator(mode="after")
    def _check(self) -> Curve:
        if len(self.x) != len(self.y):
            raise ValueError(f"curve has {len(self.x)} x and {len(self.y)} y values")
        if any(b <= a for a, b in zip(self.x, self.x[1:], strict=False)):
            raise ValueError(f"curve x must increase strictly, got {self.x}")
        if not all(0.5 <= v <= 1.5 for v in self.x):
            raise ValueError(f"curve x must lie in [0.5, 1.5] pu, got {self.x}")
        if not all(-1.0 <= v <= 1.0 for v in self.y):
            raise ValueError(f"curve y must lie in [-1, 1] pu, got {self.y}")
        return self


class FreqWatt(_Strict):
    """Frequency-watt (droop) response around nominal frequency.

    Over-frequency: outside ``f_nom + db_over_hz`` power falls by ``1 / droop_over`` of
    rated power per ``f_nom`` of deviation beyond the deadband; under-frequency the same
    upwards (None: the code asks no under-frequency response of this connection class).
    """

    db_over_hz: float = Field(ge=0, le=2)
    droop_over: float = Field(gt=0, le=0.2, description="Droop [1]: 0.05 is 5 %.")
    db_under_hz: float | None = Field(None, ge=0, le=2)
    droop_under: float | None = Field(None, gt=0, le=0.2)
    response_s: float = Field(gt=0, le=60, description="Open-loop response time [s].")
    clause: str = Field(min_length=3)

    @model_validator(mode="after")
    def _pair(self) -> FreqWatt:
        if (self.db_under_hz is None) != (self.droop_under is None):
            raise ValueError("db_under_hz and droop_under are given together or not at all")
        return self


class Trip(_Strict):
    """One must-trip setting: leave the grid within ``clear_s`` beyond ``threshold``."""

    name: str = Field(min_length=1, max_length=16)
    quantity: Literal["voltage", "frequency"]
    over: bool = Field(description="True: trips above the threshold; False: below.")
    threshold: float = Field(gt=0, description="[pu] for voltage, [Hz] for frequency.")
    clear_s: float = Field(gt=0, le=3600, description="Clearing time [s].")
    clause: str = Field(min_length=3)


class RideThrough(_Strict):
    """Frequency range of continuous operation and the RoCoF the unit must withstand."""

    f_min_hz: float = Field(gt=40, lt=70, description="Lower end of unlimited operation [Hz].")
    f_max_hz: float = Field(gt=40, lt=70, description="Upper end of unlimited operation [Hz].")
    rocof_hz_per_s: float = Field(gt=0, le=10)
    ranges: tuple[tuple[float, float, float], ...] = Field(
        (), description="(f_lo [Hz], f_hi [Hz], minimum time [s], inf = unlimited) bands."
    )
    clause: str = Field(min_length=3)

    @model_validator(mode="after")
    def _order(self) -> RideThrough:
        if not self.f_min_hz < self.f_max_hz:
            raise ValueError("f_min_hz must be below f_max_hz")
        return self


class ExportRules(_Strict):
    """Limits on what a site or one of its generating devices may export [kW]."""

    max_site_generation_kw: float | None = Field(
        None, gt=0, description="Largest total generating capacity at a site under the code."
    )
    max_site_export_kw: float | None = Field(
        None, ge=0, description="Largest export at a site's connection the code itself sets."
    )
    clause: str = Field(min_length=3)


class ControlRules(_Strict):
    """Rules for power under external control (ramps, minimum power, enter service)."""

    ramp_pu_per_s: float | None = Field(
        None, gt=0, le=100, description="Largest change of power per second [pu of rated]."
    )
    floor_kw: float | None = Field(
        None, ge=0, description="Import a controlled consumer keeps at least (§14a: 4.2 kW)."
    )
    floor_kinds: tuple[str, ...] = Field((), description="Device kinds the floor applies to.")
    enter_service_ramp_s: float | None = Field(None, gt=0, le=3600)
    clause: str = Field(min_length=3)


class Profile(_Strict):
    """One grid code: a country's or standard's settings, each with its clause."""

    code: str = Field(pattern=r"^[A-Z0-9][A-Z0-9_.-]{1,31}$")
    name: str
    standard: str
    source: str = Field(description="Where the numbers come from.")
    f_nom_hz: Literal[50, 60]
    volt_var: Curve
    volt_watt: Curve
    freq_watt: FreqWatt
    trips: tuple[Trip, ...] = Field(min_length=1)
    ride_through: RideThrough
    export: ExportRules
    control: ControlRules

    @model_validator(mode="after")
    def _consistent(self) -> Profile:
        names = [t.name for t in self.trips]
        if len(set(names)) != len(names):
            raise ValueError(f"trip names repeat in {self.code}: {names}")
        rt = self.ride_through
        if not rt.f_min_hz < self.f_nom_hz < rt.f_max_hz:
            raise ValueError(f"{self.code}: nominal frequency outside its continuous range")
        for t in self.trips:
            if t.quantity == "frequency" and rt.f_min_hz < t.threshold < rt.f_max_hz:
                raise ValueError(
                    f"{self.code}: trip {t.name} at {t.threshold} Hz lies inside the "
                    f"continuous operating range [{rt.f_min_hz}, {rt.f_max_hz}] Hz"
                )
        return self


class KindResponse(_Strict):
    """How fast a device kind follows a frequency droop locally (the twin's model).

    ``measure_s``: frequency measurement window; ``latency_s``: control and inverter
    latency after the measurement; ``ramp_pu_per_s``: fastest change once moving [pu of
    the device's headroom per s]; ``jitter``: relative spread of both times over devices.
    """

    measure_s: float = Field(ge=0, le=10)
    latency_s: float = Field(ge=0, le=60)
    ramp_pu_per_s: float = Field(gt=0, le=1000)
    jitter: float = Field(ge=0, le=1)
    basis: str = Field(min_length=3)

    @property
    def full_s(self) -> float:
        """Time to full response at the mean times [s]."""
        return self.measure_s + self.latency_s + 1.0 / self.ramp_pu_per_s


class FrequencyProduct(_Strict):
    """A fast frequency service: its droop shape and its timing requirements.

    Response (fraction of the contracted kW) is 0 inside ``deadband_hz``, rises linearly
    to ``knee_pu`` at ``knee_hz`` deviation, then linearly to 1 at ``full_hz``.
    """

    code: str = Field(pattern=r"^[A-Z0-9][A-Z0-9_.-]{1,31}$")
    name: str
    f_nom_hz: Literal[50, 60]
    deadband_hz: float = Field(ge=0, le=1)
    knee_hz: float = Field(gt=0, le=2)
    knee_pu: float = Field(ge=0, le=1)
    full_hz: float = Field(gt=0, le=2)
    start_s: float | None = Field(None, gt=0, le=60, description="Start of response by [s].")
    full_s: float = Field(gt=0, le=60, description="Full response by [s].")
    duration_s: float = Field(gt=0, le=7200, description="How long it must be held [s].")
    clause: str = Field(min_length=3)

    @model_validator(mode="after")
    def _order(self) -> FrequencyProduct:
        if not self.deadband_hz <= self.knee_hz <= self.full_hz:
            raise ValueError("need deadband_hz <= knee_hz <= full_hz")
        return self
