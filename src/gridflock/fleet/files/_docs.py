"""Markdown attribute tables of ``docs/fleet-files.md``, generated from the declarations."""

from __future__ import annotations

from collections.abc import Iterable

from gridflock.domain.attributes import Attr
from gridflock.domain.kinds import (
    DEVICE_COMMON,
    GRID_NODE_ATTRS,
    SITE_ATTRS,
    DeviceKind,
    KindDecl,
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
    parts += [_table(f"Device kind `{k.value}`", k.decl.attrs, _about(k.decl)) for k in DeviceKind]
    return "\n".join(parts)


def _about(decl: KindDecl) -> str:
    """The kind's description and what its declaration says beyond its attributes."""
    facts = [decl.description]
    reports = (["`soc`"] if decl.reports_soc else []) + [
        f"`{x.name}` [{x.unit}]" for x in decl.extras
    ]
    if reports:
        facts.append("Readings carry " + ", ".join(reports) + ".")
    if not decl.controllable:
        facts.append("Never commanded.")
    elif decl.band is None:
        facts.append("Offers no flexibility.")
    if decl.follows_site:
        facts.append("Held at its baseline while another device of its site is dispatched.")
    rules = [f"{msg} (`{lo}` <= `{hi}`)" for lo, hi, msg in decl.rules]
    if rules:
        facts.append("Rules: " + "; ".join(rules) + ".")
    return " ".join(facts)


def _table(title: str, attrs: Iterable[Attr], about: str = "") -> str:
    """One Markdown table of ``attrs`` under a level-3 heading (and a line ``about`` it)."""
    lines = (
        [f"### {title}", ""]
        + ([about, ""] if about else [])
        + [
            "| Name | Type | Unit | Default | Bounds | Description |",
            "|---|---|---|---|---|---|",
        ]
    )
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
