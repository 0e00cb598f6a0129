"""Flexibility: how many kW each device can move up or down *and hold for a duration*.

"Up" is more export or less import, "down" the reverse; both are returned as
non-negative kW relative to the device's baseline. Every kind declares a *power band*
(``domain.kinds``, ``domain.bands``): the lowest and highest power, generator sign, it can
hold over the duration from its capability, live state and the customer's constraints
(backup reserve, EV departure, comfort band, tank band, curtailability), narrowed by
the site's grid code (``gridcode.SiteRules``: a site's generation cap; a controlled
consumer's floor under grid-operator dimming) so dispatch never asks what the code
forbids. One generic rule turns bands into flexibility, ``up = ceiling - baseline`` and
``down = baseline - floor``, clipped at zero, on each kind's contiguous slice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gridflock.domain.kinds import kind_decl
from gridflock.domain.messages import BoolArray, FloatArray
from gridflock.fleet.state import FleetState
from gridflock.gridcode import kind_responses

__all__ = [
    "Flexibility",
    "FrequencyCapacity",
    "flexibility",
    "frequency_response",
    "slowest_full_s",
]


@dataclass(frozen=True)
class Flexibility:
    """Per-device headroom [kW, >= 0] sustainable for ``duration_h`` from ``now``.

    ``floor_kw`` and ``ceiling_kw`` are the power bands the headroom came from (generator
    sign; NaN where a device has no band or its band is unknown): a tracker clips its
    setpoints to them so that what it holds is what the device can keep.
    """

    up_kw: FloatArray
    down_kw: FloatArray
    baseline_kw: FloatArray
    duration_h: float
    now: float
    floor_kw: FloatArray = field(default_factory=lambda: np.zeros(0))
    ceiling_kw: FloatArray = field(default_factory=lambda: np.zeros(0))

    def headroom(self, up: bool) -> FloatArray:
        """Headroom in the requested direction."""
        return self.up_kw if up else self.down_kw


def flexibility(
    state: FleetState,
    duration_h: float,
    now: float,
    baseline_kw: FloatArray | None = None,
    *,
    grid_operator: bool = False,
) -> Flexibility:
    """Compute every device's up/down flexibility held over ``[now, now + duration_h)``.

    Offline devices, kinds without a band (plain loads) and devices at opted-out sites
    have none; so has a device whose band is unknown (NaN: no state reported yet).
    ``baseline_kw`` replaces the state's baselines (a plan's setpoints); by default the
    reported ones (``state.baseline_kw()``). Every site's generators stay within its
    grid code's generation cap; ``grid_operator=True`` (a reduction the grid operator
    asks, e.g. §14a EnWG dimming) also keeps each controlled consumer's floor.
    """
    if not duration_h > 0:
        raise ValueError(f"duration_h must be > 0 hours, got {duration_h}")
    n = state.n
    up = np.zeros(n)
    down = np.zeros(n)
    lo = np.full(n, np.nan)
    hi = np.full(n, np.nan)
    base = state.baseline_kw() if baseline_kw is None else baseline_kw
    t = float(duration_h)
    rules = state.grid.code_rules
    floors = grid_operator and rules.active
    for kind, s in state.kind_slices.items():
        band = kind_decl(kind).band
        if band is None or s.stop == s.start:
            continue
        floor, ceiling = band(state.kind_view(kind, base), t, now)
        b = base[s]
        if floors:  # a dimmed consumer keeps its code's floor (§14a EnWG)
            ceiling = rules.clip_floor(kind.value, floor, ceiling, b, state.site_idx[s])
        lo[s] = floor  # NaN stays NaN: band unknown
        hi[s] = ceiling
        # fmax: NaN (band or baseline unknown) becomes 0, in the same pass as the clip
        np.fmax(ceiling - b, 0.0, out=up[s])
        np.fmax(b - floor, 0.0, out=down[s])
    if np.isfinite(rules.gen_cap_kw).any():
        # a site's generators together within its code's cap (EREC G98)
        hi = rules.cap_generation(hi, base, state.site_idx)
        np.fmax(np.fmin(hi - base, up), 0.0, out=up)
    usable = state.online & ~state.grid.site_opt_out[state.site_idx]
    up *= usable
    down *= usable
    return Flexibility(up, down, base, t, now, lo, hi)


@dataclass(frozen=True)
class FrequencyCapacity:
    """Fast frequency response each device can give within ``within_s`` [kW, >= 0].

    ``up_kw`` answers under-frequency (more export or less import), ``down_kw``
    over-frequency; each held for ``hold_s`` within the device's band and its site's
    code. ``eligible`` marks the devices whose kind follows a local droop fully within
    ``within_s`` at its slowest (``gridcode.kind_responses``).
    """

    up_kw: FloatArray
    down_kw: FloatArray
    eligible: BoolArray
    within_s: float
    hold_s: float

    @property
    def total_up_kw(self) -> float:
        """Fleet total up [kW]."""
        return float(self.up_kw.sum())

    @property
    def total_down_kw(self) -> float:
        """Fleet total down [kW]."""
        return float(self.down_kw.sum())


def slowest_full_s(kind: str) -> float:
    """Slowest time [s] a device of ``kind`` takes to full droop response (inf: unknown)."""
    r = kind_responses().get(kind)
    if r is None:
        return float("inf")
    return (r.measure_s + r.latency_s) * (1.0 + r.jitter) + 1.0 / r.ramp_pu_per_s


def frequency_response(
    state: FleetState, now: float, within_s: float = 1.0, hold_s: float = 900.0
) -> FrequencyCapacity:
    """Frequency-response capacity: what the fleet gives within ``within_s``, up and down.

    The flexibility held for ``hold_s`` (the product's duration, 15 minutes for Dynamic
    Containment) of the devices whose kind responds fully within ``within_s``; others
    (heat pumps, EV chargers: seconds to respond) count for nothing here.
    """
    if not within_s > 0 or not hold_s > 0:
        raise ValueError(f"within_s and hold_s must be > 0 s, got {within_s}, {hold_s}")
    flex = flexibility(state, hold_s / 3600.0, now)
    eligible = np.zeros(state.n, dtype=bool)
    for kind, s in state.kind_slices.items():
        eligible[s] = slowest_full_s(kind.value) <= within_s
    return FrequencyCapacity(
        flex.up_kw * eligible, flex.down_kw * eligible, eligible, within_s, hold_s
    )
