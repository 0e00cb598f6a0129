"""The Typer application, its consoles and the error helpers every command uses."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from gridflock import __version__

if TYPE_CHECKING:
    from gridflock.domain import FleetSpec, ValidationError
    from gridflock.sim.imperfections import Imperfections

app = typer.Typer(
    help="Gridflock: thousands of small energy resources dispatched as one power plant.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts carry units in brackets: [kW], [h]
)
fleet_app = typer.Typer(
    help="Generate and validate fleet files (YAML or CSV).", no_args_is_help=True
)
app.add_typer(fleet_app, name="fleet")

out = Console()
err = Console(stderr=True)

DEFAULT_DATE = dt.date(2026, 7, 15)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print an error that says what was wrong and exit with ``code``."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _problems(e: ValidationError, wrote: str = "; nothing was written") -> NoReturn:
    err.print(
        f"[bold red]error:[/] {len(e.problems)} problem(s) found{wrote}.",
        highlight=False,
    )
    for p in e.problems[:50]:
        err.print(f"  - {p}", highlight=False, markup=False)
    if len(e.problems) > 50:
        err.print(f"  ... and {len(e.problems) - 50} more", highlight=False)
    raise typer.Exit(2)


def _load_fleet(fleet: Path | None, homes: int, seed: int) -> FleetSpec:
    from gridflock.domain import ValidationError
    from gridflock.fleet.files import read_fleet
    from gridflock.fleet.generate import generate_fleet

    try:
        return read_fleet(fleet) if fleet is not None else generate_fleet(homes, seed)
    except ValidationError as e:
        _problems(e)


def _counts_table(spec: FleetSpec, title: str) -> Table:
    table = Table(title=title, title_justify="left", show_edge=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("grid nodes", f"{len(spec.grid_nodes):,}")
    table.add_row("sites", f"{len(spec.sites):,}")
    for kind, n in spec.counts().items():
        table.add_row(f"  {kind}", f"{n:,}")
    table.add_row("devices", f"{spec.n_devices:,}")
    return table


@app.command()
def version() -> None:
    """Print the version."""
    out.print(f"gridflock {__version__}")


def _print_version(value: bool) -> None:
    if value:
        out.print(f"gridflock {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Gridflock: thousands of small energy resources dispatched as one power plant."""


# The twin's imperfections, shared by every command that runs it.
Latency = Annotated[float, typer.Option(min=0, help="Median command latency [s].")]
Dropout = Annotated[float, typer.Option(min=0, max=1, help="Share of readings lost.")]
Offline = Annotated[
    float, typer.Option(min=0, max=1, help="Share of devices that go offline mid-run.")
]
Ignore = Annotated[float, typer.Option(min=0, max=1, help="Share of devices that ignore commands.")]
Noise = Annotated[float, typer.Option(min=0, help="Measurement noise, std [kW].")]
Ideal = Annotated[
    bool, typer.Option(help="Perfect devices and network (overrides the five options above).")
]


def imperfections(
    latency: float, dropout: float, offline: float, ignore: float, noise: float, ideal: bool
) -> Imperfections:
    """The twin's imperfections from the command's options."""
    from gridflock.sim.imperfections import Imperfections

    if ideal:
        return Imperfections.ideal()
    return Imperfections(latency, 0.7, dropout, offline, ignore, noise)
