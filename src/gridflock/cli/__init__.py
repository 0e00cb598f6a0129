"""The ``gridflock`` command (Typer + Rich)."""

from gridflock.cli import (  # noqa: F401  (registers the commands)
    cluster,
    edge,
    envelopes,
    fleet,
    forecast,
    gridcode,
    ocpp,
    plan,
    service,
    sim,
    simulate,
)
from gridflock.cli._app import app

__all__ = ["app", "main"]


def main() -> None:
    """Run the command line."""
    app()
