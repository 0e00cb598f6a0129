"""Markdown attribute tables of ``docs/fleet-files.md``, generated from the declarations."""

from __future__ import annotations

from collections.abc import Iterable

from gridflock.domain.attributes import Attr
from gridflock.domain.kinds import (
    DEVICE_COMMON,
    GRID_NODE_ATTRS,
    KIND_ATTRS,
    SITE_ATTRS,
    DeviceKind,
)


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
