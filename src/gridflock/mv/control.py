"""Randomised control groups: sites held out of events, matched on kind and size.

A share of the fleet, drawn at random within each stratum (device mix x size bin), is
never dispatched. On an event day the control sites' load, stratum by stratum, is what
the participants would have drawn; a per-site offset learnt on recent non-event days
(difference in differences) removes each participant's persistent difference from its
stratum. Weather, holidays and whatever else moves every home's load move the control
group too, which is why this is the method evaluators trust most (CAISO's 2017 baseline
accuracy assessment recommends it for residential programmes).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gridflock.domain.messages import BoolArray, FloatArray, IntArray, StrArray
from gridflock.mv.baselines import (
    LOOKBACK_DAYS,
    METHODS,
    Baseline,
    Method,
    _history,
    _most_recent,
)
from gridflock.mv.meter import Calendar, EventWindow, MeterData, SiteInfo

__all__ = ["MIN_CONTROLS", "assign_control_group", "control_group", "strata"]

#: A stratum needs at least this many control sites, else the match widens (kind, then all).
MIN_CONTROLS = 5


def strata(kinds: StrArray, size: FloatArray, size_bins: int = 3) -> IntArray:
    """Stratum of each site: its device mix and its size bin (quantiles) within that mix."""
    kinds = np.asarray(kinds, dtype=object).astype(str)
    size = np.asarray(size, dtype=np.float64)
    if len(kinds) != len(size):
        raise ValueError(f"{len(kinds)} kinds for {len(size)} sizes")
    if size_bins < 1:
        raise ValueError("size_bins must be at least 1")
    frame = pd.DataFrame({"k": kinds, "s": size})
    pct = frame.groupby("k")["s"].rank(method="first", pct=True).to_numpy(float)
    sbin = np.minimum((pct * size_bins - 1e-9).astype(np.int64), size_bins - 1)
    _, kind_id = np.unique(kinds, return_inverse=True)
    return np.asarray(kind_id * size_bins + np.maximum(sbin, 0), dtype=np.int64)


def assign_control_group(
    kinds: StrArray, size: FloatArray, share: float, seed: int, size_bins: int = 3
) -> BoolArray:
    """Hold out ``share`` of the sites at random within each stratum (kind mix x size bin).

    Stratified assignment keeps the control group's mix equal to the fleet's, which is
    what makes its load a fair counterfactual for the participants. In each stratum
    ``round(share x size)`` sites are drawn; the same seed gives the same group.
    """
    if not 0.0 <= share < 1.0:
        raise ValueError(f"the control share must be in [0, 1), got {share}")
    st = strata(kinds, size, size_bins)
    u = np.random.default_rng(seed).random(len(st))
    frame = pd.DataFrame({"st": st, "u": u})
    rank = frame.groupby("st")["u"].rank(method="first").to_numpy(float) - 1.0
    count = frame.groupby("st")["u"].transform("size").to_numpy(float)
    quota = np.floor(share * count + 0.5)
    return np.asarray(rank < quota, dtype=bool)


def _group_means(
    x: FloatArray, groups: IntArray, rows: BoolArray, n_groups: int
) -> tuple[FloatArray, IntArray]:
    """Mean of ``x`` over the ``rows`` of each group along axis 0 (NaN-aware) and counts."""
    sel = x[rows]
    g = groups[rows]
    ok = np.isfinite(sel)
    sums = np.zeros((n_groups, *x.shape[1:]))
    cnt = np.zeros((n_groups, *x.shape[1:]))
    np.add.at(sums, g, np.where(ok, sel, 0.0))
    np.add.at(cnt, g, ok)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums / cnt
    members = np.bincount(g, minlength=n_groups).astype(np.int64)
    return np.asarray(mean, dtype=np.float64), members


def control_group(
    meter: MeterData,
    event: EventWindow,
    calendar: Calendar,
    info: SiteInfo | None = None,
    days: int = 10,
    size_bins: int = 3,
) -> Baseline:
    """Control-group baseline for each participant (control rows get none).

    Each participant's baseline is the mean load of the control sites in its stratum
    (kind mix x size bin; the kind mix alone, then every control site, where a stratum
    holds fewer than :data:`MIN_CONTROLS`), plus the participant's mean difference from
    that mean over the event's clock hours on the ``days`` most recent eligible days.
    """
    if info is None or info.control is None:
        raise ValueError(
            "the control-group baseline needs SiteInfo with kinds, sizes and the control mask"
        )
    control = np.asarray(info.control, dtype=bool)
    if len(control) != meter.n_sites:
        raise ValueError(f"control mask has {len(control)} rows, the meter {meter.n_sites}")
    if not control.any():
        raise ValueError("no control sites: hold some out with assign_control_group")
    part = ~control if event.participants is None else np.asarray(event.participants) & ~control
    h = _history(meter, event, calendar, LOOKBACK_DAYS, None)
    kinds = np.asarray(info.kinds, dtype=object).astype(str)
    levels = [
        strata(kinds, info.size, size_bins),
        np.unique(kinds, return_inverse=True)[1].astype(np.int64),
        np.zeros(meter.n_sites, np.int64),
    ]
    n = meter.n_sites
    ctrl_now = np.full(h.actual.shape, np.nan)
    ctrl_hist = np.full(h.window.shape, np.nan)
    chosen = np.zeros(n, bool)
    for groups in levels:
        ng = int(groups.max()) + 1 if n else 0
        now, members = _group_means(h.actual, groups, control, ng)
        hist, _ = _group_means(h.window, groups, control, ng)
        take = ~chosen & (members[groups] >= min(MIN_CONTROLS, int(control.sum())))
        ctrl_now[take] = now[groups[take]]
        ctrl_hist[take] = hist[groups[take]]
        chosen |= take
    diff = h.window - ctrl_hist  # (n, D, K)
    ok = np.isfinite(diff).all(axis=2)
    sel = _most_recent(ok, days)
    w = sel[:, :, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        offset = np.where(w, np.nan_to_num(diff), 0.0).sum(axis=(1, 2)) / (
            sel.sum(axis=1) * diff.shape[2]
        )
    used = sel.sum(axis=1).astype(np.int64)
    kw = ctrl_now + offset[:, None]
    valid = part & chosen & (used >= 1) & np.isfinite(kw).all(axis=1)
    kw[~valid] = np.nan
    return Baseline(
        str(Method.CONTROL_GROUP), event.event_id, meter.site_ids, h.steps, kw, h.actual,
        valid, np.where(valid, offset, np.nan), used,
        f"{int(control.sum())} control sites, matched on kind mix and size",
    )


METHODS[Method.CONTROL_GROUP] = control_group
