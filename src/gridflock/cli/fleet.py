"""``gridflock fleet``: generate and validate fleet files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gridflock.cli._app import _counts_table, _problems, err, fail, fleet_app, out


@fleet_app.command("generate")
def fleet_generate(
    out_file: Annotated[Path, typer.Option("--out", "-o", help="File to write (.yaml or .csv).")],
    homes: Annotated[int, typer.Option(min=1, max=2_000_000, help="Number of homes.")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same fleet.")] = 7,
    lat: Annotated[float, typer.Option(min=-90, max=90, help="Centre latitude [deg].")] = 48.14,
    lon: Annotated[float, typer.Option(min=-180, max=180, help="Centre longitude [deg].")] = 11.58,
    tz: Annotated[str, typer.Option(help="IANA time zone of the homes.")] = "Europe/Berlin",
) -> None:
    """Make a realistic synthetic fleet: homes with PV, batteries, EVs, heat pumps..."""
    from gridflock.domain import ValidationError
    from gridflock.fleet.files import write_fleet
    from gridflock.fleet.generate import generate_fleet

    if out_file.suffix.lower() not in (".yaml", ".yml", ".csv"):
        fail(f"{out_file}: unsupported suffix {out_file.suffix!r}; use .yaml, .yml or .csv")
    try:
        spec = generate_fleet(homes, seed, lat=lat, lon=lon, tz=tz)
    except ValidationError as e:
        _problems(e)
    except ValueError as e:
        fail(str(e))
    out_file.parent.mkdir(parents=True, exist_ok=True)
    write_fleet(spec, out_file)
    out.print(_counts_table(spec, f"Wrote {out_file}"))


@fleet_app.command("validate")
def fleet_validate(
    file: Annotated[Path, typer.Argument(help="Fleet file to check (.yaml, .yml or .csv).")],
) -> None:
    """Check a fleet file and its sites' grid codes; list every problem (exit code 2)."""
    from gridflock.domain import ValidationError
    from gridflock.domain.errors import Problem
    from gridflock.fleet.files import read_fleet
    from gridflock.gridcode import check_fleet

    try:
        spec = read_fleet(file)
    except ValidationError as e:
        _problems(e, wrote="")
    issues = check_fleet(spec)
    for i in issues:
        if i.severity == "warning":
            err.print(f"  warning: {i.entry}: {i.field}: {i.message} [{i.clause}]", markup=False)
    errors = [i for i in issues if i.severity == "error"]
    if errors:
        _problems(
            ValidationError(
                [Problem(str(file), i.entry, i.field, f"{i.message} [{i.clause}]") for i in errors]
            ),
            wrote=" against the sites' grid codes",
        )
    out.print(_counts_table(spec, f"{file}: valid"))
