"""YAML fleet files (version 1): structural checks on reading, and the writer."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, ScalarNode

from gridflock.domain.attributes import Attr
from gridflock.domain.errors import Problem
from gridflock.domain.kinds import GRID_NODE_ATTRS, SITE_ATTRS, DeviceKind, device_attrs
from gridflock.domain.spec import FleetSpec
from gridflock.fleet.files._common import (
    _KIND_KEYS,
    _NODE_KEYS,
    _PLAIN_RE,
    _YAML_WORDS,
    _article,
    _Tables,
    _unknown_message,
)
from gridflock.fleet.files._yaml_fast import _fast_yaml

try:
    from yaml import CSafeDumper as _SafeDumper
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeDumper as _SafeDumper  # type: ignore[assignment]
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

#: Version of the YAML fleet format this module reads and writes.
YAML_VERSION = 1

_TOP_KEYS = ("version", "grid_nodes", "sites")
_SITE_KEYS = (*(a.name for a in SITE_ATTRS), "devices")

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
