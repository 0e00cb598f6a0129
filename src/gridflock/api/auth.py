"""API-key authentication, dashboard sessions and role checks.

A key comes in ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``; the runtime
says who is behind it. Successful look-ups are cached for a few seconds (by the key's
SHA-256, never the key itself), so hot read endpoints do not hit the database on each
request; a revoked key therefore keeps working for at most ``ttl_s``.

The dashboard signs in once with a key and then holds an opaque session id in an
HttpOnly cookie (:class:`SessionStore` maps it to the principal, server side). The API
accepts that cookie instead of a key; a state-changing request authenticated by the
cookie must also carry ``X-Requested-With: gridflock`` (a header a cross-site form
cannot send), so the cookie cannot be used for cross-site request forgery.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from gridflock.api.errors import ProblemError
from gridflock.api.runtime import Runtime
from gridflock.domain.auth import Principal, Role

__all__ = [
    "CSRF_HEADER",
    "CSRF_VALUE",
    "SESSION_COOKIE",
    "Admin",
    "AuthCache",
    "Operator",
    "SessionStore",
    "Viewer",
    "authenticate_request",
    "key_from_headers",
    "principal_from_request",
    "require",
]

SESSION_COOKIE = "gf_session"
CSRF_HEADER = "X-Requested-With"
CSRF_VALUE = "gridflock"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_bearer = HTTPBearer(
    auto_error=False, description="An API key as a bearer token: `Authorization: Bearer <key>`."
)
_header_key = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="An API key in the `X-API-Key` header."
)
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="gridflock"'}


class AuthCache:
    """Recent successful authentications: SHA-256 of the key → (expiry, principal)."""

    def __init__(self, ttl_s: float = 5.0, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Principal]] = {}

    @staticmethod
    def digest(key: str) -> str:
        """The cache key for an API key."""
        return hashlib.sha256(key.encode()).hexdigest()

    def get(self, key: str) -> Principal | None:
        """The cached principal for ``key`` if still fresh."""
        entry = self._entries.get(self.digest(key))
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, key: str, principal: Principal) -> None:
        """Remember ``principal`` for ``key`` for ``ttl_s`` seconds."""
        if self.ttl_s <= 0:
            return
        if len(self._entries) >= self.max_entries:
            now = time.monotonic()
            self._entries = {k: v for k, v in self._entries.items() if v[0] >= now}
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
        self._entries[self.digest(key)] = (time.monotonic() + self.ttl_s, principal)

    def clear(self) -> None:
        """Forget every cached authentication."""
        self._entries.clear()


class SessionStore:
    """Dashboard sessions: opaque random id → (expiry, principal), in memory.

    Sessions end on sign-out, after ``ttl_s`` seconds, or when the process restarts.
    """

    def __init__(self, ttl_s: float = 12 * 3600.0, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Principal]] = {}

    def create(self, principal: Principal) -> str:
        """Start a session for ``principal``; returns its id (to put in the cookie)."""
        now = time.monotonic()
        if len(self._entries) >= self.max_entries:
            self._entries = {k: v for k, v in self._entries.items() if v[0] >= now}
            if len(self._entries) >= self.max_entries:  # still full: drop the oldest
                oldest = min(self._entries, key=lambda k: self._entries[k][0])
                del self._entries[oldest]
        session_id = secrets.token_urlsafe(32)
        self._entries[session_id] = (now + self.ttl_s, principal)
        return session_id

    def get(self, session_id: str | None) -> Principal | None:
        """The principal of a live session, or None (unknown or expired)."""
        if not session_id:
            return None
        entry = self._entries.get(session_id)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            del self._entries[session_id]
            return None
        return entry[1]

    def end(self, session_id: str | None) -> None:
        """Forget a session (sign-out)."""
        if session_id:
            self._entries.pop(session_id, None)


def _session_principal(request: Request) -> Principal | None:
    """The principal of the request's session cookie; 403 when a CSRF header is missing."""
    sessions: SessionStore | None = getattr(request.app.state, "sessions", None)
    if sessions is None:
        return None
    principal = sessions.get(request.cookies.get(SESSION_COOKIE))
    if principal is None:
        return None
    if request.method not in _SAFE_METHODS and request.headers.get(CSRF_HEADER) != CSRF_VALUE:
        raise ProblemError(
            403,
            f"a request signed in by the dashboard's session cookie that changes anything "
            f"must send the header '{CSRF_HEADER}: {CSRF_VALUE}'",
        )
    return principal


async def principal_from_request(request: Request, key: str | None) -> Principal:
    """The caller: by ``key`` when given, else by session cookie; 401 when neither."""
    if key is None:
        principal = _session_principal(request)
        if principal is not None:
            return principal
    return await authenticate_request(request, key)


def key_from_headers(request: Request) -> str | None:
    """The API key of ``Authorization: Bearer`` or ``X-API-Key``, if any."""
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    key = request.headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


async def authenticate_request(request: Request, key: str | None) -> Principal:
    """The principal behind ``key``; 401 problem when it is missing or not valid."""
    if key is None:
        raise ProblemError(
            401,
            "this endpoint needs an API key: send 'Authorization: Bearer <key>' or "
            "'X-API-Key: <key>' (create one with 'gridflock apikey create')",
            headers=_CHALLENGE,
        )
    cache: AuthCache = request.app.state.auth_cache
    principal = cache.get(key)
    if principal is None:
        runtime: Runtime = request.app.state.runtime
        principal = await run_in_threadpool(runtime.authenticate, key)
        if principal is None:
            raise ProblemError(
                401,
                "the API key is unknown, malformed or revoked; check it or ask an admin "
                "for a new one",
                headers=_CHALLENGE,
            )
        cache.put(key, principal)
    return principal


def require(role: Role) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """A dependency that authenticates the caller and checks it holds at least ``role``."""

    async def dependency(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
        header_key: Annotated[str | None, Security(_header_key)],
    ) -> Principal:
        key = bearer.credentials.strip() if bearer and bearer.credentials.strip() else None
        key = key or (header_key.strip() if header_key and header_key.strip() else None)
        principal = await principal_from_request(request, key)
        if not principal.role.allows(role):
            raise ProblemError(
                403,
                f"this needs the {role.value} role; the key {principal.name!r} has "
                f"{principal.role.value}",
            )
        return principal

    dependency.__name__ = f"require_{role.value}"
    return dependency


Viewer = Annotated[Principal, Depends(require(Role.VIEWER))]
Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
