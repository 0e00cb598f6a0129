"""Fast reader of YAML fleet files in :func:`~gridflock.fleet.files.write_fleet`'s own layout."""

from __future__ import annotations

import re
from typing import Any

from gridflock.fleet.files._common import _PLAIN_RE, _YAML_WORDS

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
