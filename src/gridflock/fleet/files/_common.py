"""Helpers shared by the YAML and CSV readers: field names, lexical rules, problem text."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pandas as pd

from gridflock.domain.errors import Problem
from gridflock.domain.kinds import GRID_NODE_ATTRS, DeviceKind, device_attrs

_NODE_KEYS = tuple(a.name for a in GRID_NODE_ATTRS)


class _KindKeys(Mapping[str, tuple[str, ...]]):
    """Field names of each declared kind, read from the declarations on every use.

    Live rather than computed at import, so a kind declared later is read and written too.
    """

    def __getitem__(self, kind: str) -> tuple[str, ...]:
        if kind not in DeviceKind:
            raise KeyError(kind)
        return tuple(a.name for a in device_attrs(kind))

    def __iter__(self) -> Iterator[str]:
        return iter([k.value for k in DeviceKind])

    def __len__(self) -> int:
        return len(DeviceKind)


_KIND_KEYS = _KindKeys()
#: Words YAML 1.1 reads as booleans or null (quoted when written, so they stay strings).
_YAML_WORDS = frozenset({"yes", "no", "true", "false", "on", "off", "null", "y", "n"})
#: Strings written unquoted: no YAML indicator, no number or timestamp look-alike.
_PLAIN_RE = re.compile(r"[A-Za-z][A-Za-z0-9_./-]*")


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
