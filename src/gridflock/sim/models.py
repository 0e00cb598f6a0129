"""Physics of device kinds beyond the built-in ones, plugged into the digital twin.

The twin steps the built-in kinds (battery, PV, wind, EV charger, heat pump, water
heater, load) itself. A kind declared with ``domain.kinds.declare_kind`` brings its
physics as a :class:`DeviceModel`, registered here under the kind's name; the twin then
steps it with the rest of the home, hands it the commands it receives and publishes its
readings, and nothing else in Gridflock needs to know the kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from gridflock.domain.messages import FloatArray
from gridflock.sim.weather import Weather

__all__ = [
    "DeviceModel",
    "ModelContext",
    "ModelFactory",
    "model_factory",
    "register_model",
    "unregister_model",
]


@dataclass(frozen=True)
class ModelContext:
    """What a device model may know of the simulation it runs in."""

    times: pd.DatetimeIndex
    step_s: float
    weather: Weather
    tz: str
    rng: np.random.Generator


class DeviceModel(Protocol):
    """The twin's physics of one kind's devices, as arrays over those devices."""

    def step(
        self, t: int, now: float, request: Callable[[FloatArray], FloatArray]
    ) -> tuple[FloatArray, FloatArray]:
        """Advance one step from ``now`` [UTC epoch s]; return ``(baseline_kw, p_kw)``.

        ``request(natural_kw)`` is the power the devices are asked for [kW, generator
        sign]: their own ``natural_kw`` unless a command is in force. The baseline is what
        the devices would have done had they never been commanded (a model keeps that
        undispatched state alongside its real one).
        """
        ...

    def extras(self, now: float) -> dict[str, FloatArray]:
        """The kind's declared telemetry extras, as reported at ``now``."""
        ...

    def soc(self) -> FloatArray | None:
        """State of charge to report, or ``None`` if the kind reports none."""
        ...


#: Builds a kind's model from its validated device table and the simulation context.
ModelFactory = Callable[[pd.DataFrame, ModelContext], DeviceModel]

_MODELS: dict[str, ModelFactory] = {}


def register_model(kind: str, factory: ModelFactory) -> None:
    """Give the twin the physics of ``kind`` (a kind declared with ``declare_kind``)."""
    if kind in _MODELS:
        raise ValueError(f"the twin has a model of {kind!r} already")
    _MODELS[kind] = factory


def unregister_model(kind: str) -> None:
    """Remove the physics registered for ``kind`` (for tests and plug-ins)."""
    _MODELS.pop(kind, None)


def model_factory(kind: str) -> ModelFactory:
    """The factory registered for ``kind``; ``ValueError`` naming what to do otherwise."""
    try:
        return _MODELS[kind]
    except KeyError:
        raise ValueError(
            f"the twin has no physics for device kind {kind!r}: register a model with "
            "gridflock.sim.models.register_model"
        ) from None
