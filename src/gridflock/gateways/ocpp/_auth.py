"""Security profiles 1 and 2 of OCPP: HTTP Basic authentication of each charge point.

The charge point's user name is its id; its password is checked against the hash the
service stored when the charger was provisioned (the gateways' PBKDF2-SHA512 format,
``$7$<iterations>$<salt>$<key>``), so no password is ever stored in clear.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Awaitable, Callable, Mapping

__all__ = ["CredentialSource", "MemoryCredentials", "parse_basic", "verify_password"]

#: Looks up a charge point's password hash by its id (``None``: unknown charge point).
CredentialSource = Callable[[str], Awaitable[str | None]]
#: Longest OCPP charge point password (OCPP 1.6 security whitepaper: 16..40 characters
#: for the charger's own; longer ones are refused before hashing).
MAX_PASSWORD_CHARS = 128


def verify_password(secret: str, stored: str) -> bool:
    """Whether ``secret`` matches ``stored`` (``$7$`` PBKDF2-SHA512), in constant time."""
    parts = stored.split("$")
    if len(parts) != 5 or parts[1] != "7":
        return False
    try:
        iterations = int(parts[2])
        salt = base64.b64decode(parts[3], validate=True)
        key = base64.b64decode(parts[4], validate=True)
    except (ValueError, binascii.Error):
        return False
    if not 1 <= iterations <= 10_000_000:
        return False
    got = hashlib.pbkdf2_hmac("sha512", secret.encode(), salt, iterations)
    return hmac.compare_digest(got, key)


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """User and password of an ``Authorization: Basic ...`` header; ``None`` if malformed."""
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        text = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = text.partition(":")
    if not sep or len(password) > MAX_PASSWORD_CHARS:
        return None
    return user, password


class MemoryCredentials:
    """Password hashes held in memory (tests, benchmarks, the demo)."""

    def __init__(self, hashes: Mapping[str, str] | None = None) -> None:
        self.hashes = dict(hashes or {})

    async def __call__(self, charge_point_id: str) -> str | None:
        """The stored hash of ``charge_point_id``, if any."""
        return self.hashes.get(charge_point_id)
