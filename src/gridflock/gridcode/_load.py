"""Load and validate the profile files shipped with the package (YAML, pydantic).

Profiles are read once and cached: ``profiles()`` maps each code to its
:class:`~gridflock.gridcode._model.Profile`. A file that breaks the schema stops the
load with the file's name and pydantic's account of what is wrong.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from gridflock.gridcode._model import FrequencyProduct, KindResponse, Profile

__all__ = ["ProfileFileError", "kind_responses", "products", "profile", "profiles"]


class ProfileFileError(ValueError):
    """A profile or product file shipped with the package does not validate."""


class _Products(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    products: tuple[FrequencyProduct, ...]
    kinds: dict[str, KindResponse]


def _read(name: str, text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProfileFileError(f"{name}: not valid YAML: {exc}") from exc


@cache
def profiles() -> dict[str, Profile]:
    """Every shipped profile by code, validated."""
    out: dict[str, Profile] = {}
    folder = resources.files("gridflock.gridcode").joinpath("profiles")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yaml"):
            continue
        try:
            p = Profile.model_validate(_read(entry.name, entry.read_text(encoding="utf-8")))
        except ValidationError as exc:
            raise ProfileFileError(f"profiles/{entry.name}: {exc}") from exc
        if p.code in out:
            raise ProfileFileError(f"profiles/{entry.name}: code {p.code} given twice")
        out[p.code] = p
    return out


def profile(code: str) -> Profile:
    """The profile ``code``; a KeyError names the known codes."""
    try:
        return profiles()[code]
    except KeyError:
        raise KeyError(f"unknown grid code {code!r}; known: {', '.join(profiles())}") from None


@cache
def _products_file() -> _Products:
    entry = resources.files("gridflock.gridcode").joinpath("products.yaml")
    try:
        return _Products.model_validate(_read("products.yaml", entry.read_text(encoding="utf-8")))
    except ValidationError as exc:
        raise ProfileFileError(f"products.yaml: {exc}") from exc


def products() -> dict[str, FrequencyProduct]:
    """Fast frequency products by code (GB-DC, AU-VFFCAS)."""
    return {p.code: p for p in _products_file().products}


def kind_responses() -> dict[str, KindResponse]:
    """How fast each device kind follows a local frequency droop (the twin's model)."""
    return dict(_products_file().kinds)
