"""Dashboard routes: sign in and out, the pages, and the assets they load.

Signing in checks an API key once (``runtime.authenticate``) and starts a server-side
session; the browser keeps only its opaque id in an HttpOnly, Secure, SameSite=Strict
cookie. The key is posted in the form body: never in a URL, never in script-visible
storage. The API accepts the same cookie (see :mod:`gridflock.api.auth`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from gridflock.api.auth import SESSION_COOKIE, SessionStore, session_principal
from gridflock.api.runtime import Runtime
from gridflock.domain.auth import Principal
from gridflock.web import _pages
from gridflock.web._assets import router as assets_router
from gridflock.web._assets import static_files

__all__ = ["install_dashboard", "router"]

router = APIRouter(include_in_schema=False)

_BAD_KEY = (
    "That API key is not valid: it is unknown, mistyped or revoked. Check it, or ask an "
    "admin for a new one."
)
_NO_DB = "The key cannot be checked right now (the database is not reachable). Try again soon."
_MAX_FORM_BYTES = 4096
_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def _sessions(request: Request) -> SessionStore:
    sessions: SessionStore = request.app.state.sessions
    return sessions


async def _principal(request: Request) -> Principal | None:
    return await session_principal(request)


def _html(content: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(content, status_code=status_code, headers=_SECURITY_HEADERS)


def _to_signin() -> RedirectResponse:
    return RedirectResponse("/signin", status_code=303, headers={"Cache-Control": "no-store"})


@router.get("/signin")
async def signin_form(request: Request) -> Response:
    """The sign-in page (or the overview when already signed in)."""
    if await _principal(request) is not None:
        return RedirectResponse("/", status_code=303)
    return _html(_pages.signin_page())


@router.post("/signin")
async def signin(request: Request) -> Response:
    """Check the posted key; on success start a session and go to the overview."""
    body = await request.body()
    fields = parse_qs(body[:_MAX_FORM_BYTES].decode("utf-8", "replace"))
    key = (fields.get("api_key") or [""])[0].strip()
    if not key:
        return _html(_pages.signin_page("Enter an API key to sign in."), 401)
    runtime: Runtime = request.app.state.runtime
    try:
        principal = await run_in_threadpool(runtime.authenticate, key)
    except Exception:
        return _html(_pages.signin_page(_NO_DB), 503)
    if principal is None:
        return _html(_pages.signin_page(_BAD_KEY), 401)
    sessions = _sessions(request)
    sessions.end(request.cookies.get(SESSION_COOKIE))  # no fixation of an older session
    response = RedirectResponse("/", status_code=303, headers={"Cache-Control": "no-store"})
    response.set_cookie(
        SESSION_COOKIE,
        sessions.create(principal),
        max_age=int(sessions.ttl_s),
        path="/",
        secure=True,
        httponly=True,
        samesite="strict",
    )
    return response


@router.post("/signout")
async def signout(request: Request) -> Response:
    """End the session and go back to the sign-in page."""
    _sessions(request).end(request.cookies.get(SESSION_COOKIE))
    response = _to_signin()
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    return response


def _view(title: str, section: str, body: Callable[[Principal], str], module: str) -> None:
    async def handler(request: Request) -> Response:
        principal = await _principal(request)
        if principal is None:
            return _to_signin()
        return _html(_pages.page(title, section, principal, body(principal), module=module))

    handler.__name__ = f"page_{module}"
    router.add_api_route("/" if module == "overview" else f"/{module}", handler, methods=["GET"])


_view("Overview", "overview", lambda _: _pages.overview_body(), "overview")
_view("Grid", "grid", lambda _: _pages.grid_body(), "grid")
_view("Events", "events", _pages.events_body, "events")
_view("Sites", "sites", lambda _: _pages.sites_body(), "sites")
_view("Plan", "plan", _pages.plan_body, "plan")
_view("Forecast", "forecast", _pages.forecast_body, "forecast")
_view("Value", "value", lambda _: _pages.value_body(), "value")

IdPath = Annotated[str, Path(max_length=200)]


@router.get("/events/{event_id}")
async def event_page(request: Request, event_id: IdPath) -> Response:
    """One event."""
    principal = await _principal(request)
    if principal is None:
        return _to_signin()
    body = _pages.event_body(principal, event_id)
    return _html(_pages.page(event_id, "events", principal, body, module="event", ident=event_id))


@router.get("/sites/{site_id}")
async def site_page(request: Request, site_id: IdPath) -> Response:
    """One site."""
    principal = await _principal(request)
    if principal is None:
        return _to_signin()
    body = _pages.site_body(site_id)
    return _html(_pages.page(site_id, "sites", principal, body, module="site", ident=site_id))


def install_dashboard(app: FastAPI) -> None:
    """Serve the dashboard from ``app`` (made by :func:`gridflock.api.create_app`)."""
    if not hasattr(app.state, "sessions"):
        app.state.sessions = SessionStore()
    app.include_router(assets_router)
    app.include_router(router)
    app.mount("/assets/static", static_files(), name="dashboard-static")
