"""Structured logs: one JSON object per line, or readable lines on a console."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Sequence

from gridflock.config import redact

__all__ = ["setup_logging"]


class JsonFormatter(logging.Formatter):
    """``{"ts": ..., "level": ..., "logger": ..., "msg": ...}`` per record."""

    def format(self, record: logging.LogRecord) -> str:
        """Render one record as a JSON line."""
        data = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data)


class RedactingFormatter(logging.Formatter):
    """Another formatter's lines with the passwords of ``urls`` masked (message and traceback).

    A driver's error may quote a connection URL or its password; no log line may.
    """

    def __init__(self, inner: logging.Formatter, urls: Sequence[str | None]) -> None:
        super().__init__()
        self.inner = inner
        self.urls = [u for u in urls if u]

    def format(self, record: logging.LogRecord) -> str:
        """The inner formatter's line, redacted."""
        return redact(self.inner.format(record), *self.urls)


def setup_logging(
    level: str = "info", fmt: str = "console", secret_urls: Sequence[str | None] = ()
) -> None:
    """Configure the root logger once for the service's process.

    ``secret_urls`` (the database and broker URLs) are masked, with their passwords,
    in every line.
    """
    handler = logging.StreamHandler(sys.stderr)
    inner = (
        JsonFormatter()
        if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
    )
    handler.setFormatter(RedactingFormatter(inner, secret_urls))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "gmqtt"):
        logging.getLogger(noisy).setLevel("WARNING")
