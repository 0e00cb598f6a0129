"""Fleet files: a :class:`FleetSpec` read from and written to YAML or CSV.

YAML (version 1) is for fleets people edit: grid nodes, then sites with their devices
nested under them. CSV is the bulk format: one row per device carrying its site's columns
(prefixed ``site_``), with the grid nodes in a companion ``<stem>.grid_nodes.csv``. Both
formats are checked here for structure (unknown keys and columns, versions, syntax) and
handed to :func:`gridflock.domain.build_spec` for per-field validation, so every problem
in a file is reported at once. The format is described in ``docs/fleet-files.md``, whose
attribute tables come from :func:`attribute_tables_markdown`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Hashable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, ScalarNode

from gridflock.domain.attributes import Attr
from gridflock.domain.errors import Problem, ValidationError
from gridflock.domain.kinds import (
    DEVICE_COMMON,
    GRID_NODE_ATTRS,
    KIND_ATTRS,
    SITE_ATTRS,
    DeviceKind,
    device_attrs,
)
from gridflock.domain.spec import FleetSpec, build_spec

try:
    from yaml import CSafeDumper as _SafeDumper
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeDumper as _SafeDumper  # type: ignore[assignment]
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

__all__ = ["YAML_VERSION", "attribute_tables_markdown", "read_fleet", "write_fleet"]

#: Version of the YAML fleet format this module reads and writes.
YAML_VERSION = 1

_SUFFIXES = (".yaml", ".yml", ".csv")
_TOP_KEYS = ("version", "grid_nodes", "sites")
_NODE_KEYS = tuple(a.name for a in GRID_NODE_ATTRS)
_SITE_KEYS = (*(a.name for a in SITE_ATTRS), "devices")
_KIND_KEYS = {k.value: tuple(a.name for a in device_attrs(k)) for k in DeviceKind}
#: CSV device columns: the common ones then every kind attribute, in declared order.
_CSV_DEVICE_COLS = tuple(
    dict.fromkeys(
        a.name for a in DEVICE_COMMON + tuple(a for k in DeviceKind for a in KIND_ATTRS[k])
    )
)
_CSV_SITE_COLS = tuple("site_" + a.name for a in SITE_ATTRS)  # site_id doubles as the device's
_MAX_REPORTED = 50
#: Words YAML 1.1 reads as booleans or null (quoted when written, so they stay strings).
_YAML_WORDS = frozenset({"yes", "no", "true", "false", "on", "off", "null", "y", "n"})
#: Strings written unquoted: no YAML indicator, no number or timestamp look-alike.
_PLAIN_RE = re.compile(r"[A-Za-z][A-Za-z0-9_./-]*")


# --------------------------------------------------------------------------- public API


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


def attribute_tables_markdown() -> str:
    """Markdown tables of every declared attribute: grid nodes, sites, then each device kind.

    Generated from :mod:`gridflock.domain.kinds` so the docs cannot drift from the code.
    """
    parts = [
        _table("Grid nodes", GRID_NODE_ATTRS),
        _table("Sites", SITE_ATTRS),
        _table("Devices: attributes of every kind", DEVICE_COMMON),
    ]
    parts += [_table(f"Device kind `{k.value}`", KIND_ATTRS[k]) for k in DeviceKind]
    return "\n".join(parts)


# --------------------------------------------------------------------------- shared helpers


class _Tables:
    """Raw tables parsed from a file, plus the structural problems found on the way."""

    def __init__(self, source: str) -> None:
        self.nodes: pd.DataFrame | list[dict[Any, Any]] = []
        self.sites: pd.DataFrame | list[dict[Any, Any]] = []
        self.devices: pd.DataFrame | list[dict[Any, Any]] = []
        self.problems: list[Problem] = []
        self.node_source = source
        self.ok = True  # False when the structure is too broken to validate fields


def _unknown_message(what: str, name: object, known: Iterable[str], where: str = "") -> str:
    """``unknown field 'kwpp' for a pv device; did you mean 'kwp'? known fields: ...``."""
    known = list(known)
    close = difflib.get_close_matches(str(name), known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ";"
    return f"unknown {what} {name!r}{where}{hint} known {what}s: {', '.join(known)}"


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


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


def _table(title: str, attrs: Iterable[Attr]) -> str:
    """One Markdown table of ``attrs`` under a level-3 heading."""
    lines = [
        f"### {title}",
        "",
        "| Name | Type | Unit | Default | Bounds | Description |",
        "|---|---|---|---|---|---|",
    ]
    for a in attrs:
        if a.default is None:
            default = "required"
        elif isinstance(a.default, bool):
            default = "`true`" if a.default else "`false`"
        elif isinstance(a.default, str):
            default = f"`{a.default}`" if a.default else "(empty)"
        else:
            default = f"{a.default:g}"
        bounds = "" if a.type in ("str", "bool") else a.bounds_text()
        cells = [f"`{a.name}`", a.type, a.unit, default, bounds, a.description]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- YAML reading


class _Loader(_SafeLoader):
    """Safe YAML loader (libyaml when available) that rejects duplicate keys."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        """Build a mapping, raising on a key given twice (a silent overwrite hides typos)."""
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    raise ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found duplicate key {key_node.value!r}",
                        key_node.start_mark,
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


# The fast path: PyYAML builds ~30,000 nodes a second, too slow for a 100,000-home file.
# Files in the layout write_fleet produces (plain scalars of a strict form, fixed indents)
# are parsed line by line instead, into exactly what the safe loader would return; any
# other line (quotes, comments after values, other indents, anchors) falls back to PyYAML.
_FAST_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FAST_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+(?:e[-+][0-9]+)?)?")
_FAST_TOP = re.compile(r"([A-Za-z_][A-Za-z0-9_]*):(?: (.*))?")
_FAST_ITEM = re.compile(r"  - ([A-Za-z_][A-Za-z0-9_]*): (.*)")
_FAST_FIELD = re.compile(r"    ([A-Za-z_][A-Za-z0-9_]*):(?: (.*))?")
_FAIL = object()


def _fast_scalar(text: str) -> Any:
    """The value of a plain scalar of the strict subset, or ``_FAIL`` for anything else."""
    m = _FAST_NUMBER.fullmatch(text)
    if m:
        return float(text) if m.group(1) else int(text)
    if not _PLAIN_RE.fullmatch(text):
        return _FAIL
    if text.lower() in _YAML_WORDS:
        return True if text == "true" else False if text == "false" else _FAIL
    return text


def _fast_flow(body: str, values: dict[str, Any], keys: set[str]) -> dict[str, Any] | None:
    """``k: v, k: v`` of a one-line flow mapping, or None outside the subset.

    ``values`` caches scalar text already converted and ``keys`` the keys already
    accepted: fleet files repeat both a great deal.
    """
    out: dict[str, Any] = {}
    if not body:
        return out
    parts = body.split(", ")
    for part in parts:
        key, sep, text = part.partition(": ")
        value = values.get(text, _FAIL)
        if value is _FAIL:
            value = values[text] = _fast_scalar(text)
            if value is _FAIL:
                return None
        if key not in keys:
            if not sep or not _FAST_KEY.fullmatch(key) or key.lower() in _YAML_WORDS:
                return None
            keys.add(key)
        out[key] = value
    return out if len(out) == len(parts) else None


def _fast_yaml(text: str) -> dict[str, Any] | None:
    """Parse a fleet file written in :func:`write_fleet`'s layout, or None if it is not."""
    top: dict[str, Any] = {}
    seq: list[Any] | None = None  # the top-level sequence being filled
    seq_key = ""
    item: dict[str, Any] | None = None  # the block mapping (site) being filled
    nested_key = ""  # its key whose sequence of flow mappings is being filled
    values: dict[str, Any] = {}
    keys: set[str] = set()
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if line.startswith("      - {") and line.endswith("}") and item is not None and nested_key:
            flow = _fast_flow(line[9:-1], values, keys)
            if flow is None:
                return None
            if item[nested_key] is None:
                item[nested_key] = []
            item[nested_key].append(flow)
        elif line.startswith("    ") and item is not None:
            m = _FAST_FIELD.fullmatch(line)
            if not m or m.group(1) in item or m.group(1).lower() in _YAML_WORDS:
                return None
            nested_key = ""
            if m.group(2) is None:
                nested_key = m.group(1)
                item[nested_key] = None
            elif (value := _fast_scalar(m.group(2))) is _FAIL:
                return None
            else:
                item[m.group(1)] = value
        elif line.startswith("  - ") and seq_key:
            if top[seq_key] is None:
                top[seq_key] = seq = []
            assert seq is not None
            item, nested_key = None, ""
            if line.startswith("  - {") and line.endswith("}"):
                flow = _fast_flow(line[5:-1], values, keys)
                if flow is None:
                    return None
                seq.append(flow)
                continue
            m = _FAST_ITEM.fullmatch(line)
            value = _fast_scalar(m.group(2)) if m else _FAIL
            if m is None or value is _FAIL or m.group(1).lower() in _YAML_WORDS:
                return None
            item = {m.group(1): value}
            seq.append(item)
        else:
            m = _FAST_TOP.fullmatch(line)
            if not m or m.group(1) in top or m.group(1).lower() in _YAML_WORDS:
                return None
            seq_key, seq, item, nested_key = "", None, None, ""
            if m.group(2) is None:
                seq_key = m.group(1)
                top[seq_key] = None
            elif m.group(2) == "[]":
                top[m.group(1)] = []
            elif (value := _fast_scalar(m.group(2))) is _FAIL:
                return None
            else:
                top[m.group(1)] = value
    return top or None


def _load_yaml(p: Path, source: str, problems: list[Problem]) -> Any:
    """Parse the file, turning syntax errors into a problem that names the line."""
    raw = p.read_bytes()
    try:
        fast = _fast_yaml(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        fast = None  # libyaml also reads UTF-16, or names the bad byte
    if fast is not None:
        return fast
    try:
        return yaml.load(raw, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = exc.problem or exc.context or "invalid YAML"
        if mark is None:
            problems.append(Problem(source, "", "", f"YAML syntax error: {what}"))
        else:
            line = mark.line + 1
            problems.append(
                Problem(
                    source,
                    f"line {line}",
                    "",
                    f"YAML syntax error: {what} (line {line}, column {mark.column + 1})",
                )
            )
    except yaml.YAMLError as exc:  # e.g. a reader error on bad bytes
        problems.append(Problem(source, "", "", f"YAML error: {exc}"))
    return None


def _scalar_fields(
    item: Mapping[Any, Any], entry: str, source: str, problems: list[Problem], skip: str = ""
) -> dict[Any, Any]:
    """Copy ``item`` with nested values replaced by None (each reported as a problem)."""
    row = {}
    for key, value in item.items():
        if key == skip:
            continue
        if isinstance(value, dict | list):
            problems.append(
                Problem(
                    source, entry, str(key), f"must be a single value, got a {type(value).__name__}"
                )
            )
            value = None
        row[key] = value
    return row


def _list_of(
    data: Mapping[Any, Any], key: str, entry: str, source: str, problems: list[Problem]
) -> list[Any]:
    """``data[key]`` as a list (missing or null is empty), or a problem."""
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(
            Problem(source, entry, key, f"must be a list, got a {type(value).__name__}")
        )
        return []
    return value


def _read_yaml(p: Path, source: str) -> _Tables:
    """Check the YAML structure and flatten it into node, site and device records."""
    t = _Tables(source)
    problems = t.problems
    data = _load_yaml(p, source, problems)
    if problems:
        t.ok = False
        return t
    if not isinstance(data, dict):
        t.ok = False
        problems.append(
            Problem(
                source, "", "", f"a fleet file must be a mapping with keys {', '.join(_TOP_KEYS)}"
            )
        )
        return t
    version = data.get("version")
    if version is None:
        problems.append(
            Problem(
                source,
                "",
                "version",
                f"is required; this reader understands version {YAML_VERSION}",
            )
        )
    elif version != YAML_VERSION or isinstance(version, bool):
        problems.append(
            Problem(
                source,
                "",
                "version",
                f"unsupported version {version!r}; this reader understands version {YAML_VERSION}",
            )
        )
    for key in data.keys() - set(_TOP_KEYS):
        problems.append(
            Problem(source, "", str(key), _unknown_message("top-level key", key, _TOP_KEYS))
        )

    nodes = []
    for i, node in enumerate(_list_of(data, "grid_nodes", "", source, problems)):
        if not isinstance(node, dict):
            problems.append(
                Problem(source, f"grid node #{i + 1}", "", "must be a mapping of grid node fields")
            )
            continue
        entry = f"grid node {node['id']}" if node.get("id") is not None else f"grid node #{i + 1}"
        for key in node.keys() - set(_NODE_KEYS):
            problems.append(
                Problem(
                    source,
                    entry,
                    str(key),
                    _unknown_message("field", key, _NODE_KEYS, " for a grid node"),
                )
            )
        nodes.append(_scalar_fields(node, entry, source, problems))

    sites, devices = [], []
    for i, site in enumerate(_list_of(data, "sites", "", source, problems)):
        if not isinstance(site, dict):
            problems.append(
                Problem(source, f"site #{i + 1}", "", "must be a mapping of site fields")
            )
            continue
        sid = site.get("id")
        entry = f"site {sid}" if sid is not None else f"site #{i + 1}"
        for key in site.keys() - set(_SITE_KEYS):
            problems.append(
                Problem(
                    source,
                    entry,
                    str(key),
                    _unknown_message("field", key, _SITE_KEYS, " for a site"),
                )
            )
        sites.append(_scalar_fields(site, entry, source, problems, skip="devices"))
        for j, dev in enumerate(_list_of(site, "devices", entry, source, problems)):
            devices.append(_device_record(dev, sid, entry, j, source, problems))
    t.nodes, t.sites, t.devices = nodes, sites, [d for d in devices if d is not None]
    return t


def _device_record(
    dev: Any, sid: Any, site_entry: str, j: int, source: str, problems: list[Problem]
) -> dict[Any, Any] | None:
    """One device mapping checked against its kind's fields, with ``site_id`` filled in."""
    if not isinstance(dev, dict):
        problems.append(
            Problem(
                source, f"{site_entry} device #{j + 1}", "", "must be a mapping of device fields"
            )
        )
        return None
    entry = f"device {dev['id']}" if dev.get("id") is not None else f"{site_entry} device #{j + 1}"
    kind = dev.get("kind")
    known = _KIND_KEYS.get(kind) if isinstance(kind, str) else None
    if isinstance(kind, str) and known is not None:  # an unknown kind is reported by build_spec
        for key in dev.keys() - set(known):
            problems.append(
                Problem(
                    source,
                    entry,
                    str(key),
                    _unknown_message("field", key, known, f" for {_article(kind)} {kind} device"),
                )
            )
    given = dev.get("site_id")
    if given is not None and sid is not None and str(given) != str(sid):
        problems.append(
            Problem(
                source,
                entry,
                "site_id",
                f"is {given!r} but the device is listed under site {sid!r}; "
                "leave site_id out (the enclosing site is implied)",
            )
        )
    row = _scalar_fields(dev, entry, source, problems)
    row["site_id"] = sid
    return row


# --------------------------------------------------------------------------- YAML writing


def _yaml_quoted(text: str) -> str:
    """``text`` as a double-quoted YAML scalar, escaped by PyYAML itself."""
    out = yaml.dump(text, Dumper=_SafeDumper, default_style='"', width=1 << 30, allow_unicode=True)
    return out.removesuffix("\n...\n").rstrip("\n")


def _yaml_column(col: pd.Series, a: Attr) -> list[str]:
    """Each value of ``col`` as YAML scalar text that reads back to the same value."""
    if a.type == "bool":
        return ["true" if v else "false" for v in col.to_numpy(dtype=bool)]
    if a.type == "int":
        return [str(v) for v in col.to_numpy(dtype=np.int64).tolist()]
    if a.type == "float":
        values = col.to_numpy(dtype=float)
        integral = (values == np.trunc(values)) & (np.abs(values) < 1e15)
        ints = np.where(integral, values, 0).astype(np.int64).tolist()
        out: list[str] = []
        for v, i, is_int in zip(values.tolist(), ints, integral.tolist(), strict=True):
            if is_int:
                out.append(str(i))
                continue
            text = repr(v)
            if "e" in text and "." not in text:  # YAML 1.1 floats need a dot: 1e-05 -> 1.0e-05
                text = text.replace("e", ".0e", 1)
            out.append(text)
        return out
    strings = col.astype(str)
    plain = strings.str.fullmatch(_PLAIN_RE.pattern) & ~strings.str.lower().isin(_YAML_WORDS)
    values_text: list[str] = [str(v) for v in strings.tolist()]
    for i in np.flatnonzero(~plain.to_numpy(dtype=bool)).tolist():
        values_text[i] = _yaml_quoted(values_text[i])
    return values_text


def _yaml_fields(
    df: pd.DataFrame, attrs: Iterable[Attr], omit: Iterable[str] = ()
) -> list[list[str]]:
    """Per row, the ``name: value`` pairs worth writing (required or not at their default)."""
    rows: list[list[str]] = [[] for _ in range(len(df))]
    skip = set(omit)
    for a in attrs:
        if a.name in skip:
            continue
        col = df[a.name]
        if a.required or a.name in ("id", "kind"):
            keep = np.ones(len(df), dtype=bool)
        else:
            keep = (col != a.default).to_numpy(dtype=bool)
        if not keep.any():
            continue
        text = _yaml_column(col, a)
        prefix = f"{a.name}: "
        for i in np.flatnonzero(keep).tolist():
            rows[i].append(prefix + text[i])
    return rows


def _yaml_text(spec: FleetSpec) -> str:
    """The whole YAML document: grid nodes, then sites in block style with flow devices."""
    lines = [
        "# Gridflock fleet file; format: docs/fleet-files.md. Attributes equal to their",
        "# declared default are left out.",
        f"version: {YAML_VERSION}",
    ]
    node_rows = _yaml_fields(spec.grid_nodes, GRID_NODE_ATTRS)
    lines.append("grid_nodes:" + ("" if node_rows else " []"))
    lines += ["  - {" + ", ".join(r) + "}" for r in node_rows]

    site_ids = spec.sites["id"].to_numpy(dtype=object)
    position = pd.Index(site_ids)
    dev_lines: list[str] = []
    dev_pos: list[np.ndarray] = []
    for kind in DeviceKind:
        df = spec.devices.get(kind)
        if df is None or not len(df):
            continue
        # gateway_id equal to the site id is what build_spec fills in for a blank one
        gw = df["gateway_id"].where(df["gateway_id"] != df["site_id"], "")
        rows = _yaml_fields(df.assign(gateway_id=gw), device_attrs(kind), omit=("site_id",))
        dev_lines += ["      - {" + ", ".join(r) + "}" for r in rows]
        dev_pos.append(position.get_indexer(df["site_id"]))
    pos = np.concatenate(dev_pos) if dev_pos else np.zeros(0, dtype=np.int64)
    order = np.argsort(pos, kind="stable")
    starts = np.searchsorted(pos[order], np.arange(len(site_ids) + 1))

    lines.append("sites:" + ("" if len(site_ids) else " []"))
    for s, fields in enumerate(_yaml_fields(spec.sites, SITE_ATTRS)):
        lines.append("  - " + fields[0])
        lines += ["    " + f for f in fields[1:]]
        lo, hi = starts[s], starts[s + 1]
        if hi > lo:
            lines.append("    devices:")
            lines += [dev_lines[k] for k in order[lo:hi].tolist()]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- CSV


def _read_table(p: Path, source: str, problems: list[Problem]) -> pd.DataFrame | None:
    """Read a CSV with every cell as text (blank cells as NaN), or report why it cannot."""
    if not p.is_file():
        problems.append(Problem(source, "", "", "file not found"))
        return None
    try:
        df = pd.read_csv(
            p,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            skipinitialspace=True,
            encoding="utf-8",
        )
    except pd.errors.EmptyDataError:
        problems.append(Problem(source, "", "", "file is empty: expected a header row"))
        return None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        problems.append(Problem(source, "", "", f"cannot parse CSV: {exc}"))
        return None
    df.columns = [str(c).strip() for c in df.columns]
    return df


def _check_columns(
    df: pd.DataFrame, known: tuple[str, ...], what: str, source: str, problems: list[Problem]
) -> None:
    for col in df.columns:
        if col not in known:
            problems.append(
                Problem(
                    source,
                    "",
                    col,
                    _unknown_message("column", col, known, f" in {what}"),
                )
            )


def _read_csv(p: Path, source: str) -> _Tables:
    """Split the device rows into sites and devices, checking columns and site agreement."""
    t = _Tables(source)
    problems = t.problems
    node_path = p.with_name(p.stem + ".grid_nodes.csv")
    t.node_source = str(Path(source).with_name(node_path.name))
    raw = _read_table(p, source, problems)
    nodes = _read_table(node_path, t.node_source, problems)
    if raw is None or nodes is None:
        t.ok = False
        return t
    _check_columns(raw, _CSV_SITE_COLS + _CSV_DEVICE_COLS, "a fleet CSV", source, problems)
    _check_columns(nodes, _NODE_KEYS, "a grid node CSV", t.node_source, problems)
    if "site_id" not in raw.columns:
        raw["site_id"] = np.nan
    _check_applicable(raw, source, problems)

    site_cols = [c for c in _CSV_SITE_COLS if c in raw.columns]
    with_site = raw[raw["site_id"].notna()]
    _check_site_agreement(with_site, site_cols, source, problems)
    sites = with_site.drop_duplicates("site_id")[site_cols]
    t.sites = sites.rename(columns=lambda c: c.removeprefix("site_"))
    t.devices = raw[[c for c in raw.columns if c in _CSV_DEVICE_COLS]]
    t.nodes = nodes
    return t


def _check_applicable(raw: pd.DataFrame, source: str, problems: list[Problem]) -> None:
    """A value in a column its row's kind does not declare is a mistake, not a default."""
    if "kind" not in raw.columns:
        return
    kinds = raw["kind"].fillna("").str.strip()
    ids = (
        raw["id"]
        if "id" in raw.columns
        else pd.Series([f"row {i + 2}" for i in range(len(raw))], index=raw.index)
    )
    for kind in DeviceKind:
        rows = (kinds == kind.value).to_numpy()
        if not rows.any():
            continue
        known = set(_KIND_KEYS[kind.value])
        for col in raw.columns:
            if col in known or col not in _CSV_DEVICE_COLS:
                continue
            bad = np.flatnonzero(rows & raw[col].notna().to_numpy())
            for i in bad[:_MAX_REPORTED]:
                problems.append(
                    Problem(
                        source,
                        f"device {ids.iloc[i]}",
                        col,
                        f"does not apply to {_article(kind.value)} {kind.value} device (leave it "
                        f"blank); {kind.value} fields: {', '.join(_KIND_KEYS[kind.value])}",
                    )
                )


def _check_site_agreement(
    rows: pd.DataFrame, site_cols: list[str], source: str, problems: list[Problem]
) -> None:
    """Every row of a site must give the same site columns (compared as values, not text)."""
    types = {"site_" + a.name: a.type for a in SITE_ATTRS}
    keys = pd.DataFrame({"site_id": rows["site_id"]})
    cols = [c for c in site_cols if c != "site_id"]
    for c in cols:
        text = rows[c].str.strip()
        if types[c] in ("float", "int"):
            num = pd.to_numeric(text, errors="coerce")
            text = text.where(num.isna(), num.astype(str))
        elif types[c] == "bool":
            text = text.str.lower()
        keys[c] = text
    if not cols or not len(keys):
        return
    counts = keys.groupby("site_id", sort=False)[cols].nunique(dropna=False)
    reported = 0
    for c in cols:
        for sid in counts.index[(counts[c] > 1).to_numpy()]:
            values = rows.loc[(rows["site_id"] == sid).to_numpy(), c].unique()[:2]
            problems.append(
                Problem(
                    source,
                    f"site {sid}",
                    c,
                    f"differs between rows of the same site ({values[0]!r} vs {values[1]!r}); "
                    "a site's columns must agree across its rows",
                )
            )
            reported += 1
            if reported >= _MAX_REPORTED:
                return


def _write_csv(spec: FleetSpec, p: Path, source: str) -> None:
    """Write one row per device joined with its site's columns, and the grid-node file."""
    frames = [df for df in spec.devices.values() if len(df)]
    devices = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame({c: pd.Series(dtype=object) for c in _CSV_DEVICE_COLS})
    )
    lonely = ~spec.sites["id"].isin(devices["site_id"])
    if lonely.any():
        ids = spec.sites["id"][lonely].tolist()
        raise ValidationError(
            [
                Problem(
                    source,
                    f"site {sid}",
                    "",
                    "has no devices; a CSV fleet file cannot express a site "
                    "without devices (use YAML)",
                )
                for sid in ids[:_MAX_REPORTED]
            ]
        )
    int_cols = {a.name for k in DeviceKind for a in KIND_ATTRS[k] if a.type == "int"}
    for c in int_cols & set(devices.columns):
        devices[c] = devices[c].astype("Int64")
    position = pd.Index(spec.sites["id"]).get_indexer(devices["site_id"])
    devices = devices.iloc[np.argsort(position, kind="stable")]
    sites = spec.sites.add_prefix("site_")
    table = devices.merge(sites, on="site_id", how="left", sort=False)
    table = table.reindex(
        columns=[*_CSV_SITE_COLS, *(c for c in _CSV_DEVICE_COLS if c != "site_id")]
    )
    table.to_csv(p, index=False)
    spec.grid_nodes[list(_NODE_KEYS)].to_csv(p.with_name(p.stem + ".grid_nodes.csv"), index=False)
