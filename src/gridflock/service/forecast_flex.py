"""The history of the fleet's flexibility, recorded for the forecaster.

Stored telemetry holds power (and a battery's state of charge), not what the power bands
need (indoor and tank temperatures, an EV's energy need and departure), so the flexibility
the dispatcher saw cannot be rebuilt from the store afterwards. The forecaster therefore
records it as it goes: at every quarter hour, each site's up and down headroom held for
``FLEX_HOLD_H`` (``fleet.flexibility`` on the live fleet state, the same bands the
dispatcher uses), summed per site. The demo seeds the twin's own band history (computed by
``sim.history.twin_history`` in the same way). The record lives in memory and covers the
last ``keep_days``: after a restart the flexibility models are trained again once
``MIN_TRAIN_DAYS`` are recorded (the stored model keeps forecasting until then).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from gridflock.forecast import FLEX_QUANTITIES, History

__all__ = ["FlexRecorder"]

STEP_S = 900
FloatArray = npt.NDArray[np.float64]


class FlexRecorder:
    """Per-site ``flex_up`` / ``flex_down`` [kW, >= 0] at 15-minute steps, in memory.

    Values are float32 (a year of 1,000 sites is 280 MB; ``keep_days`` bounds it). A step
    is recorded once, at the first call in its quarter hour, as the headroom at that moment.
    """

    def __init__(self, keep_days: float) -> None:
        self.keep_s = float(keep_days) * 86_400.0
        self.site_ids: tuple[str, ...] = ()
        self._t = np.zeros(0, dtype=np.int64)  # step start [epoch s]
        self._v = np.zeros((2, 0, 0), dtype=np.float32)  # (up/down, site, step)

    @property
    def steps(self) -> int:
        """Steps recorded."""
        return len(self._t)

    def days(self) -> float:
        """Days from the first to the last recorded step."""
        if not len(self._t):
            return 0.0
        return float(self._t[-1] - self._t[0]) / 86_400.0 + STEP_S / 86_400.0

    def _align(self, site_ids: Sequence[str]) -> None:
        ids = tuple(str(s) for s in site_ids)
        if ids != self.site_ids:  # another fleet: an old record would describe other sites
            self.site_ids = ids
            self._t = np.zeros(0, dtype=np.int64)
            self._v = np.zeros((2, len(ids), 0), dtype=np.float32)

    def due(self, now: float) -> bool:
        """Whether the quarter hour of ``now`` is not recorded yet."""
        step = math.floor(now / STEP_S) * STEP_S
        return not len(self._t) or int(self._t[-1]) < step

    def record(
        self, now: float, site_ids: Sequence[str], up_kw: FloatArray, down_kw: FloatArray
    ) -> None:
        """Record the headroom per site (in ``site_ids`` order) at the quarter hour of ``now``."""
        self._align(site_ids)
        if not self.due(now):
            return
        step = math.floor(now / STEP_S) * STEP_S
        col = np.stack([np.asarray(up_kw), np.asarray(down_kw)]).astype(np.float32)[:, :, None]
        self._t = np.append(self._t, np.int64(step))
        self._v = np.concatenate([self._v, col], axis=2)
        self._prune(step)

    def seed(self, history: History) -> None:
        """Take the flexibility series of ``history`` (the demo's twin history) as recorded."""
        if not all(q in history.series for q in FLEX_QUANTITIES):
            return
        self._align(history.sites.ids.tolist())
        t = (history.times.as_unit("ns").asi8 // 1_000_000_000).astype(np.int64)
        v = np.stack([history.series[q] for q in FLEX_QUANTITIES]).astype(np.float32)
        keep = ~np.isin(t, self._t)
        order = np.argsort(np.concatenate([self._t, t[keep]]), kind="stable")
        self._t = np.concatenate([self._t, t[keep]])[order]
        self._v = np.concatenate([self._v, v[:, :, keep]], axis=2)[:, :, order]
        if len(self._t):
            self._prune(int(self._t[-1]))

    def _prune(self, last: int) -> None:
        keep = self._t > last - self.keep_s
        if not keep.all():
            self._t, self._v = self._t[keep], self._v[:, :, keep]

    def series(self, times: pd.DatetimeIndex, site_ids: Sequence[str]) -> dict[str, FloatArray]:
        """``flex_up`` and ``flex_down`` (n_sites, len(times)) on ``times``; NaN unrecorded."""
        n = len(site_ids)
        out = {q: np.full((n, len(times)), np.nan) for q in FLEX_QUANTITIES}
        if not len(self._t) or tuple(str(s) for s in site_ids) != self.site_ids:
            return out
        t = (times.as_unit("ns").asi8 // 1_000_000_000).astype(np.int64)
        pos = np.searchsorted(self._t, t)
        pos_c = np.minimum(pos, len(self._t) - 1)
        hit = self._t[pos_c] == t
        for i, q in enumerate(FLEX_QUANTITIES):
            out[q][:, hit] = self._v[i][:, pos_c[hit]]
        return out

    def add_to(self, history: History, min_days: float) -> History:
        """``history`` with the flexibility series, if at least ``min_days`` are recorded."""
        flex = self.series(history.times, history.sites.ids.tolist())
        known = np.isfinite(flex[FLEX_QUANTITIES[0]]).any(axis=0)
        if float(known.sum()) / 96.0 < min_days:
            return history
        return History(history.times, {**history.series, **flex}, history.sites)
