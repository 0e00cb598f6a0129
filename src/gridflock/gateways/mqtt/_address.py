"""Where the broker is and how to reach it: URL, credentials, TLS files."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from urllib.parse import unquote, urlparse

__all__ = ["BrokerAddress", "masked_url"]


@dataclass(frozen=True)
class BrokerAddress:
    """Where the broker is, how to log in and, for ``mqtts://``, which TLS files to use."""

    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    """CA bundle (PEM) the broker's certificate must chain to; the system's if ``None``."""
    cert_file: str | None = None
    """Client certificate (PEM), for brokers that require one (mutual TLS)."""
    key_file: str | None = None
    """Private key of ``cert_file`` (PEM); ``None`` if it is inside ``cert_file``."""

    @staticmethod
    def parse(
        url: str,
        username: str | None = None,
        password: str | None = None,
        *,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
    ) -> BrokerAddress:
        """``mqtt://[user[:pass]@]host[:port]`` or ``mqtts://...`` (TLS, default port 8883).

        TLS files only make sense with ``mqtts://``: giving them for ``mqtt://`` is an
        error, not a silent plain-text connection.
        """
        u = urlparse(url)
        if u.scheme not in ("mqtt", "mqtts") or not u.hostname:
            raise ValueError(
                f"invalid broker URL {masked_url(url)!r}: use mqtt://host:1883 or mqtts://host:8883"
            )
        tls = u.scheme == "mqtts"
        if not tls and (ca_file or cert_file or key_file):
            raise ValueError(
                "TLS files are given but the broker URL is mqtt://: use mqtts://host:8883"
            )
        if key_file and not cert_file:
            raise ValueError("a TLS key file needs its certificate: give the cert file too")
        return BrokerAddress(
            u.hostname,
            u.port or (8883 if tls else 1883),
            tls,
            unquote(u.username) if u.username else username,
            unquote(u.password) if u.password else password,
            ca_file,
            cert_file,
            key_file,
        )

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of ``mqtts://`` (certificate and host name verified), else ``None``."""
        if not self.tls:
            return None
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx


def masked_url(url: str) -> str:
    """``url`` with any password replaced by ``********`` (for messages and logs)."""
    u = urlparse(url)
    if u.password is None:
        return url
    return url.replace(f":{u.password}@", ":********@", 1)
