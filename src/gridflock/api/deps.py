"""FastAPI dependencies shared by the routers: the runtime, pagination."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request

from gridflock.api.runtime import Runtime

__all__ = ["Page", "PageDep", "RuntimeDep", "get_runtime"]


async def get_runtime(request: Request) -> Runtime:
    """The runtime the app was created with."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


@dataclass(frozen=True)
class Page:
    """Which slice of a list to return."""

    limit: int
    offset: int

    def slice(self) -> slice:
        """The Python slice of this page."""
        return slice(self.offset, self.offset + self.limit)


#: Largest ``offset`` [items]: past any list the service holds, and within a 64-bit integer
#: for the database (a 30-digit offset overflowed SQLite's and gave a 500).
MAX_OFFSET = 1_000_000_000


async def get_page(
    limit: Annotated[int, Query(ge=1, le=1000, description="Items per page (1 to 1000).")] = 100,
    offset: Annotated[
        int, Query(ge=0, le=MAX_OFFSET, description="Items to skip before this page.")
    ] = 0,
) -> Page:
    """Pagination parameters ``limit`` and ``offset``."""
    return Page(limit, offset)


PageDep = Annotated[Page, Depends(get_page)]
