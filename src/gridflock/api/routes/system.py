"""Health and Prometheus metrics: open without an API key (for probes and scrapers)."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from gridflock.api._convert import jsonable
from gridflock.api.deps import RuntimeDep
from gridflock.api.schemas import HealthOut

__all__ = ["metrics_router", "router"]

router = APIRouter(tags=["system"])
metrics_router = APIRouter(tags=["system"])

log = logging.getLogger(__name__)

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


@router.get(
    "/health",
    summary="Service health",
    description=(
        "Whether the service works, and the state of each dependency (database, MQTT "
        "broker, control loop). **No API key needed**, so load balancers and probes can "
        "call it. HTTP 200 for `ok` and `degraded`, 503 only when the service is `down`."
    ),
    response_model=HealthOut,
    responses={
        200: {
            "content": {
                "application/json": {
                    "example": {"status": "ok", "database": "up", "mqtt": "connected"}
                }
            }
        },
        503: {"description": "The service is down.", "model": HealthOut},
    },
)
async def health(runtime: RuntimeDep) -> Any:
    """Report ``runtime.health()``."""
    try:
        info = jsonable(await run_in_threadpool(runtime.health))
    except Exception as exc:  # a health check that fails says so rather than a bare 500
        # open to anyone: the answer names the error id, the log holds the details
        error_id = secrets.token_hex(8)
        log.error("health check failed (error id %s)", error_id, exc_info=exc)
        info = {
            "status": "down",
            "error": f"the health check failed ({type(exc).__name__}); the service log has "
            f"the details under error id {error_id}",
        }
    status = str(info.get("status", "ok"))
    body = {**info, "status": status if status in ("ok", "degraded", "down") else "degraded"}
    if body["status"] == "down":
        return JSONResponse(body, status_code=503)
    return body


@metrics_router.get(
    "/metrics",
    summary="Prometheus metrics",
    description=(
        "The service's metrics in the Prometheus text format (version 0.0.4). **No API "
        "key needed**: restrict access at the network or proxy if the figures are private."
    ),
    response_class=Response,
    responses={200: {"content": {PROMETHEUS_TEXT: {"schema": {"type": "string"}}}}},
)
async def metrics(runtime: RuntimeDep) -> Response:
    """Expose ``runtime.metrics()``."""
    return Response(content=runtime.metrics(), media_type=PROMETHEUS_TEXT)
