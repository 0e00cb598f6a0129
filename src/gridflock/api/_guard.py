"""The outermost layer of the API: limits, security headers and the last word on errors.

One pure ASGI middleware, so that it sees every request before routing, authentication
or body parsing, and every response (errors included):

* **Body size.** A body above the limit is refused with 413 *before* it is read in
  full or the caller is authenticated: at once when ``Content-Length`` says so,
  otherwise as soon as the bytes received pass the limit. Some paths (the fleet
  import) have a larger limit of their own.
* **NUL bytes.** A NUL (``%00``) in the path or the query string is a 422: no
  filter, id or name may hold one, and PostgreSQL cannot store one in text.
* **Security headers** on every response, JSON ones too (see :data:`SECURITY_HEADERS`);
  ``Cache-Control: no-store`` on the API (its answers are live and may be private) and
  ``Strict-Transport-Security`` when the request came over TLS.
* **Internal errors.** Any exception no handler declared is a 500 problem with an
  error id, logged with its traceback under that id (``errors.internal_error_response``).
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gridflock.api.errors import internal_error_response, problem_response

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_IMPORT_BYTES",
    "SECURITY_HEADERS",
    "Guard",
]

#: Largest request body by default [bytes]: far above any JSON request the API takes.
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
#: Largest fleet file ``POST /api/v1/fleet/import`` takes by default [bytes].
DEFAULT_MAX_IMPORT_BYTES = 200 * 1024 * 1024

#: Sent with every response.
SECURITY_HEADERS: Mapping[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
}
_HSTS = "max-age=31536000"


class _TooLargeError(HTTPException):
    """The body passed its limit while being received.

    An ``HTTPException`` so that FastAPI's body parsing passes it on as it is (it turns
    other exceptions into a 400) and the problem handlers render it as a 413.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, _too_large_text(limit), headers={"Connection": "close"})


def _has_nul(scope: Scope) -> bool:
    """Whether the path or the query string holds a NUL byte (raw or percent-encoded)."""
    path: str = scope.get("path", "")
    query: bytes = scope.get("query_string", b"")
    return "\x00" in path or b"\x00" in query or b"%00" in query


class Guard:
    """The API's outermost ASGI middleware (see the module docstring).

    Parameters
    ----------
    app
        The application it wraps.
    max_body_bytes
        Largest request body [bytes] on any path not in ``path_limits``.
    path_limits
        Path → its own largest body [bytes], e.g. the fleet import.
    api_prefixes
        Paths starting with one of these get ``Cache-Control: no-store`` unless the route
        set a ``Cache-Control`` of its own.

    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        path_limits: Mapping[str, int] | None = None,
        api_prefixes: tuple[str, ...] = ("/api/", "/metrics"),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.path_limits = dict(path_limits or {})
        self.api_prefixes = api_prefixes
        # the headers as ASGI wants them, built once: (plain, API, plain over TLS, API over TLS)
        base = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
        no_store = [(b"cache-control", b"no-store")]
        hsts = [(b"strict-transport-security", _HSTS.encode())]
        self._headers = {
            (False, False): base,
            (True, False): base + no_store,
            (False, True): base + hsts,
            (True, True): base + no_store + hsts,
        }

    def _limit(self, path: str) -> int:
        return self.path_limits.get(path.rstrip("/") or "/", self.max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request or pass anything that is not HTTP through unchanged."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        security = self._headers[path.startswith(self.api_prefixes), scope.get("scheme") == "https"]
        started = False

        async def send_secured(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in security if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        if _has_nul(scope):
            await self._answer(
                problem_response(
                    Request(scope),
                    422,
                    "the path or query holds a NUL byte (%00); no id, name or filter may "
                    "contain one",
                    title="Invalid request",
                    errors=[{"field": "query", "message": "contains a NUL byte"}],
                ),
                scope,
                receive,
                send_secured,
            )
            return
        limit = self._limit(path)
        declared = _content_length(scope.get("headers", []))
        if declared is not None and declared > limit:
            await self._answer(_too_large(Request(scope), limit), scope, receive, send_secured)
            return
        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLargeError(limit)
            return message

        try:
            await self.app(scope, receive_limited, send_secured)
        except _TooLargeError:
            if started:
                raise
            await self._answer(_too_large(Request(scope), limit), scope, receive, send_secured)
        except Exception as exc:
            if started:  # the answer is under way; all that is left is to log it
                raise
            response = internal_error_response(Request(scope), exc)
            await self._answer(response, scope, receive, send_secured)

    @staticmethod
    async def _answer(response: Response, scope: Scope, receive: Receive, send: Send) -> None:
        await response(scope, receive, send)


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _too_large_text(limit: int) -> str:
    return (
        f"the request body is larger than this endpoint takes ({limit:,} bytes); send less, "
        "or split it"
    )


def _too_large(request: Request, limit: int) -> Response:
    return problem_response(request, 413, _too_large_text(limit), headers={"Connection": "close"})
