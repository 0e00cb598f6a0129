"""Site power history: telemetry resampled onto a regular grid, summed per site and per kind.

Forecast training and measurement and verification both start from the same matrix: one
row per site, one column per interval, the mean power of every device of the site in the
interval, summed. Buckets are aggregated in SQL (:func:`query_telemetry_resampled`); the
sums per site are sparse matrix products over devices, not Python loops.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import sparse
from sqlalchemy import select
from sqlalchemy.engine import Connection

from gridflock.store._telemetry import query_telemetry_resampled
from gridflock.store._time import to_utc
from gridflock.store.models import DeviceRow, SiteRow, table_of

__all__ = ["SitePower", "site_power"]

FloatArray = npt.NDArray[np.float64]

#: Longest history one query may ask for, in intervals (about 3 years at 15 min).
MAX_STEPS = 110_000


@dataclass(frozen=True)
class SitePower:
    """Per-site power on a regular time grid; kW, generator sign (> 0 exported).

    ``net_kw[i, t]`` is the sum over the devices of ``site_ids[i]`` of their mean power in
    ``[times[t], times[t] + step_s)``; it is NaN unless every device of the site reported
    in that interval (a partial sum would look like a change in demand). ``by_kind_kw``
    holds the same per device kind, NaN where a device of that kind did not report and 0
    at sites without the kind. ``coverage`` is the share of the site's devices that
    reported (0 for a site with no device).
    """

    site_ids: list[str]
    times: pd.DatetimeIndex
    step_s: int
    net_kw: FloatArray
    by_kind_kw: dict[str, FloatArray]
    coverage: FloatArray
    devices_per_site: npt.NDArray[np.int64]

    @property
    def net_import_kw(self) -> FloatArray:
        """Net import per site and interval [kW] (the negated net power)."""
        return -self.net_kw

    def frame(self, kind: str | None = None) -> pd.DataFrame:
        """One column per site, indexed by interval start (UTC): the net or one kind."""
        values = self.net_kw if kind is None else self.by_kind_kw[kind]
        return pd.DataFrame(values.T, index=self.times, columns=self.site_ids)


def _grid(start: datetime, end: datetime, step_s: int) -> pd.DatetimeIndex:
    if step_s <= 0 or int(step_s) != step_s:
        raise ValueError(f"step_s must be a positive whole number of seconds, got {step_s!r}")
    t0 = to_utc(start).timestamp()
    t1 = to_utc(end).timestamp()
    if not t1 > t0:
        raise ValueError(f"end ({end.isoformat()}) must be after start ({start.isoformat()})")
    first = np.floor(t0 / step_s) * step_s
    n = int(np.ceil((t1 - first) / step_s))
    if n > MAX_STEPS:
        raise ValueError(
            f"{n} intervals of {step_s} s asked for; at most {MAX_STEPS}: "
            "shorten the range or use a longer step"
        )
    return pd.date_range(pd.Timestamp(first, unit="s", tz="UTC"), periods=n, freq=f"{step_s}s")


def site_power(
    conn: Connection,
    start: datetime,
    end: datetime,
    step_s: int = 900,
    site_ids: Sequence[str] | None = None,
) -> SitePower:
    """Per-site power over ``[start, end)`` at ``step_s``, from the stored telemetry.

    The grid starts at ``start`` floored to a multiple of ``step_s`` since the epoch (the
    same buckets as :func:`query_telemetry_resampled`). ``site_ids`` None means every site,
    in fleet order; unknown ids raise ``KeyError`` naming them.
    """
    step_s = int(step_s)
    times = _grid(start, end, step_s)
    sites_t, devices_t = table_of(SiteRow), table_of(DeviceRow)
    known = [r.id for r in conn.execute(select(sites_t.c.id).order_by(sites_t.c.pos))]
    if site_ids is None:
        ids = known
    else:
        ids = list(dict.fromkeys(str(s) for s in site_ids))
        missing = sorted(set(ids) - set(known))
        if missing:
            raise KeyError(f"unknown site(s): {', '.join(missing[:10])}")
    rows = conn.execute(
        select(devices_t.c.id, devices_t.c.site_id, devices_t.c.kind).order_by(devices_t.c.pos)
    ).all()
    site_pos = {s: i for i, s in enumerate(ids)}
    rows = [r for r in rows if r.site_id in site_pos]
    dev_ids = [r.id for r in rows]
    n_sites, n_dev, n_steps = len(ids), len(rows), len(times)

    p = np.full((n_dev, n_steps), np.nan)
    if n_dev:
        end_utc = (times[-1] + pd.Timedelta(seconds=step_s)).to_pydatetime()
        df = query_telemetry_resampled(conn, dev_ids, times[0].to_pydatetime(), end_utc, step_s)
        if len(df):
            d = pd.Categorical(df["device_id"], categories=dev_ids).codes
            since = (df["ts"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
            epoch = since.to_numpy(dtype=np.int64)
            t = (epoch - int(times[0].timestamp())) // step_s
            ok = (d >= 0) & (t >= 0) & (t < n_steps)
            p[d[ok], t[ok]] = df["p_kw"].to_numpy()[ok]

    site_of = np.array([site_pos[r.site_id] for r in rows], dtype=np.int64)
    kinds = np.array([r.kind for r in rows], dtype=object)
    reported = np.isfinite(p)
    values = np.where(reported, p, 0.0)

    def sums(select_dev: npt.NDArray[np.bool_]) -> tuple[FloatArray, FloatArray, FloatArray]:
        m = sparse.csr_matrix(
            (np.ones(int(select_dev.sum())), (site_of[select_dev], np.flatnonzero(select_dev))),
            shape=(n_sites, n_dev),
        )
        total = np.asarray(m @ values, dtype=np.float64).reshape(n_sites, n_steps)
        count = np.asarray(m @ reported.astype(np.float64)).reshape(n_sites, n_steps)
        have = np.asarray(m.sum(axis=1), dtype=np.float64).reshape(n_sites, 1)
        return total, count, have

    total, count, have = sums(np.ones(n_dev, dtype=bool))
    net = np.where(count == have, total, np.nan)
    net[have[:, 0] == 0] = np.nan
    by_kind: dict[str, FloatArray] = {}
    for kind in sorted(set(kinds.tolist())):
        k_total, k_count, k_have = sums(kinds == kind)
        by_kind[str(kind)] = np.where(k_count == k_have, k_total, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        coverage = np.where(have > 0, count / np.maximum(have, 1.0), 0.0)
    return SitePower(
        site_ids=ids,
        times=times,
        step_s=step_s,
        net_kw=net,
        by_kind_kw=by_kind,
        coverage=coverage,
        devices_per_site=have[:, 0].astype(np.int64),
    )
