"""``gridflock simulate --frequency-event``: the twin's fleet against a grid frequency event.

A fleet (generated or from a file) is brought to a live state by the twin (a few 1-minute
steps from the evening of the chosen day, as ``benchmarks/bench_ffr.py`` does); its
frequency-response capacity (``fleet.frequency_response``: devices whose kind responds
fully within 1 s, held for the product's duration) is contracted to each fast frequency
product; every device then follows the event's frequency on its own (``sim.frequency``)
with the droop it was pushed. The report gives start and full-response times against
UK Dynamic Containment (start <= 0.5 s, full <= 1 s) and Australia's Very Fast FCAS
(full <= 1 s), writes ``ffr-summary.json`` and ``ffr-plot.png``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from gridflock.domain.spec import FleetSpec
from gridflock.fleet.flexibility import frequency_response
from gridflock.fleet.state import FleetState
from gridflock.gateways.mqtt.protocol import DeviceSettings
from gridflock.gridcode import FrequencyProduct, products
from gridflock.sim.frequency import FfrResult, frequency_event, response_times, simulate_response
from gridflock.sim.twin import Twin

__all__ = [
    "NAMED_EVENTS",
    "PRODUCTS",
    "FfrCase",
    "FfrReport",
    "FrequencyEvent",
    "parse_frequency_event",
    "run_frequency_event",
    "write_ffr_report",
]

#: Products the report is judged against, in this order.
PRODUCTS: tuple[str, ...] = ("GB-DC", "AU-VFFCAS")
#: When the event starts in the simulated span [s].
T0_S = 1.0
#: Frequencies a step may go to [Hz] (beyond them the grid has already split up).
F_MIN_HZ, F_MAX_HZ = 47.0, 53.0


@dataclass(frozen=True)
class FrequencyEvent:
    """A recorded-style frequency event on a 50 Hz grid (``sim.frequency.frequency_event``)."""

    name: str
    kind: Literal["step", "fall", "rise"]
    step_hz: float = -0.5
    nadir_hz: float = 49.2
    rocof_hz_per_s: float = 0.5
    settle_hz: float = 49.8
    description: str = ""

    def trace(self, t_s: np.ndarray) -> np.ndarray:
        """Grid frequency [Hz] at ``t_s`` [s], the event starting at ``T0_S``."""
        return frequency_event(
            self.kind,
            t_s,
            t0_s=T0_S,
            step_hz=self.step_hz,
            nadir_hz=self.nadir_hz,
            rocof_hz_per_s=self.rocof_hz_per_s,
            settle_hz=self.settle_hz,
        )


#: Named events ``--frequency-event`` takes besides a step frequency in Hz.
NAMED_EVENTS: dict[str, FrequencyEvent] = {
    "step": FrequencyEvent(
        "step", "step", step_hz=-0.5, description="step to 49.5 Hz (the products' own test)"
    ),
    "loss-of-infeed": FrequencyEvent(
        "loss-of-infeed",
        "fall",
        nadir_hz=49.2,
        rocof_hz_per_s=0.5,
        settle_hz=49.8,
        description="a large generator trips: down at 0.5 Hz/s to 49.2 Hz, recovery to 49.8 Hz",
    ),
    "loss-of-demand": FrequencyEvent(
        "loss-of-demand",
        "rise",
        nadir_hz=49.2,
        rocof_hz_per_s=0.5,
        settle_hz=49.8,
        description="a large demand or export link trips: up at 0.5 Hz/s to 50.8 Hz, "
        "recovery to 50.2 Hz",
    ),
}


def parse_frequency_event(text: str) -> FrequencyEvent:
    """``49.5`` (a step to that frequency [Hz]) or a name of ``NAMED_EVENTS``."""
    key = text.strip().lower()
    if key in NAMED_EVENTS:
        return NAMED_EVENTS[key]
    try:
        f = float(key)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a frequency in Hz (e.g. 49.5) nor a named event "
            f"({', '.join(NAMED_EVENTS)})"
        ) from None
    if not (math.isfinite(f) and F_MIN_HZ <= f <= F_MAX_HZ):
        raise ValueError(f"{text!r} Hz is outside {F_MIN_HZ:g}..{F_MAX_HZ:g} Hz on a 50 Hz grid")
    if abs(f - 50.0) < 1e-9:
        raise ValueError(f"{text!r} Hz is nominal: no event; give e.g. 49.5 or 50.5")
    return FrequencyEvent(f"step to {f:g} Hz", "step", step_hz=f - 50.0, description="step")


@dataclass(frozen=True)
class FfrCase:
    """The fleet's response under one product: times and whether they meet it."""

    product: FrequencyProduct
    result: FfrResult
    start_s: float
    full_s: float
    required_kw: float
    f_full_s: float  # when the frequency itself reaches the full requirement [s from t0]
    met: bool | None  # for a step; None for a ramp (judged as lag behind the frequency)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, NaN as null."""
        p = self.product

        def num(x: float) -> float | None:
            return round(x, 3) if math.isfinite(x) else None

        return {
            "product": p.code,
            "name": p.name,
            "clause": p.clause,
            "required_kw": round(self.required_kw, 3),
            "start_s": num(self.start_s),
            "full_s": num(self.full_s),
            "target_start_s": p.start_s,
            "target_full_s": p.full_s,
            "frequency_at_full_s": num(self.f_full_s),
            "lag_s": num(self.full_s - self.f_full_s),
            "met": self.met,
        }


@dataclass(frozen=True)
class FfrReport:
    """One frequency event on one fleet, judged under each product."""

    event: FrequencyEvent
    n_devices: int
    n_eligible: int
    capacity_up_kw: float
    capacity_down_kw: float
    dt_s: float
    cases: list[FfrCase] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """``ffr-summary.json``."""
        return {
            "event": {
                "name": self.event.name,
                "kind": self.event.kind,
                "description": self.event.description,
                "t0_s": T0_S,
            },
            "devices": self.n_devices,
            "eligible_devices": self.n_eligible,
            "capacity_up_kw": round(self.capacity_up_kw, 3),
            "capacity_down_kw": round(self.capacity_down_kw, 3),
            "dt_s": self.dt_s,
            "products": [c.as_dict() for c in self.cases],
        }


def _live_state(spec: FleetSpec, start: pd.Timestamp, seed: int, warm_steps: int) -> FleetState:
    """The fleet's state after the twin ran ``warm_steps`` minutes from ``start``."""
    state = FleetState.from_spec(spec)
    twin = Twin(spec, start, warm_steps, 60.0, seed)
    for _ in range(warm_steps):
        twin.step()
        for batch in twin.receive():
            state.apply(batch)
    return state


def run_frequency_event(
    spec: FleetSpec,
    event: FrequencyEvent,
    start: pd.Timestamp,
    seed: int = 7,
    dt_s: float = 0.02,
    seconds: float = 10.0,
    warm_steps: int = 5,
    droop: dict[str, FrequencyProduct] | None = None,
    pushed: Mapping[str, DeviceSettings] | None = None,
) -> FfrReport:
    """The fleet's local response to ``event`` under each product of ``PRODUCTS``.

    ``start`` (UTC) is when the twin's live state is taken; ``droop`` replaces a product's
    droop shape by another (the product's timing still judges it). ``pushed``: the
    settings the service pushed to each device (``SimulatedGateways.pushed``); a device
    with an ``ffr`` part of a product follows that droop with its contracted kW there.
    """
    if not 0.001 <= dt_s <= 0.1:
        raise ValueError(f"dt_s must be 1..100 ms to resolve a 0.5 s start, got {dt_s} s")
    if not T0_S + 2.0 <= seconds <= 600.0:
        raise ValueError(f"seconds must be {T0_S + 2.0:g}..600, got {seconds}")
    state = _live_state(spec, start, seed, warm_steps)
    cap = frequency_response(state, float(start.timestamp() + 60.0 * warm_steps))
    kinds = np.empty(state.n, dtype=object)
    for k, s in state.kind_slices.items():
        kinds[s] = k.value
    t = np.arange(0.0, seconds, dt_s)
    f = event.trace(t)
    rng = np.random.default_rng(seed)
    report = FfrReport(
        event,
        state.n,
        int(cap.eligible.sum()),
        float(cap.total_up_kw),
        float(cap.total_down_kw),
        dt_s,
    )
    catalogue = products()
    for code in PRODUCTS:
        prod = catalogue[code]
        shape = (droop or {}).get(code, prod)
        up, down, shapes, shape_of = _pushed(pushed, state.device_ids, code, prod, cap)
        res = simulate_response(kinds, up, down, shape, t, f, rng, shapes=shapes, shape_of=shape_of)
        t_start, t_full = response_times(res, T0_S)
        peak = float(np.max(np.abs(res.required_kw))) if len(t) else 0.0
        hit = np.flatnonzero(np.abs(res.required_kw) >= 0.99 * peak) if peak > 0 else np.zeros(0)
        f_full = float(t[hit[0]]) - T0_S if len(hit) else math.nan
        met: bool | None = None
        if event.kind == "step" and peak > 0:
            met = bool(t_full <= prod.full_s and (prod.start_s is None or t_start <= prod.start_s))
        elif event.kind == "step":
            met = False
        report.cases.append(FfrCase(prod, res, t_start, t_full, peak, f_full, met))
    return report


def _pushed(
    pushed: Mapping[str, DeviceSettings] | None,
    device_ids: Any,
    code: str,
    prod: FrequencyProduct,
    cap: Any,
) -> tuple[np.ndarray, np.ndarray, list[FrequencyProduct], np.ndarray | None]:
    """Contracted kW and droop per device: the pushed ones where a device has them."""
    up = np.array(cap.up_kw, dtype=np.float64)
    down = np.array(cap.down_kw, dtype=np.float64)
    if not pushed:
        return up, down, [], None
    shapes: list[FrequencyProduct] = []
    index: dict[tuple[float, float, float, float], int] = {}
    shape_of = np.full(len(up), -1, dtype=np.int64)
    for i, dev in enumerate(np.asarray(device_ids).tolist()):
        item = pushed.get(str(dev))
        if item is None or item.ffr is None or item.ffr.product != code:
            continue
        x = item.ffr
        key = (x.deadband_hz, x.knee_hz, x.knee_pu, x.full_hz)
        if key not in index:
            index[key] = len(shapes)
            shapes.append(
                prod.model_copy(
                    update={
                        "deadband_hz": x.deadband_hz,
                        "knee_hz": x.knee_hz,
                        "knee_pu": x.knee_pu,
                        "full_hz": x.full_hz,
                    }
                )
            )
        shape_of[i] = index[key]
        up[i], down[i] = x.up_kw, x.down_kw
    return up, down, shapes, shape_of


def write_ffr_report(report: FfrReport, out: Path) -> dict[str, Path]:
    """Write ``ffr-summary.json`` and ``ffr-plot.png`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"summary": out / "ffr-summary.json", "plot": out / "ffr-plot.png"}
    paths["summary"].write_text(json.dumps(report.summary(), indent=2) + "\n")
    _plot(report, paths["plot"])
    return paths


def _plot(report: FfrReport, path: Path) -> None:
    """Frequency and the fleet's response against time, one panel per product."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(report.cases)
    fig, axes = plt.subplots(n, 1, figsize=(10, 3.2 * n), sharex=True, squeeze=False)
    for ax, case in zip(axes[:, 0], report.cases, strict=True):
        r = case.result
        ax.plot(r.t_s, r.required_kw, "k--", lw=1, label="required (droop of f)")
        ax.plot(r.t_s, r.delivered_kw, color="#1f6feb", lw=1.6, label="delivered")
        big = max(float(np.abs(r.delivered_kw).max()), 1e-9)
        for k, v in r.by_kind_kw.items():
            if np.abs(v).max() > 1e-3 * big:
                ax.plot(r.t_s, v, lw=0.8, alpha=0.7, label=k)
        p = case.product
        if p.start_s is not None:
            ax.axvline(T0_S + p.start_s, color="grey", lw=0.6, ls=":")
        ax.axvline(T0_S + p.full_s, color="grey", lw=0.6)
        ax.axhline(0, color="black", lw=0.5)
        verdict = {True: "met", False: "missed", None: "ramp"}[case.met]
        ax.set_title(
            f"{p.code}: start {case.start_s:.2f} s, full {case.full_s:.2f} s "
            f"(target {p.start_s if p.start_s is not None else '-'} / {p.full_s:g} s: {verdict})",
            loc="left",
            fontsize=10,
        )
        ax.set_ylabel("fleet response [kW]\n(+ up, - down)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right", frameon=False)
        ax2 = ax.twinx()
        ax2.plot(r.t_s, r.f_hz, color="#d1242f", lw=0.9)
        ax2.set_ylabel("frequency [Hz]", color="#d1242f")
    axes[-1, 0].set_xlabel(
        f"time [s] (event at {T0_S:g} s; grey lines: the product's start and full deadlines)"
    )
    fig.suptitle(
        f"{report.event.name}: {report.n_devices:,} devices, {report.n_eligible:,} respond "
        f"within 1 s (up {report.capacity_up_kw:,.0f} kW, down {report.capacity_down_kw:,.0f} kW)",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
