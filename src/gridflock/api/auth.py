"""API-key authentication, dashboard sessions and role checks.

A key comes in ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``; the runtime
says who is behind it. Successful look-ups are cached for a few seconds (by the key's
SHA-256, never the key itself), so hot read endpoints do not hit the database on each
request.

Revocation: :class:`Revocations` holds the ids of revoked keys, read from the database
at most every ``ttl_s`` seconds; a cached authentication or a dashboard session whose
key is in it is refused. A key revoked through the API (``POST
/api/v1/apikeys/{id}/revoke``) is refused at once by the process that revoked it; one
revoked with ``gridflock apikey revoke`` (another process) within ``ttl_s`` seconds.

The dashboard signs in once with a key and then holds an opaque session id in an
HttpOnly cookie (:class:`SessionStore` maps it to the principal, server side). The API
accepts that cookie instead of a key; a state-changing request authenticated by the
cookie must also carry ``X-Requested-With: gridflock`` (a header a cross-site form
cannot send), so the cookie cannot be used for cross-site request forgery.
"""

from __future__ import annotations

import hashlib
import logging
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
    "FORWARDED_PRINCIPAL",
    "SESSION_COOKIE",
    "Admin",
    "AuthCache",
    "Operator",
    "Revocations",
    "SessionStore",
    "Viewer",
    "authenticate_request",
    "forget_key",
    "key_from_headers",
    "principal_from_request",
    "require",
    "session_principal",
]

SESSION_COOKIE = "gf_session"
#: ASGI scope key of a principal an API replica authenticated and forwarded with the request
#: over the internal bus. Only the leader's in-process call sets it (no HTTP client can), so
#: it is trusted as is; docs/replicas.md.
FORWARDED_PRINCIPAL = "gridflock.principal"
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
_log = logging.getLogger(__name__)


class Revocations:
    """Ids of revoked API keys, refreshed from the database at most every ``ttl_s``.

    When the database cannot be read the last known set stays in force (a database
    outage neither locks everyone out nor forgets a revocation).
    """

    def __init__(self, ttl_s: float = 5.0) -> None:
        self.ttl_s = ttl_s
        self._revoked: set[str] = set()
        self._next_refresh = 0.0

    def due(self) -> bool:
        """Whether the set should be read again from the database."""
        return time.monotonic() >= self._next_refresh

    def refresh(self, runtime: Runtime) -> None:
        """Read the revoked keys' ids from ``runtime.store`` (blocking: run it in a thread)."""
        self._next_refresh = time.monotonic() + self.ttl_s
        try:
            keys = runtime.store.list_api_keys()
        except Exception as exc:  # an outage keeps the last set; the log says so
            _log.warning("cannot read revoked API keys (keeping the last set): %r", exc)
            return
        self._revoked |= {k.id for k in keys if k.revoked_at is not None}

    def add(self, key_id: str) -> None:
        """Record a revocation made by this process (in force at once)."""
        self._revoked.add(key_id)

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._revoked


async def _check_revocations(request: Request) -> Revocations | None:
    """The app's revocation set, refreshed first when due."""
    revocations: Revocations | None = getattr(request.app.state, "revocations", None)
    if revocations is not None and revocations.due():
        await run_in_threadpool(revocations.refresh, request.app.state.runtime)
    return revocations


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

    def forget_key(self, key_id: str) -> None:
        """Forget the cached authentications of one key (it was just revoked)."""
        self._entries = {k: v for k, v in self._entries.items() if v[1].key_id != key_id}


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

    def end_for_key(self, key_id: str) -> int:
        """End every session signed in with the key ``key_id``; returns how many."""
        ended = [k for k, v in self._entries.items() if v[1].key_id == key_id]
        for k in ended:
            del self._entries[k]
        return len(ended)


def _live_session(request: Request, revoked: Revocations | None) -> Principal | None:
    """The principal of the request's session cookie, or None.

    A session signed in with a key revoked since is ended here.
    """
    sessions: SessionStore | None = getattr(request.app.state, "sessions", None)
    if sessions is None:
        return None
    session_id = request.cookies.get(SESSION_COOKIE)
    principal = sessions.get(session_id)
    if principal is not None and revoked is not None and principal.key_id in revoked:
        sessions.end(session_id)
        return None
    return principal


def _session_principal(request: Request, revoked: Revocations | None) -> Principal | None:
    """As :func:`_live_session`; 403 when a state-changing request lacks the CSRF header."""
    principal = _live_session(request, revoked)
    if principal is None:
        return None
    if request.method not in _SAFE_METHODS and request.headers.get(CSRF_HEADER) != CSRF_VALUE:
        raise ProblemError(
            403,
            f"a request signed in by the dashboard's session cookie that changes anything "
            f"must send the header '{CSRF_HEADER}: {CSRF_VALUE}'",
        )
    return principal


def forget_key(request: Request, key_id: str) -> None:
    """Refuse ``key_id`` from now on in this process: cache, sessions, revocation set."""
    state = request.app.state
    revocations: Revocations | None = getattr(state, "revocations", None)
    if revocations is not None:
        revocations.add(key_id)
    cache: AuthCache | None = getattr(state, "auth_cache", None)
    if cache is not None:
        cache.forget_key(key_id)
    sessions: SessionStore | None = getattr(state, "sessions", None)
    if sessions is not None:
        sessions.end_for_key(key_id)


async def session_principal(request: Request) -> Principal | None:
    """The principal of the request's dashboard session, or None.

    None also when the session's key was revoked since (the session is ended then).
    """
    return _live_session(request, await _check_revocations(request))


async def principal_from_request(request: Request, key: str | None) -> Principal:
    """The caller: by ``key`` when given, else by session cookie; 401 when neither.

    A request a replica forwarded over the bus carries its caller in the scope instead.
    """
    forwarded = request.scope.get(FORWARDED_PRINCIPAL)
    if isinstance(forwarded, Principal):
        return forwarded
    revoked = await _check_revocations(request)
    if key is None:
        principal = _session_principal(request, revoked)
        if principal is not None:
            return principal
    return await authenticate_request(request, key, revoked)


def key_from_headers(request: Request) -> str | None:
    """The API key of ``Authorization: Bearer`` or ``X-API-Key``, if any."""
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    key = request.headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


async def authenticate_request(
    request: Request, key: str | None, revoked: Revocations | None = None
) -> Principal:
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
    if principal is not None and revoked is not None and principal.key_id in revoked:
        principal = None  # revoked since it was cached: ask the database again
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
