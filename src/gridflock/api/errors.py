"""Errors as RFC 9457 problem details (``application/problem+json``), for every failure.

Each error response carries ``type``, ``title``, ``status``, ``detail`` and ``instance``
(the request path); validation failures add ``errors``: one ``{field, message}`` per
problem, so a client can point at every bad input at once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gridflock.domain.errors import Problem, ValidationError
from gridflock.store.errors import DatabaseUnavailableError

__all__ = [
    "PROBLEM_JSON",
    "FieldError",
    "ProblemError",
    "install_problem_handlers",
    "problem_response",
]

PROBLEM_JSON = "application/problem+json"
_TYPE_BASE = "https://gridflock.dev/problems/"
_log = logging.getLogger(__name__)

FieldError = dict[str, str]


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
) -> JSONResponse:
    """A problem document for ``request`` with HTTP ``status``."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:  # pragma: no cover - every status we send is a known one
        phrase = "Error"
    body: dict[str, Any] = {
        "type": type_ or _type_for(status),
        "title": title or phrase,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    if errors is not None:
        body["errors"] = list(errors)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _field(loc: Sequence[int | str]) -> str:
    """``("body", "scope")`` → ``scope``; ``("query", "start")`` → ``start``."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie") and len(parts) > 1:
        parts = parts[1:]
    return ".".join(parts)


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
        detail = f"no resource at {request.url.path}; see /docs for the API"
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


async def _on_value_error(request: Request, exc: Exception) -> JSONResponse:
    return problem_response(request, 422, str(exc), title="Request cannot be carried out")


def _key_text(exc: BaseException) -> str:
    if exc.args and isinstance(exc.args[0], str):
        return exc.args[0]
    return str(exc)


async def _on_key_error(request: Request, exc: Exception) -> JSONResponse:
    return problem_response(request, 404, _key_text(exc))


async def _on_database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """The database is away: 503 with a retry hint (what lives in memory still answers)."""
    return problem_response(request, 503, str(exc), headers={"Retry-After": "5"})


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    _log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        request,
        500,
        "the server failed to handle this request; the error is logged",
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Render every error ``app`` raises as problem+json.

    ``ValueError`` from the runtime becomes 422 (its message is the detail), ``KeyError``
    404; domain ``ValidationError`` lists each problem.
    """
    app.add_exception_handler(ProblemError, _on_api_problem)
    app.add_exception_handler(RequestValidationError, _on_request_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(ValidationError, _on_domain_validation)
    app.add_exception_handler(DatabaseUnavailableError, _on_database_unavailable)
    app.add_exception_handler(ValueError, _on_value_error)
    app.add_exception_handler(KeyError, _on_key_error)
    app.add_exception_handler(Exception, _on_unexpected)
