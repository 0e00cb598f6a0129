"""What every serving role shares: its HTTP server's settings and its stop signal.

Free of the API and dashboard imports, so that the ingest role, which serves only health
and metrics, starts without them.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import uvicorn

    from gridflock.config import Settings

__all__ = ["http_server", "stop_on_signals"]


def http_server(app: Any, settings: Settings, *, lifespan: Literal["on", "off"]) -> uvicorn.Server:
    """A uvicorn server of ``app`` on the configured host and port, HTTPS when configured.

    Logging stays with the process's own configuration (no uvicorn log config, no access
    log).
    """
    import uvicorn

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan=lifespan,
        # HTTPS when a certificate is configured (the settings check both files exist)
        ssl_certfile=str(settings.tls_certfile) if settings.tls_certfile else None,
        ssl_keyfile=str(settings.tls_keyfile) if settings.tls_keyfile else None,
    )
    return uvicorn.Server(config)


def stop_on_signals() -> asyncio.Event:
    """An event set on SIGINT or SIGTERM (where the loop supports signal handlers).

    The handlers replace Python's default ones, so Ctrl-C and a service manager's stop
    both lead to the same orderly shutdown, even when the process was started with SIGINT
    ignored (a background job of a shell without job control).
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    return stop
