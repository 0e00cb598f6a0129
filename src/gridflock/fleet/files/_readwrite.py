"""Reading and writing fleet files: dispatch on the suffix, then validate."""

from __future__ import annotations

from pathlib import Path

from gridflock.domain.errors import Problem, ValidationError
from gridflock.domain.spec import FleetSpec, build_spec
from gridflock.fleet.files._csv import _read_csv, _write_csv
from gridflock.fleet.files._yaml import _read_yaml, _yaml_text

_SUFFIXES = (".yaml", ".yml", ".csv")


def read_fleet(path: str | Path) -> FleetSpec:
    """Read a fleet file (``.yaml``/``.yml`` or ``.csv``) into a validated :class:`FleetSpec`.

    Raises :class:`ValidationError` listing every problem found; each problem's ``source``
    is ``path`` as given (or the CSV grid-node companion file for problems in it).
    """
    source = str(path)
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in _SUFFIXES:
        raise ValidationError(
            [
                Problem(
                    source,
                    "",
                    "",
                    f"unsupported file suffix {p.suffix!r}; use one of {', '.join(_SUFFIXES)}",
                )
            ]
        )
    if not p.is_file():
        raise ValidationError([Problem(source, "", "", "file not found")])
    tables = _read_csv(p, source) if suffix == ".csv" else _read_yaml(p, source)
    problems = tables.problems
    if tables.ok:
        try:
            spec = build_spec(tables.nodes, tables.sites, tables.devices, source=source)
        except ValidationError as exc:
            problems.extend(_relocate_node_problems(exc.problems, source, tables.node_source))
        else:
            if not problems:
                return spec
    raise ValidationError(problems)


def write_fleet(spec: FleetSpec, path: str | Path) -> None:
    """Write ``spec`` as YAML or CSV, chosen by the suffix of ``path``.

    YAML omits attributes equal to their declared default; CSV also writes the grid nodes
    to ``<stem>.grid_nodes.csv`` next to ``path``. Sites without devices cannot be
    expressed in CSV: writing them raises :class:`ValidationError`.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in _SUFFIXES:
        raise ValidationError(
            [
                Problem(
                    str(path),
                    "",
                    "",
                    f"unsupported file suffix {p.suffix!r}; use one of {', '.join(_SUFFIXES)}",
                )
            ]
        )
    if suffix == ".csv":
        _write_csv(spec, p, str(path))
    else:
        p.write_text(_yaml_text(spec), encoding="utf-8")


def _relocate_node_problems(
    problems: list[Problem], source: str, node_source: str
) -> list[Problem]:
    """Point grid-node problems at the file that holds the grid nodes (CSV companion)."""
    if node_source == source:
        return problems
    return [
        Problem(node_source, p.entry, p.field, p.message) if p.entry.startswith("grid node ") else p
        for p in problems
    ]
