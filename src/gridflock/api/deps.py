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


async def get_page(
    limit: Annotated[int, Query(ge=1, le=1000, description="Items per page (1 to 1000).")] = 100,
    offset: Annotated[int, Query(ge=0, description="Items to skip before this page.")] = 0,
) -> Page:
    """Pagination parameters ``limit`` and ``offset``."""
    return Page(limit, offset)


PageDep = Annotated[Page, Depends(get_page)]
