"""Errors as RFC 9457 problem details (``application/problem+json``), for every failure.

Each error response carries ``type``, ``title``, ``status``, ``detail`` and ``instance``
(the request path); validation failures add ``errors``: one ``{field, message}`` per
problem, so a client can point at every bad input at once.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from gridflock.domain.errors import (
    ConflictError,
    GridflockError,
    InvalidError,
    NotFoundError,
    Problem,
    UnavailableError,
    ValidationError,
    clip,
)

__all__ = [
    "PROBLEM_JSON",
    "FieldError",
    "ProblemError",
    "database_unavailable",
    "install_problem_handlers",
    "internal_error_response",
    "problem_response",
]

PROBLEM_JSON = "application/problem+json"
_TYPE_BASE = "https://gridflock.dev/problems/"
_log = logging.getLogger(__name__)

FieldError = dict[str, str]

#: Longest ``detail`` (and error message) a problem carries [characters]: an answer never
#: echoes more than a bounded prefix of what the caller sent.
MAX_DETAIL_CHARS = 500
#: Most ``errors`` entries a problem lists; the rest are counted in a last entry.
MAX_ERRORS = 100


class ProblemError(Exception):
    """An error a route raises on purpose, rendered as a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        type_: str | None = None,
        title: str | None = None,
        errors: Sequence[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.type = type_
        self.title = title
        self.errors = list(errors) if errors is not None else None
        self.headers = headers


def _type_for(status: int) -> str:
    slug = {
        400: "bad-request",
        401: "unauthorized",
        403: "forbidden",
        404: "not-found",
        405: "method-not-allowed",
        409: "conflict",
        413: "content-too-large",
        415: "unsupported-media-type",
        422: "validation-error",
        501: "not-implemented",
        503: "unavailable",
    }.get(status)
    return _TYPE_BASE + slug if slug else "about:blank"


def problem_response(
    request: Request,
    status: int,
    detail: str,
    *,
    type_: str | None = None,
    title: str | None = None,
    errors: Sequence[FieldError] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    """A problem document for ``request`` with HTTP ``status`` (``extra``: more members)."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:  # pragma: no cover - every status we send is a known one
        phrase = "Error"
    body: dict[str, Any] = {
        "type": type_ or _type_for(status),
        "title": title or phrase,
        "status": status,
        "detail": clip(detail, MAX_DETAIL_CHARS),
        "instance": clip(request.url.path, MAX_DETAIL_CHARS),
    }
    if errors is not None:
        body["errors"] = _bounded(errors)
    body.update(extra or {})
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _bounded(errors: Sequence[FieldError]) -> list[FieldError]:
    """At most :data:`MAX_ERRORS` entries, each value clipped, and a last one for the rest."""
    out = [{k: clip(str(v), MAX_DETAIL_CHARS) for k, v in e.items()} for e in errors[:MAX_ERRORS]]
    if len(errors) > MAX_ERRORS:
        out.append(
            {"field": "", "message": f"... and {len(errors) - MAX_ERRORS:,} more problem(s)"}
        )
    return out


def _field(loc: Sequence[int | str]) -> str:
    """``("body", "scope")`` → ``scope``; ``("query", "start")`` → ``start``."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie") and len(parts) > 1:
        parts = parts[1:]
    return clip(".".join(parts))


def _message(err: dict[str, Any]) -> str:
    msg = str(err.get("msg", "invalid value"))
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    return msg


def problems_as_errors(problems: Sequence[Problem]) -> list[FieldError]:
    """Domain problems as ``errors`` entries (entry, field and message of each)."""
    return [
        {"entry": p.entry, "field": p.field, "message": p.message, "source": p.source}
        for p in problems
    ]


async def _on_api_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(
        request,
        exc.status,
        exc.detail,
        type_=exc.type,
        title=exc.title,
        errors=exc.errors,
        headers=exc.headers,
    )


async def _on_request_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"field": _field(e.get("loc", ())), "message": _message(e)} for e in exc.errors()]
    n = len(errors)
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    return problem_response(
        request,
        422,
        f"{n} invalid input(s): {detail}" if n else "invalid request",
        title="Invalid request",
        errors=errors,
    )


async def _on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no resource at {clip(request.url.path)}; see /docs for the API"
    headers = dict(exc.headers) if exc.headers else None
    return problem_response(request, exc.status_code, detail, headers=headers)


async def _on_domain_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ValidationError)
    n = len(exc.problems)
    return problem_response(
        request,
        422,
        f"{n} problem(s) found; each is listed in errors",
        type_=_TYPE_BASE + "invalid-input",
        title="Invalid input",
        errors=problems_as_errors(exc.problems),
    )


#: Declared domain errors and the HTTP status each stands for (most specific first).
_DECLARED: tuple[tuple[type[GridflockError], int, str], ...] = (
    (NotFoundError, 404, "Not Found"),
    (ConflictError, 409, "Conflict"),
    (InvalidError, 422, "Request cannot be carried out"),
    (UnavailableError, 503, "Service Unavailable"),
)


async def _on_domain_error(request: Request, exc: Exception) -> JSONResponse:
    """A declared domain error as its 4xx (or 503); any other Gridflock error is a bug."""
    assert isinstance(exc, GridflockError)
    for kind, status, title in _DECLARED:
        if isinstance(exc, kind):
            headers = {"Retry-After": "5"} if status == 503 else None
            return problem_response(request, status, str(exc), title=title, headers=headers)
    return internal_error_response(request, exc)


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached or used now (not a bug).

    Lost or refused connections, an exhausted pool, the driver's operational errors: a
    request that needs the database then gets a 503 to retry, not a 500.
    """
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(
        exc,
        sa_exc.OperationalError
        | sa_exc.InterfaceError
        | sa_exc.DisconnectionError
        | sa_exc.TimeoutError
        | psycopg.OperationalError,
    )


def internal_error_response(request: Request, exc: BaseException) -> JSONResponse:
    """A 500 problem carrying a fresh error id; the traceback is logged under that id.

    The answer says nothing of the error itself (it may hold internals); the operator
    finds it in the log by the id the client reports. A database outage is no bug: it
    answers 503 with ``Retry-After`` (logged as a warning, also under an error id).
    """
    error_id = secrets.token_hex(8)
    if database_unavailable(exc):
        _log.warning(
            "database unavailable (error id %s) on %s %s: %s",
            error_id,
            request.method,
            request.url.path,
            clip(repr(exc), 300),
        )
        return problem_response(
            request,
            503,
            "the database is unavailable for now, and this request needs it; the service "
            "keeps dispatching from memory: retry in a few seconds",
            type_=_TYPE_BASE + "unavailable",
            headers={"Retry-After": "5", "X-Error-Id": error_id},
            extra={"error_id": error_id},
        )
    _log.error(
        "internal error %s on %s %s: %s",
        error_id,
        request.method,
        request.url.path,
        clip(repr(exc), 1000),
        exc_info=exc,
        extra={"error_id": error_id},
    )
    return problem_response(
        request,
        500,
        f"the server failed to handle this request; report error id {error_id} to the "
        "operator, who finds the cause in the service log",
        type_=_TYPE_BASE + "internal-error",
        headers={"X-Error-Id": error_id},
        extra={"error_id": error_id},
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Render every error ``app`` raises as problem+json.

    Only declared errors become client errors: request validation and the framework's
    HTTP errors, :class:`ProblemError` raised by a route, and the domain's
    :class:`~gridflock.domain.errors.NotFoundError` (404), ``ConflictError`` (409),
    ``InvalidError`` (422, ``ValidationError`` listing each problem) and
    ``UnavailableError`` (503). Anything else, a ``ValueError`` or ``KeyError`` from a
    bug included, is a 500 with an error id (see :mod:`gridflock.api._guard`, which
    catches it).
    """
    app.add_exception_handler(ProblemError, _on_api_problem)
    app.add_exception_handler(RequestValidationError, _on_request_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(ValidationError, _on_domain_validation)
    app.add_exception_handler(GridflockError, _on_domain_error)
