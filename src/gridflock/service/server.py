"""Run the service: the API on uvicorn and the control loop in one asyncio process.

With a bus (``bus_url``) the leader also publishes its read model and serves the requests
API replicas forward (:class:`~gridflock.service.leader_bus.LeaderBus`); a replica (role
``api``) runs the same server over a :class:`~gridflock.service.replica.ReplicaRuntime`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from gridflock.api.app import create_app
from gridflock.api.runtime import Runtime as ApiRuntime
from gridflock.config import Settings
from gridflock.service._malloc import keep_freed_memory
from gridflock.service._serving import http_server, stop_on_signals
from gridflock.service.runtime import Runtime
from gridflock.web import install_dashboard

__all__ = ["Served", "process_name", "run_service"]

log = logging.getLogger("gridflock.service")


class Served(ApiRuntime, Protocol):
    """A runtime the server runs: the API's protocol, and a task to run beside the API."""

    async def run(self) -> None:
        """Run until :meth:`stop`."""
        ...

    def stop(self) -> None:
        """Ask :meth:`run` to return."""
        ...


def process_name(settings: Settings) -> str:
    """How this process names itself on the bus: role, host, port, pid."""
    return f"{settings.role}@{socket.gethostname()}:{settings.port}/{os.getpid()}"


async def run_service(
    settings: Settings,
    runtime: Served,
    extra: list[Callable[[], Coroutine[Any, Any, None]]] | None = None,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM; ``extra`` coroutines (gateways, scripts) run alongside."""
    from gridflock.service.replica import ReplicaRuntime, install_replica

    keep_freed_memory()  # control steps reuse their temporaries instead of faulting them in
    app = create_app(
        runtime,
        max_body_bytes=settings.max_body_bytes,
        max_import_bytes=settings.max_import_bytes,
    )
    install_dashboard(app)
    stoppers: list[Callable[[], None]] = []
    extra = list(extra or [])
    if isinstance(runtime, ReplicaRuntime):
        install_replica(app, runtime, settings.max_body_bytes, settings.max_import_bytes)
    elif settings.bus_url and isinstance(runtime, Runtime):
        from gridflock.service.leader_bus import LeaderBus

        leader_bus = LeaderBus(settings.bus_url, runtime, app, process_name(settings))
        extra.append(leader_bus.run)
        stoppers.append(leader_bus.stop)
    server = http_server(app, settings, lifespan="on")
    stop = stop_on_signals()
    tasks = [
        asyncio.create_task(server.serve(), name="http"),
        asyncio.create_task(runtime.run(), name="control"),
    ]
    extras = [asyncio.create_task(fn(), name="extra") for fn in extra or []]
    for t in extras:  # a helper task that fails is reported; it does not stop the service
        t.add_done_callback(_report)
    while not server.started:
        if any(t.done() for t in tasks):
            break
        await asyncio.sleep(0.05)
    if server.started and on_ready is not None:
        on_ready()

    async def wait_stop() -> None:
        await stop.wait()

    waiter = asyncio.create_task(wait_stop())
    done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    log.info("stopping")
    runtime.stop()
    for stop_part in stoppers:
        stop_part()
    server.should_exit = True
    for t in extras:
        t.cancel()
    await asyncio.gather(*tasks, *extras, return_exceptions=True)
    waiter.cancel()
    for t in done:  # surface a crash of any part
        if t is not waiter and not t.cancelled() and t.exception() is not None:
            raise t.exception()  # type: ignore[misc]


def _report(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task failed: %r", task.exception(), exc_info=task.exception())
