"""Configuration of the gateway's S2 devices: where the CEM listens and which RM is which."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gridflock.domain import DeviceKind

__all__ = ["S2DeviceConfig", "config_problems"]

_KINDS = ("battery", "heat_pump", "water_heater", "ev_charger", "load")


class S2DeviceConfig(BaseModel):
    """One S2 resource manager that connects to this gateway's CEM endpoint.

    Several devices may share one endpoint (same host, port and path): the RM's
    ``ResourceManagerDetails.resource_id`` tells them apart.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    protocol: Literal["s2"] = "s2"
    device_id: str = Field(min_length=1, max_length=128)
    """The Gridflock device id the RM's readings and setpoints belong to."""
    kind: str = "battery"
    """The Gridflock device kind (battery, heat_pump, water_heater, ev_charger, load)."""
    resource_id: uuid.UUID
    """The ``resource_id`` (a UUID) the RM announces in its ResourceManagerDetails."""
    listen_host: str = "127.0.0.1"
    listen_port: int = Field(default=8765, ge=0, le=65535)
    """TCP port of the websocket endpoint (0: any free port, see ``S2Driver.endpoints``)."""
    path: str = Field(default="/s2", pattern=r"^/[A-Za-z0-9/_\-.]*$")
    """URL path RMs connect to (``ws://host:port/path``)."""
    control_type: Literal["auto", "FRBC", "PPBC"] = "auto"
    """Control type to select: ``auto`` takes FRBC when the RM offers it, else PPBC."""
    safe_mode: Literal["rm_control", "idle"] = "rm_control"
    """On release: ``rm_control`` hands control back to the RM (SelectControlType
    NO_SELECTION, pending schedules revoked); ``idle`` keeps control and instructs 0 kW
    (FRBC) or the RM's own unshifted plan (PPBC)."""
    min_horizon_s: float = Field(default=60.0, gt=0, le=86_400)
    """The fill level is kept in range for at least this long after each instruction [s],
    even when the command expires sooner."""
    reception_timeout_s: float = Field(default=5.0, gt=0, le=120)
    """How long to wait for the RM's ReceptionStatus before calling it unresponsive [s]."""

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        if v not in {str(k) for k in DeviceKind} or v not in _KINDS:
            raise ValueError(f"kind {v!r} cannot be an S2 device; use one of {', '.join(_KINDS)}")
        return v

    @property
    def endpoint(self) -> tuple[str, int, str]:
        """(host, port, path) of the websocket endpoint."""
        return self.listen_host, self.listen_port, self.path


def config_problems(configs: Sequence[S2DeviceConfig]) -> list[str]:
    """Every problem across the devices at once (duplicate ids, clashing endpoints)."""
    problems: list[str] = []
    seen_dev: dict[str, int] = {}
    seen_rm: dict[tuple[str, int, str, uuid.UUID], int] = {}
    ports: dict[tuple[str, int], str] = {}
    for i, c in enumerate(configs):
        if c.device_id in seen_dev:
            problems.append(
                f"s2 device {i} ({c.device_id}): device_id already used by s2 device "
                f"{seen_dev[c.device_id]}"
            )
        seen_dev.setdefault(c.device_id, i)
        key = (*c.endpoint, c.resource_id)
        if key in seen_rm:
            problems.append(
                f"s2 device {i} ({c.device_id}): resource_id {c.resource_id} already used on "
                f"ws://{c.listen_host}:{c.listen_port}{c.path} by s2 device {seen_rm[key]}"
            )
        seen_rm.setdefault(key, i)
        if c.listen_port:
            hp = (c.listen_host, c.listen_port)
            if ports.setdefault(hp, c.path) != c.path:
                problems.append(
                    f"s2 device {i} ({c.device_id}): {c.listen_host}:{c.listen_port} already "
                    f"serves path {ports[hp]!r}; give every device on one port the same path"
                )
    return problems
