"""The application factory: REST under ``/api/v1``, OpenAPI at ``/docs``, ``/metrics``."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from fastapi import FastAPI

from gridflock.api._catalog import CatalogCache
from gridflock.api._docs import install_docs
from gridflock.api._guard import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_IMPORT_BYTES, Guard
from gridflock.api._openapi import install_openapi
from gridflock.api.auth import AuthCache, Revocations, SessionStore
from gridflock.api.errors import install_problem_handlers
from gridflock.api.routes import (
    admin,
    aggregates,
    assets,
    autopilot,
    envelopes,
    events,
    fleet,
    forecasts,
    gridcode,
    openadr,
    settlement,
    stream,
    system,
)
from gridflock.api.runtime import Runtime
from gridflock.api.schemas import ProblemOut

__all__ = ["API_PREFIX", "create_app"]

API_PREFIX = "/api/v1"

_DESCRIPTION = """
The REST API of a Gridflock virtual power plant.

**Authentication.** Send an API key as `Authorization: Bearer <key>` or `X-API-Key: <key>`
(create keys with `gridflock apikey create`); the dashboard's session cookie works too
(state-changing requests by cookie also need `X-Requested-With: gridflock`).
Roles: **viewer** reads everything, **operator** also creates and cancels events,
**admin** also imports the fleet, manages gateways and lists API keys.
`/api/v1/health` and `/metrics` need no key.

**Conventions.** Power in kW with the generator sign convention (> 0 towards the grid),
energy in kWh, state of charge 0..1, times ISO 8601 UTC. Errors are RFC 9457 problem
details (`application/problem+json`) with an `errors` list for invalid input.
"""

_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ProblemOut, "description": "No API key, or not a valid one."},
    403: {"model": ProblemOut, "description": "The key's role is too low."},
    422: {"model": ProblemOut, "description": "Invalid input: each problem in `errors`."},
}

_TAGS = [
    {"name": "system", "description": "Health and metrics (no API key)."},
    {"name": "fleet", "description": "The fleet as a whole."},
    {"name": "sites and devices", "description": "Sites, devices and their telemetry."},
    {"name": "events", "description": "Dispatch events and their performance."},
    {
        "name": "autopilot",
        "description": "Plans, proposals to approve or veto, policies and the decision log.",
    },
    {"name": "forecasts", "description": "Forecasts, need-for-support windows, models."},
    {"name": "gateways", "description": "Gateways on the MQTT broker."},
    {"name": "api keys", "description": "API keys (created with the CLI)."},
    {"name": "audit", "description": "Who did what."},
    {"name": "live", "description": "Server-Sent Events."},
]


def create_app(
    runtime: Runtime,
    *,
    title: str = "Gridflock",
    auth_cache_ttl_s: float = 5.0,
    stream_heartbeat_s: float = 15.0,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_import_bytes: int = DEFAULT_MAX_IMPORT_BYTES,
) -> FastAPI:
    """Build the API over ``runtime``.

    Parameters
    ----------
    runtime
        The live service the routes call.
    title
        Title shown in the OpenAPI docs.
    auth_cache_ttl_s
        How long a successful authentication is remembered [s], and how often the
        revoked keys are read from the database: a key revoked by another process
        (``gridflock apikey revoke``) keeps working at most this long. 0 disables the
        cache.
    stream_heartbeat_s
        Quiet time after which the live stream sends a heartbeat comment [s].
    max_body_bytes
        Largest request body [bytes]; a larger one is refused with 413 before it is read
        in full or the caller authenticated.
    max_import_bytes
        Largest fleet file ``POST /api/v1/fleet/import`` takes [bytes].

    """
    app = FastAPI(
        title=title,
        version=version("gridflock"),
        description=_DESCRIPTION,
        openapi_tags=_TAGS,
        docs_url=None,  # served offline by install_docs, not from a CDN
        openapi_url="/openapi.json",
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.state.auth_cache = AuthCache(ttl_s=auth_cache_ttl_s)
    app.state.catalog = CatalogCache()
    app.state.sessions = SessionStore()
    app.state.revocations = Revocations(ttl_s=auth_cache_ttl_s)
    app.state.stream_heartbeat_s = stream_heartbeat_s
    install_problem_handlers(app)
    app.add_middleware(
        Guard,
        max_body_bytes=max_body_bytes,
        path_limits={f"{API_PREFIX}/fleet/import": max_import_bytes},
    )
    install_docs(app)
    app.include_router(system.router, prefix=API_PREFIX)
    routers = (
        fleet,
        aggregates,
        assets,
        events,
        envelopes,
        gridcode,
        forecasts,
        settlement,
        autopilot,
        openadr,
        admin,
        stream,
    )
    for module in routers:
        app.include_router(module.router, prefix=API_PREFIX, responses=_AUTH_ERRORS)
    app.include_router(system.metrics_router)
    install_openapi(app)
    return app
