"""The device-kind registry: each kind declared once, everything else derived from it.

A :class:`KindDecl` is everything Gridflock knows about a kind of device. From it follow
validation (``domain.spec``), the CSV/YAML formats (``fleet.files``) and
``docs/fleet-files.md``, the fleet state's columns (``fleet.state``), the telemetry extras
the protocol accepts, and the device's *power band*: the lowest and highest power (generator
sign) it can hold over a given duration from its capability, live state and the customer's
constraints. Flexibility is derived from the band by one generic function
(``fleet.flexibility``), so a new kind is a new declaration (plus its physics in the twin)
and nothing in dispatch.

:class:`DeviceKind` is a string backed by the registry: iterating it lists every declared
kind in declaration order, and ``DeviceKind("battery")`` refuses names nobody declared.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from gridflock.domain.attributes import Attr
from gridflock.domain.messages import FloatArray

__all__ = [
    "KIND_ATTRS",
    "Band",
    "Derive",
    "DeviceKind",
    "KindDecl",
    "Rule",
    "declare_kind",
    "kind_decl",
    "kind_decls",
    "telemetry_extras",
    "telemetry_extras_text",
    "withdraw_kind",
]

#: Column values of one kind's devices, by name (see :class:`KindDecl`), all of one length.
Columns = Mapping[str, FloatArray]
#: A power band: ``band(columns, duration_h, now) -> (floor_kw, ceiling_kw)``, generator
#: sign, per device; NaN where the device's state is unknown (it then offers nothing).
Band = Callable[[Columns, float, float], tuple[FloatArray, FloatArray]]
#: A state column computed from the kind's validated table.
Derive = Callable[[pd.DataFrame], FloatArray]
#: ``(low, high, message)``: attribute ``low`` must not exceed attribute ``high``.
Rule = tuple[str, str, str]


@dataclass(frozen=True)
class KindDecl:
    """The one declaration of a device kind.

    Attributes
    ----------
    name
        The kind's name in files, the API and telemetry (snake_case).
    description
        One line for the docs.
    attrs
        Capability model: attributes a fleet file gives (after ``DEVICE_COMMON``).
    columns
        Fleet-state columns that are not plain attributes: ``name -> attribute`` (a
        rename) or ``name -> function(table)`` (derived). ``p_gen_max_kw`` (largest
        export) and ``p_load_max_kw`` (largest import) [kW] are read fleet-wide; every
        numeric or boolean attribute is a column under its own name as well.
    extras
        Telemetry extras a device of this kind reports (floats; units in ``Attr.unit``).
    reports_soc
        Whether readings carry a state of charge.
    rules
        Consistency rules between two attributes, checked on validation.
    band
        The power band over a hold (see :data:`Band`); ``None``: the kind offers nothing.
    controllable
        Whether the dispatcher may command it (a plain load is only measured).
    follows_site
        On its own the device offsets the rest of its home (a self-consumption battery),
        so while another device of the site is dispatched it must be held at its
        baseline, or it would undo that dispatch.

    """

    name: str
    description: str
    attrs: tuple[Attr, ...]
    columns: Mapping[str, str | Derive] = field(default_factory=dict)
    extras: tuple[Attr, ...] = ()
    reports_soc: bool = False
    rules: tuple[Rule, ...] = ()
    band: Band | None = None
    controllable: bool = True
    follows_site: bool = False

    def column_names(self) -> tuple[str, ...]:
        """Every fleet-state column of the kind: numeric/boolean attributes, then ``columns``."""
        own = tuple(a.name for a in self.attrs if a.type != "str")
        return own + tuple(c for c in self.columns if c not in own)

    def state_columns(self, table: pd.DataFrame) -> dict[str, FloatArray]:
        """The kind's fleet-state columns computed from its validated table (float64)."""
        out: dict[str, FloatArray] = {}
        for a in self.attrs:
            if a.type != "str":
                out[a.name] = table[a.name].to_numpy(dtype=np.float64)
        for name, source in self.columns.items():
            if isinstance(source, str):
                out[name] = table[source].to_numpy(dtype=np.float64)
            else:
                out[name] = np.asarray(source(table), dtype=np.float64)
        return out


_REGISTRY: dict[str, KindDecl] = {}


class _KindRegistry(type):
    """Metaclass making ``DeviceKind`` iterable over the declared kinds, like an enum."""

    def __iter__(cls) -> Iterator[DeviceKind]:
        return iter([DeviceKind(k) for k in _REGISTRY])

    def __len__(cls) -> int:
        return len(_REGISTRY)

    def __contains__(cls, value: object) -> bool:
        return value in _REGISTRY


class DeviceKind(str, metaclass=_KindRegistry):
    """A declared device kind: a string such as ``"battery"``.

    Behaves like a string enum whose members are the declared kinds: ``for k in
    DeviceKind`` lists them in declaration order, ``DeviceKind(name)`` raises
    ``ValueError`` for a name nobody declared, ``k.value`` is the plain string.
    """

    BATTERY: ClassVar[DeviceKind]
    PV: ClassVar[DeviceKind]
    WIND: ClassVar[DeviceKind]
    EV_CHARGER: ClassVar[DeviceKind]
    HEAT_PUMP: ClassVar[DeviceKind]
    WATER_HEATER: ClassVar[DeviceKind]
    LOAD: ClassVar[DeviceKind]

    def __new__(cls, value: str) -> DeviceKind:
        """The kind named ``value``; ``ValueError`` naming the declared kinds otherwise."""
        text = str(value)
        if text not in _REGISTRY:
            raise ValueError(f"unknown device kind {text!r}; use one of {', '.join(_REGISTRY)}")
        return super().__new__(cls, text)

    @property
    def value(self) -> str:
        """The kind's name as a plain string."""
        return str.__str__(self)

    def __repr__(self) -> str:
        return f"DeviceKind({self.value!r})"

    @property
    def decl(self) -> KindDecl:
        """The kind's declaration."""
        return _REGISTRY[self.value]

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        """Validate as a string naming a declared kind (for API query and body fields)."""
        from pydantic_core import core_schema

        return core_schema.no_info_after_validator_function(
            cls,
            core_schema.str_schema(),
            serialization=core_schema.plain_serializer_function_ser_schema(str),
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> dict[str, Any]:
        """JSON Schema: one of the declared kinds' names."""
        return {"type": "string", "enum": list(_REGISTRY), "title": "DeviceKind"}


def declare_kind(decl: KindDecl) -> DeviceKind:
    """Register a kind's declaration; every part of Gridflock follows from it.

    Raises ``ValueError`` if the name is taken, is not snake_case, or an extra clashes
    with a declared extra of the same name but another unit.
    """
    if decl.name in _REGISTRY:
        raise ValueError(f"device kind {decl.name!r} is declared already")
    if not decl.name.isidentifier() or decl.name.lower() != decl.name:
        raise ValueError(f"device kind name {decl.name!r} must be snake_case")
    known = telemetry_extras()
    for extra in decl.extras:
        if extra.name in known and known[extra.name].unit != extra.unit:
            raise ValueError(
                f"telemetry extra {extra.name!r} of {decl.name!r} is in {extra.unit!r}, "
                f"but declared in {known[extra.name].unit!r} already"
            )
    _REGISTRY[decl.name] = decl
    KIND_ATTRS[decl.name] = decl.attrs
    return DeviceKind(decl.name)


def withdraw_kind(name: str) -> None:
    """Remove a kind declared with :func:`declare_kind` (for tests and plug-ins)."""
    _REGISTRY.pop(name, None)
    KIND_ATTRS.pop(name, None)


def kind_decl(kind: str) -> KindDecl:
    """The declaration of ``kind``; ``ValueError`` for an undeclared one."""
    return DeviceKind(kind).decl


def kind_decls() -> tuple[KindDecl, ...]:
    """Every declaration, in declaration order (the fleet state's kind order)."""
    return tuple(_REGISTRY.values())


def telemetry_extras_text() -> dict[str, str]:
    """Each telemetry extra's meaning with its unit and the kinds that report it."""
    kinds: dict[str, list[str]] = {}
    for decl in _REGISTRY.values():
        for extra in decl.extras:
            kinds.setdefault(extra.name, []).append(decl.name.replace("_", " "))
    return {
        name: f"{a.description} [{a.unit}] ({', '.join(kinds[name])})"
        for name, a in telemetry_extras().items()
    }


def telemetry_extras() -> dict[str, Attr]:
    """Every telemetry extra any kind reports, by name (first declaration wins)."""
    out: dict[str, Attr] = {}
    for decl in _REGISTRY.values():
        for extra in decl.extras:
            out.setdefault(extra.name, extra)
    return out


#: Capability model of each declared kind, by name (kept in step with the declarations).
KIND_ATTRS: dict[str, tuple[Attr, ...]] = {}
