"""Forecasts: latest quantiles per quantity and group, support windows, models, retraining.

The latest forecast of each quantity and group comes with what happened so far; model
versions with their backtest figures; retraining on demand for operators.

Powers are group totals in kW with the generator sign convention (> 0 towards the grid):
a fleet importing 300 kW has ``net`` = -300 kW.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Path, Query, status
from pydantic import BaseModel, Field

from gridflock.api._convert import iso
from gridflock.api.auth import Operator, Viewer
from gridflock.api.deps import PageDep, RuntimeDep
from gridflock.api.errors import ProblemError
from gridflock.api.runtime import Runtime
from gridflock.api.schemas import PageOut, ProblemOut
from gridflock.forecast import peak_step
from gridflock.store.records import IssuedForecast

__all__ = ["router"]

router = APIRouter(tags=["forecasts"])

Horizon = Literal["intraday", "day_ahead", "next_48h"]
_HORIZON_DOC = "intraday, day_ahead or next_48h (flex_up and flex_down only)."
GroupBy = Literal["fleet", "grid_node", "program", "region"]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ProblemOut}}
#: Model versions listed at most (the service keeps the newest 20).
_MAX_MODELS = 1000


class ForecastStatusOut(BaseModel):
    """What the forecaster is doing and what it has."""

    enabled: bool
    state: str = Field(
        description="starting, training, issuing ..., ready, waiting for history, failing, "
        "disabled."
    )
    busy: bool = Field(description="Whether training or issuing is running now.")
    model_id: str | None = Field(description="Model version in use.")
    trained_at: str | None
    weather: str = Field(description="Weather forecasts used: the source's name, or none.")
    timezone: str = Field(description="Local time zone of the day-ahead.")
    quantiles: list[float]
    quantities: list[str] = Field(description="Quantities forecast.")
    groups: dict[str, list[str]] = Field(description="Grouping -> its groups.")
    last_intraday: str | None
    last_day_ahead: str | None
    next_intraday: str | None
    next_day_ahead: str | None
    next_retrain: str | None
    retrain_requested: bool
    last_error: str | None = Field(description="The last failure, in words (null: none).")
    last_error_at: str | None
    timings_s: dict[str, float] = Field(description="Duration of the last runs [s].")


class GroupForecastOut(BaseModel):
    """One group's latest forecast of one quantity: quantiles per 15-min step, and actuals."""

    horizon: Horizon
    quantity: str
    group_by: str = Field(description="fleet, grid_node, program, region, or site.")
    group: str = Field(description="The group, or the site's id.")
    issued_at: str
    model_id: str | None
    step_s: int = Field(description="Step length [s].")
    quantiles: list[float] = Field(description="Probability levels of `values` (0..1).")
    ts: list[str] = Field(description="Start of each step (UTC).")
    values: dict[str, list[float | None]] = Field(
        description="Per quantile (`p10`, `p50`, `p90`, ...): kW at each step, generator sign."
    )
    actual_kw: list[float | None] = Field(
        description="What happened at each step so far [kW]; null where not yet known."
    )
    peak_at: str | None = Field(
        None,
        description="The forecast's peak time (UTC step start): the step most likely within "
        "30 min of the span's highest value (for `net`: the largest import), from sample paths "
        "of the median and the error process learned in training; null without a median.",
    )


class ForecastSummaryOut(BaseModel):
    """A latest forecast without its values (the index)."""

    horizon: Horizon
    quantity: str
    group_by: GroupBy
    group: str
    issued_at: str
    start: str
    steps: int
    model_id: str | None


class SupportWindowOut(BaseModel):
    """A window in which the grid is forecast to need the plant."""

    horizon: Horizon
    issued_at: str
    scope: str = Field(description="`fleet` or `grid_node:<id>`, as an event's scope.")
    start: str
    end: str = Field(description="End (excluded).")
    probability: float = Field(description="Largest probability in the window (0..1).")
    kw_needed: float = Field(description="Largest median (P50) excess over the limit [kW].")
    kw_needed_p90: float = Field(
        description="Largest P90 excess over the limit [kW]: what to hold in reserve."
    )
    reason: str


class ModelVersionOut(BaseModel):
    """A trained model version and its backtest figures."""

    id: str
    quantity: str
    trained_at: str
    data_start: str
    data_end: str
    params: dict[str, Any]
    backtest: dict[str, Any] = Field(description="Figures measured on held-out data.")
    size_bytes: int
    in_use: bool


class RetrainOut(BaseModel):
    """The answer to a retraining request."""

    accepted: bool = Field(description="False when a retraining is already asked or running.")
    detail: str
    state: str


#: Times outside [2000, 2200) are taken as their edge (the database holds none beyond).
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def clip_time(t: datetime) -> datetime:
    """``t`` in UTC, within the range a database column holds."""
    try:
        t = t.astimezone(UTC)
    except (OverflowError, ValueError):  # year 1 or 9999 shifted out of range by its zone
        return _EARLIEST if t.year < 2000 else _LATEST
    return min(max(t, _EARLIEST), _LATEST)


def _pct(q: float) -> str:
    return f"p{round(q * 100):02d}"


def _finite(values: Any) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, dtype=float)]


def _group_out(runtime: Runtime, f: IssuedForecast) -> dict[str, Any]:
    n = f.values_kw.shape[0]
    start = f.start.timestamp()
    return {
        "horizon": f.horizon,
        "quantity": f.quantity,
        "group_by": f.group_by,
        "group": f.group,
        "issued_at": iso(f.issued_at),
        "model_id": f.model_id,
        "step_s": f.step_s,
        "quantiles": list(f.quantiles),
        "ts": [iso(start + i * f.step_s) for i in range(n)],
        "values": {_pct(q): _finite(f.values_kw[:, i]) for i, q in enumerate(f.quantiles)},
        "actual_kw": _finite(runtime.forecasts.actuals(f)),
        "peak_at": _peak_at(runtime, f),
    }


def _peak_at(runtime: Runtime, f: IssuedForecast) -> str | None:
    """The forecast's peak time with the current model's learned error process."""
    if 0.5 not in f.quantiles or len(f.quantiles) < 3 or not len(f.values_kw):
        return None
    kind = "site" if f.group_by == "site" else "group"
    ar = runtime.forecasts.error_ar(f.quantity, f.horizon, kind)
    idx = peak_step(f.values_kw, f.quantiles, ar, lowest=f.quantity == "net")
    return None if idx is None else iso(f.start.timestamp() + idx * f.step_s)


@router.get(
    "/forecasts",
    summary="Forecaster status",
    description=(
        "What the forecaster does now, the model in use, the last and next issues (intraday "
        "every 15 min, day-ahead D-1 before noon local), the quantities and groups forecast, "
        "and the last failure in words. Role: viewer."
    ),
    response_model=ForecastStatusOut,
)
def forecast_status(runtime: RuntimeDep, _: Viewer) -> Any:
    """Report ``forecasts.status()``."""
    fc = runtime.forecasts
    out = dict(fc.status())
    for key in (
        "trained_at",
        "last_intraday",
        "last_day_ahead",
        "next_intraday",
        "next_day_ahead",
        "next_retrain",
        "last_error_at",
    ):
        out[key] = iso(out.get(key))
    out["quantities"] = list(fc.quantities())
    out["groups"] = fc.groups
    return out


@router.get(
    "/forecasts/latest",
    summary="Latest forecasts (index)",
    description=(
        "The latest issued forecast of every horizon, quantity and group, without values; "
        "filter by `horizon`, `quantity`, `group_by`. Role: viewer."
    ),
    response_model=PageOut[ForecastSummaryOut],
)
def forecast_index(
    runtime: RuntimeDep,
    _: Viewer,
    page: PageDep,
    horizon: Annotated[Horizon | None, Query(description="Only this horizon.")] = None,
    quantity: Annotated[str | None, Query(max_length=64, description="Only this quantity.")] = None,
    group_by: Annotated[GroupBy | None, Query(description="Only this grouping.")] = None,
) -> Any:
    """Report ``forecasts.latest`` as a page of summaries."""
    found = runtime.forecasts.latest(horizon, quantity, group_by)
    items = [
        {
            "horizon": f.horizon,
            "quantity": f.quantity,
            "group_by": f.group_by,
            "group": f.group,
            "issued_at": iso(f.issued_at),
            "start": iso(f.start),
            "steps": int(f.values_kw.shape[0]),
            "model_id": f.model_id,
        }
        for f in found
    ]
    return {"items": items[page.slice()], "total": len(items), **page.__dict__}


@router.get(
    "/forecasts/support-windows",
    summary="Need-for-support windows",
    description=(
        "Windows of the latest issue in which the fleet's net import is forecast to exceed "
        "its threshold, or a grid node's its import limit: each with its probability and "
        "the kW the plant would need to give. Role: viewer."
    ),
    response_model=list[SupportWindowOut],
)
def forecast_support_windows(
    runtime: RuntimeDep,
    _: Viewer,
    horizon: Annotated[Horizon | None, Query(description="Only this horizon.")] = None,
) -> Any:
    """Report ``forecasts.support``."""
    return [
        {
            "horizon": w.horizon,
            "issued_at": iso(w.issued_at),
            "scope": w.scope,
            "start": iso(w.start),
            "end": iso(w.end),
            "probability": w.probability,
            "kw_needed": w.kw_needed,
            "kw_needed_p90": w.kw_needed_p90,
            "reason": w.reason,
        }
        for w in runtime.forecasts.support(horizon)
    ]


@router.get(
    "/forecasts/models",
    summary="Model versions",
    description=(
        "Trained model versions, newest first, with their training range, parameters and "
        "backtest figures; `in_use` marks the one issuing forecasts. Role: viewer."
    ),
    response_model=PageOut[ModelVersionOut],
)
def forecast_models(runtime: RuntimeDep, _: Viewer, page: PageDep) -> Any:
    """Report ``store.forecast_models``, paged."""
    versions = runtime.store.forecast_models(limit=_MAX_MODELS)
    in_use = runtime.forecasts.status().get("model_id")
    items = [
        {
            "id": m.id,
            "quantity": m.quantity,
            "trained_at": iso(m.trained_at),
            "data_start": iso(m.data_start),
            "data_end": iso(m.data_end),
            "params": m.params,
            "backtest": m.backtest,
            "size_bytes": m.size_bytes,
            "in_use": m.id == in_use,
        }
        for m in versions
    ]
    return {"items": items[page.slice()], "total": len(items), **page.__dict__}


@router.post(
    "/forecasts/retrain",
    summary="Retrain now",
    description=(
        "Ask for the models to be retrained on the latest history as soon as possible (in "
        "the background; the current model keeps issuing until the new one is stored). "
        "Role: operator."
    ),
    response_model=RetrainOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses={409: {"model": ProblemOut}},
)
def forecast_retrain(runtime: RuntimeDep, principal: Operator) -> Any:
    """Call ``forecasts.request_retrain``."""
    fc = runtime.forecasts
    if not fc.status().get("enabled", True):
        raise ProblemError(
            409, "forecasting is disabled (GRIDFLOCK_FORECAST_ENABLED=false): nothing to retrain"
        )
    accepted = fc.request_retrain()
    detail = (
        f"retraining asked by {principal.name}; GET /api/v1/forecasts shows its progress"
        if accepted
        else "a retraining is already asked or running; GET /api/v1/forecasts shows it"
    )
    return {"accepted": accepted, "detail": detail, "state": fc.status()["state"]}


@router.get(
    "/forecasts/{horizon}/{quantity}/sites/{site_id}",
    summary="Latest forecast of a site",
    description=(
        "One site's latest `horizon` forecast of `quantity` (kept in memory for the latest "
        "issue): quantiles at each 15-min step and what the site measured so far. 404 for "
        "an unknown site or quantity, or before the first issue. Role: viewer."
    ),
    response_model=GroupForecastOut,
    responses=_NOT_FOUND,
)
def forecast_of_site(
    runtime: RuntimeDep,
    _: Viewer,
    horizon: Annotated[Horizon, Path(description=_HORIZON_DOC)],
    quantity: Annotated[str, Path(max_length=64, description="net, load, pv, ...")],
    site_id: Annotated[str, Path(max_length=200, description="Site id.")],
) -> Any:
    """Report ``forecasts.site``, with the site's actuals."""
    fc = runtime.forecasts
    known = fc.quantities()
    if quantity not in known:
        hint = ", ".join(known) if known else "none yet: no model is trained"
        raise ProblemError(404, f"unknown quantity {quantity!r}: forecast quantities are {hint}")
    found = fc.site(horizon, quantity, site_id)
    if found is None:
        raise ProblemError(
            404,
            f"no {horizon} forecast of {quantity} for site {site_id!r}: the site is unknown "
            "(list sites at /api/v1/sites) or no forecast was issued since the service started",
        )
    return _group_out(runtime, found)


@router.get(
    "/forecasts/{horizon}/{quantity}",
    summary="Latest forecast of a group",
    description=(
        "The latest `horizon` forecast of `quantity` for one group (default the fleet): "
        "quantiles at each 15-min step and what happened so far. 404 for a quantity or group "
        "the forecaster does not know, or before the first issue. Role: viewer."
    ),
    response_model=GroupForecastOut,
    responses=_NOT_FOUND,
)
def forecast_of_group(
    runtime: RuntimeDep,
    _: Viewer,
    horizon: Annotated[Horizon, Path(description=_HORIZON_DOC)],
    quantity: Annotated[
        str, Path(max_length=64, description="net, load, pv, wind, heat_pump, ...")
    ],
    group_by: Annotated[GroupBy, Query(description="Grouping.")] = "fleet",
    group: Annotated[
        str | None, Query(max_length=200, description="Group (default: the fleet).")
    ] = None,
    issued_before: Annotated[
        datetime | None,
        Query(
            description="The latest forecast issued strictly before this time (ISO 8601 with "
            "a zone) instead of the latest: what was forecast for hours that have happened."
        ),
    ] = None,
) -> Any:
    """Report ``forecasts.latest`` for one group, with its actuals."""
    fc = runtime.forecasts
    known = fc.quantities()
    if quantity not in known:
        hint = ", ".join(known) if known else "none yet: no model is trained"
        raise ProblemError(404, f"unknown quantity {quantity!r}: forecast quantities are {hint}")
    name = group if group is not None else ("fleet" if group_by == "fleet" else None)
    if name is None:
        groups = fc.groups.get(group_by, [])[:20]
        raise ProblemError(404, f"give a group of {group_by}: one of {groups}")
    if name not in fc.groups.get(group_by, []):
        raise ProblemError(
            404,
            f"unknown {group_by} {name!r}: GET /api/v1/forecasts lists the groups",
        )
    before = None
    if issued_before is not None:
        if issued_before.tzinfo is None:
            raise ProblemError(422, "issued_before needs a time zone, e.g. 2026-06-01T12:00:00Z")
        before = clip_time(issued_before)
    found = fc.latest(horizon, quantity, group_by, name, before=before)
    if not found:
        when = "" if before is None else f" before {iso(before)}"
        raise ProblemError(
            404,
            f"no {horizon} forecast of {quantity} for {group_by} {name!r} issued{when} yet: "
            "GET /api/v1/forecasts says when the next one is due",
        )
    return _group_out(runtime, found[0])
