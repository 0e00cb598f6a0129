"""The ``gridflock`` command (Typer + Rich)."""

from gridflock.cli import fleet, plan, service, sim, simulate  # noqa: F401  (registers the commands)
from gridflock.cli._app import app

__all__ = ["app", "main"]


def main() -> None:
    """Run the command line."""
    app()
