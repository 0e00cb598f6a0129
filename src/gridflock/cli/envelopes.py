"""``gridflock envelopes``: list and import the grid operator's operating envelopes.

Both work on the database (as ``apikey`` does); a running service takes up imported
envelopes within ``RELOAD_S`` (docs/envelopes.md).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gridflock.cli._app import _problems, app, fail, out
from gridflock.cli.service import Db, _open_store, _settings

if TYPE_CHECKING:
    from gridflock.domain.envelopes import Envelope

envelopes_app = typer.Typer(
    help="The grid operator's operating envelopes (import/export limits).", no_args_is_help=True
)
app.add_typer(envelopes_app, name="envelopes")


@envelopes_app.command("list")
def envelopes_list(
    db: Db = None,
    all_: Annotated[bool, typer.Option("--all", help="Also those that have ended.")] = False,
) -> None:
    """List envelopes in force and upcoming: target, window [UTC], limits [kW], kind, source."""
    from rich.table import Table

    settings = _settings(database_url=db)
    store = _open_store(settings.database_url, upgrade=False)
    now = time.time()
    try:
        envs = store.load_envelopes(None if all_ else now)
    finally:
        store.close()
    table = Table(show_edge=False)
    for col in ("id", "target", "start", "end", "import kW", "export kW", "kind", "source", "now"):
        table.add_column(col)

    def kw(x: float | None) -> str:
        return "" if x is None else f"{x:g}"

    for e in envs:
        d = e.as_dict()
        table.add_row(
            e.id,
            f"{e.target_type.value}:{e.target_id}",
            d["start"],
            d["end"],
            kw(e.import_limit_kw),
            kw(e.export_limit_kw),
            e.kind.value,
            e.source.value,
            "in force" if e.start <= now < e.end else "",
        )
    out.print(table)
    out.print(f"{len(envs)} envelope(s)", highlight=False)


def _read(path: Path, target_type: str | None, target_id: str | None, now: float) -> list[Envelope]:
    from gridflock.domain.envelopes import (
        EnvelopeSource,
        TargetType,
        parse_csip,
        parse_csv,
        parse_envelopes,
    )

    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".csv":
        return parse_csv(text, now=now, src=path.name)
    try:
        doc = json.loads(text)
    except ValueError as e:
        fail(f"{path}: not JSON ({e}); give a .csv or a .json file")
    if isinstance(doc, dict) and "DERControl" in doc:
        if target_type is None or target_id is None:
            fail("a CSIP-AUS DERControlList needs --target-type (site/node) and --target-id")
        try:
            tt = TargetType(target_type)
        except ValueError:
            fail(f"--target-type must be site or node, got {target_type!r}")
        return parse_csip(doc, target_type=tt, target_id=target_id, now=now)
    if isinstance(doc, dict) and "envelopes" in doc:
        doc = doc["envelopes"]
    return parse_envelopes(doc, source=EnvelopeSource.FILE, now=now, src=path.name)


@envelopes_app.command("import")
def envelopes_import(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="A .csv, a JSON batch, or CSIP.")
    ],
    db: Db = None,
    target_type: Annotated[
        str | None, typer.Option(help="For a CSIP-AUS DERControlList: site or node.")
    ] = None,
    target_id: Annotated[str | None, typer.Option(help="Its site or grid node id.")] = None,
) -> None:
    """Validate a file of envelopes (every problem at once) and store them by id."""
    from gridflock.domain import ValidationError
    from gridflock.fleet.envelopes import unknown_targets
    from gridflock.fleet.state import GridTopology

    now = time.time()
    try:
        envs = _read(file, target_type, target_id, now)
    except ValidationError as e:
        _problems(e)
    settings = _settings(database_url=db)
    store = _open_store(settings.database_url, upgrade=False)
    try:
        unknown = unknown_targets(GridTopology.from_spec(store.load_fleet()), envs)
        if unknown:
            names = ", ".join(f"{e.target_type.value} {e.target_id!r}" for e in unknown[:10])
            fail(f"{len(unknown)} envelope(s) name what the fleet does not have: {names}")
        n = store.save_envelopes(envs, "cli")
    finally:
        store.close()
    out.print(f"stored {n} envelope(s) from {file.name}", highlight=False)
