"""The OpenAPI document as the API really answers: errors as ``application/problem+json``.

FastAPI documents every error response as ``application/json`` (and its validation
errors in its own shape), while every error here is an RFC 9457 problem document. This
rewrites the generated document once so that clients and property-based tests read
the truth: each 4xx/5xx response is ``application/problem+json`` with the ``ProblemOut``
schema, and every operation declares the answers any request may get (422 for a NUL
byte or invalid parameters, 413 for a body above the limit, 500 with an error id).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

__all__ = ["install_openapi"]

_PROBLEM_JSON = "application/problem+json"
_PROBLEM_REF = {"$ref": "#/components/schemas/ProblemOut"}
_METHODS = ("get", "put", "post", "delete", "patch", "options", "head")
_ALWAYS = {
    "422": "Invalid input: each problem in `errors`.",
    "500": "Internal error: the answer carries an `error_id` the service logged.",
}
_WITH_BODY = {"413": "The request body is larger than the limit."}


def _problem_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {_PROBLEM_JSON: {"schema": _PROBLEM_REF}}}


def _rewrite(doc: dict[str, Any]) -> dict[str, Any]:
    """Errors as problem documents in ``doc`` (changed in place and returned)."""
    for item in doc.get("paths", {}).values():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            for status, response in responses.items():
                if status[:1] in ("4", "5"):
                    description = response.get("description", "Error")
                    if "Validation Error" in description:
                        description = _ALWAYS["422"]
                    responses[status] = _problem_response(description)
            extra = dict(_ALWAYS)
            if "requestBody" in operation:
                extra.update(_WITH_BODY)
            for status, description in extra.items():
                responses.setdefault(status, _problem_response(description))
    schemas = doc.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return doc


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the rewritten document (built once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            app.openapi_schema = _rewrite(doc)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
