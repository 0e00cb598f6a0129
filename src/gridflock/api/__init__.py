"""The REST API: FastAPI app over the running service's :class:`Runtime`.

``create_app(runtime)`` builds it; routes stay thin and call the runtime (and its store).
"""

from gridflock.api.app import API_PREFIX, create_app
from gridflock.api.runtime import EventView, Runtime

__all__ = ["API_PREFIX", "EventView", "Runtime", "create_app"]
