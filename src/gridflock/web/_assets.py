"""Static assets: our own ES modules and CSS, and Plotly.js from the installed ``plotly``.

No CDN and no third-party minified code in the repository: the chart library is read from
the ``plotly`` Python package's bundled ``plotly.min.js`` and served with a long cache
lifetime (its URL carries the package version), gzip-compressed once in memory.
"""

from __future__ import annotations

import gzip
from functools import cache
from importlib import resources
from importlib.metadata import version
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.staticfiles import StaticFiles

__all__ = ["STATIC_DIR", "asset_version", "plotly_version", "router", "static_files"]

STATIC_DIR = Path(__file__).parent / "static"
_YEAR_S = 365 * 24 * 3600

router = APIRouter(include_in_schema=False)


@cache
def plotly_version() -> str:
    """Version of the installed ``plotly`` package (cache-busts the script URL)."""
    return version("plotly")


@cache
def asset_version() -> str:
    """Version of our own assets: gridflock's version and the newest file's mtime."""
    newest = max((p.stat().st_mtime_ns for p in STATIC_DIR.rglob("*") if p.is_file()), default=0)
    return f"{version('gridflock')}-{newest // 1_000_000_000:x}"


@cache
def _plotly_js() -> tuple[bytes, bytes]:
    """Plotly.js as shipped in the ``plotly`` package: (plain, gzip-compressed)."""
    raw = (resources.files("plotly") / "package_data" / "plotly.min.js").read_bytes()
    return raw, gzip.compress(raw, compresslevel=6, mtime=0)


@router.get("/assets/vendor/plotly.min.js")
def plotly_js(request: Request) -> Response:
    """Serve the bundled Plotly.js, gzip when the browser accepts it, cached for a year."""
    raw, packed = _plotly_js()
    headers = {
        "Cache-Control": f"public, max-age={_YEAR_S}, immutable",
        "Vary": "Accept-Encoding",
    }
    if "gzip" in request.headers.get("accept-encoding", "").lower():
        headers["Content-Encoding"] = "gzip"
        return Response(packed, media_type="text/javascript", headers=headers)
    return Response(raw, media_type="text/javascript", headers=headers)


class _RevalidatedStaticFiles(StaticFiles):
    """Static files the browser must revalidate (ETag) before each use.

    The modules import each other by plain relative URLs, so a long cache lifetime could
    mix versions after an upgrade; a revalidation is a cheap 304.
    """

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        """The file with ``Cache-Control: no-cache``."""
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


def static_files() -> StaticFiles:
    """Our own modules and stylesheet (revalidated by ETag, so edits show on reload)."""
    return _RevalidatedStaticFiles(directory=STATIC_DIR)
