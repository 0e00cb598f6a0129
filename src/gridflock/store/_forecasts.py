"""Forecasts: model versions with their bundles, issued group forecasts, support windows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Table, and_, delete, func, insert, select
from sqlalchemy.engine import Connection

from gridflock.store._dialect import upsert
from gridflock.store.models import ForecastModelRow, ForecastRow, SupportWindowRow, table_of
from gridflock.store.records import ForecastModelRecord, IssuedForecast, SupportWindowRecord

__all__ = [
    "forecast_model_bundle",
    "forecast_models",
    "latest_forecasts",
    "latest_support_windows",
    "prune_forecasts",
    "save_forecast_model",
    "save_forecasts",
    "save_support_windows",
]

_KEYS = ("horizon", "quantity", "group_by", "group")


def _models() -> Table:
    return table_of(ForecastModelRow)


def _forecasts() -> Table:
    return table_of(ForecastRow)


def _windows() -> Table:
    return table_of(SupportWindowRow)


def save_forecast_model(
    conn: Connection,
    model_id: str,
    quantity: str,
    trained_at: datetime,
    data_start: datetime,
    data_end: datetime,
    params: dict[str, Any],
    backtest: dict[str, Any],
    bundle: bytes,
) -> ForecastModelRecord:
    """Store one model version (``AlreadyExists`` surfaces as the database's integrity error)."""
    conn.execute(
        insert(_models()).values(
            id=model_id,
            quantity=quantity,
            trained_at=trained_at,
            data_start=data_start,
            data_end=data_end,
            params=params,
            backtest=backtest,
            bundle=bundle,
        )
    )
    return ForecastModelRecord(
        model_id, quantity, trained_at, data_start, data_end, params, backtest, len(bundle)
    )


def forecast_models(
    conn: Connection, limit: int, offset: int, quantity: str | None
) -> list[ForecastModelRecord]:
    """Model versions, newest first, without their bundles."""
    t = _models()
    stmt = select(
        t.c.id,
        t.c.quantity,
        t.c.trained_at,
        t.c.data_start,
        t.c.data_end,
        t.c.params,
        t.c.backtest,
        func.length(t.c.bundle).label("size"),
    )
    if quantity is not None:
        stmt = stmt.where(t.c.quantity == quantity)
    stmt = stmt.order_by(t.c.trained_at.desc(), t.c.id.desc()).limit(limit).offset(offset)
    return [
        ForecastModelRecord(
            r.id,
            r.quantity,
            r.trained_at,
            r.data_start,
            r.data_end,
            dict(r.params),
            dict(r.backtest),
            int(r.size or 0),
        )
        for r in conn.execute(stmt)
    ]


def forecast_model_bundle(conn: Connection, model_id: str) -> bytes | None:
    """The serialised bundle of one model version, ``None`` if there is no such version."""
    t = _models()
    value = conn.execute(select(t.c.bundle).where(t.c.id == model_id)).scalar_one_or_none()
    return None if value is None else bytes(value)


def _json_values(values: np.ndarray) -> list[list[float | None]]:
    """``values`` as nested lists with NaN as null (JSON has no NaN)."""
    arr = np.asarray(values, dtype=np.float64)
    return [[None if not np.isfinite(v) else float(v) for v in row] for row in arr.tolist()]


def save_forecasts(conn: Connection, forecasts: Sequence[IssuedForecast]) -> int:
    """Insert or overwrite issued forecasts (one per issue, horizon, quantity and group)."""
    if not forecasts:
        return 0
    t = _forecasts()
    rows = []
    for f in forecasts:
        values = np.asarray(f.values_kw, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != len(f.quantiles):
            raise ValueError(
                f"forecast {f.quantity}/{f.group_by}:{f.group}: values must be "
                f"(steps, {len(f.quantiles)} quantiles), got shape {values.shape}"
            )
        rows.append(
            {
                "issued_at": f.issued_at,
                "horizon": f.horizon,
                "quantity": f.quantity,
                "group_by": f.group_by,
                "group": f.group,
                "model_id": f.model_id,
                "start": f.start,
                "step_s": int(f.step_s),
                "quantiles": [float(q) for q in f.quantiles],
                "values_kw": _json_values(values),
            }
        )
    conn.execute(upsert(conn, t, ["issued_at", *_KEYS]), rows)
    return len(rows)


def _issued(r: Any) -> IssuedForecast:
    values = np.array(
        [[np.nan if v is None else v for v in row] for row in r.values_kw], dtype=np.float64
    ).reshape(len(r.values_kw), len(r.quantiles))
    return IssuedForecast(
        issued_at=r.issued_at,
        horizon=r.horizon,
        quantity=r.quantity,
        group_by=r.group_by,
        group=r.group,
        model_id=r.model_id,
        start=r.start,
        step_s=int(r.step_s),
        quantiles=tuple(float(q) for q in r.quantiles),
        values_kw=values,
    )


def latest_forecasts(
    conn: Connection,
    horizon: str | None,
    quantity: str | None,
    group_by: str | None,
    group: str | None,
    before: datetime | None,
) -> list[IssuedForecast]:
    """The newest issued forecast per horizon, quantity and group matching the filters.

    ``before`` keeps issues strictly before that time (the forecast known then).
    """
    t = _forecasts()
    filters = []
    for name, value in zip(_KEYS, (horizon, quantity, group_by, group), strict=True):
        if value is not None:
            filters.append(t.c[name] == value)
    if before is not None:
        filters.append(t.c.issued_at < before)
    newest = select(*(t.c[k] for k in _KEYS), func.max(t.c.issued_at).label("issued_at"))
    if filters:
        newest = newest.where(*filters)
    last = newest.group_by(*(t.c[k] for k in _KEYS)).subquery("last")
    stmt = (
        select(t)
        .join(
            last,
            and_(t.c.issued_at == last.c.issued_at, *(t.c[k] == last.c[k] for k in _KEYS)),
        )
        .order_by(*(t.c[k] for k in _KEYS))
    )
    return [_issued(r) for r in conn.execute(stmt)]


def save_support_windows(
    conn: Connection, issued_at: datetime, horizon: str, windows: Sequence[SupportWindowRecord]
) -> int:
    """Replace the windows of one issue (``issued_at``, ``horizon``) with ``windows``."""
    t = _windows()
    conn.execute(delete(t).where(t.c.issued_at == issued_at, t.c.horizon == horizon))
    if windows:
        conn.execute(
            insert(t),
            [
                {
                    "issued_at": issued_at,
                    "horizon": horizon,
                    "scope": w.scope,
                    "start": w.start,
                    "end": w.end,
                    "probability": float(w.probability),
                    "kw_needed": float(w.kw_needed),
                    "kw_needed_p90": float(w.kw_needed_p90),
                    "reason": w.reason,
                }
                for w in windows
            ],
        )
    return len(windows)


def latest_support_windows(conn: Connection, horizon: str | None) -> list[SupportWindowRecord]:
    """The windows of the newest issue of each horizon (or of ``horizon``), by start."""
    t = _windows()
    newest = select(t.c.horizon, func.max(t.c.issued_at).label("issued_at")).group_by(t.c.horizon)
    if horizon is not None:
        newest = newest.where(t.c.horizon == horizon)
    last = newest.subquery("last")
    stmt = (
        select(t)
        .join(last, and_(t.c.horizon == last.c.horizon, t.c.issued_at == last.c.issued_at))
        .order_by(t.c.start, t.c.scope, t.c.id)
    )
    return [
        SupportWindowRecord(
            r.issued_at,
            r.horizon,
            r.scope,
            r.start,
            r.end,
            r.probability,
            r.kw_needed,
            r.reason,
            r.kw_needed_p90,
        )
        for r in conn.execute(stmt)
    ]


def prune_forecasts(conn: Connection, before: datetime, keep_models: int) -> int:
    """Delete forecasts and windows issued before ``before`` and all but the newest models.

    Returns the rows deleted. Keeps the database bounded under a 15-min issue cadence.
    """
    f, w, m = _forecasts(), _windows(), _models()
    n = conn.execute(delete(f).where(f.c.issued_at < before)).rowcount or 0
    n += conn.execute(delete(w).where(w.c.issued_at < before)).rowcount or 0
    keep = select(m.c.id).order_by(m.c.trained_at.desc(), m.c.id.desc()).limit(keep_models)
    kept = [r[0] for r in conn.execute(keep)]
    if kept:
        n += conn.execute(delete(m).where(m.c.id.not_in(kept))).rowcount or 0
    return int(n)
