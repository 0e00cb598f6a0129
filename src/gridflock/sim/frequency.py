"""Grid frequency in the twin, and the fleet's local fast frequency response to it.

Frequency events are recorded-style traces on a fine time grid: a step (the standard test
of a frequency product: 49.5 Hz), a loss-of-infeed fall at a given RoCoF to a nadir with
a recovery, and an over-frequency rise. ``simulate_response`` steps every device at once
(NumPy over devices) at ``dt_s`` (20 ms by default): each measures frequency over its
window, acts after its control latency on the droop it was pushed (the product's shape,
``gridcode.product_response``), and ramps at its kind's rate; no service in the loop.
Device timings are drawn per device around their kind's figures (``products.yaml``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from gridflock.domain.messages import BoolArray, FloatArray, IntArray, StrArray
from gridflock.gridcode import FrequencyProduct, kind_responses, product_response

__all__ = ["FfrResult", "frequency_event", "response_times", "simulate_response"]

EventKind = Literal["step", "fall", "rise"]


def frequency_event(
    kind: EventKind,
    t_s: FloatArray,
    *,
    f_nom_hz: float = 50.0,
    t0_s: float = 1.0,
    step_hz: float = -0.5,
    nadir_hz: float = 49.2,
    rocof_hz_per_s: float = 0.5,
    settle_hz: float = 49.8,
    recover_s: float = 8.0,
) -> FloatArray:
    """Grid frequency [Hz] at times ``t_s`` [s] for a recorded-style event from ``t0_s``.

    ``step``: ``f_nom + step_hz`` from ``t0_s`` (49.5 Hz by default). ``fall``: down at
    ``rocof_hz_per_s`` to ``nadir_hz``, then an exponential recovery (time constant
    ``recover_s``) to ``settle_hz``, the shape of a large generator tripping. ``rise``:
    the mirror image above nominal (loss of a large demand or an export link).
    """
    t = np.asarray(t_s, dtype=np.float64)
    dt = np.maximum(t - t0_s, 0.0)
    if kind == "step":
        return np.where(t >= t0_s, f_nom_hz + step_hz, f_nom_hz)
    if rocof_hz_per_s <= 0 or recover_s <= 0:
        raise ValueError("rocof_hz_per_s and recover_s must be > 0")
    depth = f_nom_hz - nadir_hz
    settle = f_nom_hz - settle_hz
    t_fall = depth / rocof_hz_per_s
    below = np.where(
        dt <= t_fall,
        rocof_hz_per_s * dt,
        settle + (depth - settle) * np.exp(-(dt - t_fall) / recover_s),
    )
    sign = -1.0 if kind == "fall" else 1.0
    out: FloatArray = f_nom_hz + sign * below
    return out


@dataclass(frozen=True)
class FfrResult:
    """Fleet response over time: ``delivered_kw`` against ``required_kw`` (> 0: up)."""

    t_s: FloatArray
    f_hz: FloatArray
    required_kw: FloatArray
    delivered_kw: FloatArray
    by_kind_kw: dict[str, FloatArray]


def simulate_response(
    kinds: StrArray,
    up_kw: FloatArray,
    down_kw: FloatArray,
    product: FrequencyProduct,
    t_s: FloatArray,
    f_hz: FloatArray,
    rng: np.random.Generator,
    timing_scale: float = 1.0,
    shapes: Sequence[FrequencyProduct] = (),
    shape_of: IntArray | None = None,
) -> FfrResult:
    """Each device's change of power [kW, generator sign] as it follows ``f_hz`` locally.

    ``up_kw``/``down_kw`` are what each device was contracted to give at full response
    under and over frequency. ``t_s`` must be evenly spaced. ``timing_scale`` stretches
    every device's delays (a stress case: slower hardware). ``shapes`` and ``shape_of``
    give devices the droop they were pushed: device ``i`` follows ``shapes[shape_of[i]]``
    (``-1``: ``product``'s).
    """
    t = np.asarray(t_s, dtype=np.float64)
    dt = float(t[1] - t[0])
    if not dt > 0 or not np.allclose(np.diff(t), dt):
        raise ValueError("t_s must be evenly spaced and increasing")
    n = len(kinds)
    resp = kind_responses()
    meas = np.zeros(n)
    lat = np.zeros(n)
    ramp = np.full(n, np.inf)
    known = np.zeros(n, dtype=bool)
    for k, r in resp.items():
        m = kinds == k
        cnt = int(m.sum())
        if not cnt:
            continue
        known |= m
        spread = rng.uniform(1.0 - r.jitter, 1.0 + r.jitter, cnt)
        meas[m] = r.measure_s * spread * timing_scale
        lat[m] = r.latency_s * rng.uniform(1.0 - r.jitter, 1.0 + r.jitter, cnt) * timing_scale
        ramp[m] = r.ramp_pu_per_s
    up = np.where(known, up_kw, 0.0)
    down = np.where(known, down_kw, 0.0)
    # measured frequency: mean over [t - lat - meas, t - lat], from a cumulative sum
    f = np.asarray(f_hz, dtype=np.float64)
    csum = np.concatenate([[0.0], np.cumsum(f)])
    f0 = f[0]
    hi_lag = np.rint(lat / dt).astype(np.int64)
    win = np.maximum(np.rint(meas / dt).astype(np.int64), 1)
    p = np.zeros(n)
    groups = [(product, np.ones(n, dtype=bool))]
    if shape_of is not None and len(shapes):
        idx = np.asarray(shape_of, dtype=np.int64)
        groups = [(product, idx < 0)] + [(sh, idx == j) for j, sh in enumerate(shapes)]
        groups = [(sh, m) for sh, m in groups if m.any()]

    def response(f_at: FloatArray) -> FloatArray:
        if len(groups) == 1:
            return product_response(groups[0][0], f_at)
        frac = np.zeros(n)
        for sh, m in groups:
            frac[m] = product_response(sh, f_at[m])
        return frac

    names, code = np.unique(kinds.astype(str), return_inverse=True)
    per_kind = np.zeros((len(t), len(names)))
    step_up = np.where(known, ramp, 0.0) * np.maximum(up, down) * dt  # kW per step
    for i in range(len(t)):
        end = i + 1 - hi_lag  # exclusive index into f of the window's end
        start = end - win
        s_c = np.clip(start, 0, len(f))
        e_c = np.clip(end, 0, len(f))
        # samples before t[0] are the pre-event frequency f0
        pre = np.minimum(np.maximum(-start, 0), win)  # window samples before t[0]
        f_meas = (csum[e_c] - csum[s_c] + f0 * pre) / win
        frac = response(f_meas)
        target = np.where(frac >= 0, frac * up, frac * down)
        p += np.clip(target - p, -step_up, step_up)
        per_kind[i] = np.bincount(code, weights=p, minlength=len(names))
    delivered = per_kind.sum(axis=1)
    required = np.zeros(len(t))
    for sh, m in groups:
        frac_f = product_response(sh, f)
        required += np.where(frac_f >= 0, frac_f * up[m].sum(), frac_f * down[m].sum())
    by_kind = {str(k): per_kind[:, j] for j, k in enumerate(names)}
    return FfrResult(t, f, required, delivered, by_kind)


def response_times(
    res: FfrResult, t0_s: float, start_frac: float = 0.01, full_frac: float = 0.99
) -> tuple[float, float]:
    """Seconds from ``t0_s`` to the fleet's start and full response (NaN: never).

    Start: delivered first reaches ``start_frac`` of the full requirement; full: it first
    reaches ``full_frac`` of it. The full requirement is the largest after ``t0_s`` (for
    a step, the step's; for a fall, the nadir's).
    """
    after: BoolArray = res.t_s >= t0_s
    req = res.required_kw[after]
    got = res.delivered_kw[after]
    t = res.t_s[after] - t0_s
    full = float(np.max(np.abs(req))) if len(req) else 0.0
    if full <= 0:
        return float("nan"), float("nan")
    sign = np.sign(req[np.argmax(np.abs(req))])
    rel = got * sign / full
    started = np.flatnonzero(rel >= start_frac)
    t_start = float(t[started[0]]) if len(started) else float("nan")
    reached = np.flatnonzero(rel >= full_frac)
    t_full = float(t[reached[0]]) if len(reached) else float("nan")
    return t_start, t_full
