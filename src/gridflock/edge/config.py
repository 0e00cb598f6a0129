"""The edge gateway's configuration file (YAML), validated with every problem reported at once.

A file has the gateway's uplink (``gateway``), the local buffer's bound (``buffer``),
the fail-safe timing (``failsafe``) and the site's ``devices``. A device entry is a
discriminated union on ``protocol``: each protocol registers its entry model and its
driver factory (:func:`register_protocol`), so a new local protocol adds one entry model
and one factory and nothing else changes. ``sunspec`` is registered here.

Problems come as one :class:`gridflock.domain.ValidationError` whose
:class:`~gridflock.domain.Problem` items name the file, the entry (``device site-pv``,
``devices[2]``, ``gateway``) and the field, as the fleet files do.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from gridflock.domain import Problem, ValidationError
from gridflock.edge.der import DerCurvesOverride, DerSettings, derive_der_settings
from gridflock.gateways.mqtt.protocol import ID_PATTERN

if TYPE_CHECKING:
    from gridflock.edge.driver import LocalDriver

__all__ = [
    "BufferConfig",
    "DeviceEntry",
    "EdgeConfig",
    "FailsafeConfig",
    "GatewayConfig",
    "ProtocolSpec",
    "S2Device",
    "SunSpecDevice",
    "load_config",
    "parse_config",
    "protocols",
    "register_protocol",
]

#: Fastest poll interval a device may ask for [s].
MIN_POLL_S = 1.0


class _Closed(BaseModel):
    """Unknown keys are refused (a typo is a problem, not a silent default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class GatewayConfig(_Closed):
    """The uplink: the gateway's own broker account and the service's broker."""

    id: str = Field(pattern=ID_PATTERN, description="Gateway id, also the broker user name.")
    broker: str = Field(
        description="Broker URL: mqtt://host:1883, or mqtts://host:8883 for TLS.",
        min_length=1,
    )
    password: str | None = Field(None, description="The gateway's broker secret.")
    password_file: Path | None = Field(
        None, description="File holding the secret (first line), instead of password."
    )
    tls_ca: Path | None = Field(None, description="CA bundle (PEM) of the broker's certificate.")
    tls_cert: Path | None = Field(None, description="Client certificate (PEM), if required.")
    tls_key: Path | None = Field(None, description="Client key (PEM), with tls_cert.")
    keepalive_s: int = Field(30, ge=5, le=60, description="MQTT keep-alive [s].")
    state_file: Path | None = Field(
        None,
        description="File keeping sequence numbers and schedules across restarts "
        "(written on every change); none: a restart starts afresh.",
    )

    @field_validator("broker")
    @classmethod
    def _scheme(cls, v: str) -> str:
        head = v.split("://", 1)[0].lower() if "://" in v else "mqtt"
        if head not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ValueError("use mqtt://host:port or mqtts://host:port")
        if "@" in v.split("://", 1)[-1].split("/", 1)[0]:
            raise ValueError(
                "no credentials in the URL: the user name is the gateway id, the secret goes "
                "in password or password_file"
            )
        return v

    def secret(self) -> str | None:
        """The broker secret: ``password``, else the first line of ``password_file``."""
        if self.password is not None:
            return self.password
        if self.password_file is not None:
            lines = self.password_file.read_text().splitlines()
            return lines[0].strip() if lines else ""
        return None


class BufferConfig(_Closed):
    """The local telemetry buffer used while the uplink is down."""

    max_readings_per_device: int = Field(
        17_280,
        ge=1,
        le=1_000_000,
        description="Readings kept per device while offline (17,280 = 24 h at 5 s); "
        "beyond it the oldest are dropped and counted.",
    )


class FailsafeConfig(_Closed):
    """When the service counts as silent."""

    silence_s: float = Field(
        120.0,
        gt=0,
        le=86_400,
        description="No message from the service and no broker connection for this long "
        "[s]: every commanded device goes to its safe mode (schedules keep running).",
    )


class DeviceEntry(_Closed):
    """What every device entry has; a protocol's entry model subclasses it with its address."""

    id: str = Field(min_length=1, max_length=256, description="Gridflock device id.")
    kind: str = Field(
        min_length=1, description="What the device is (``meter``: takes no setpoints)."
    )
    poll_interval_s: float = Field(
        5.0, ge=MIN_POLL_S, le=3600.0, description="How often it is read [s]."
    )
    safe_mode: Literal["own_control", "zero"] = Field(
        "own_control",
        description="What the device does without a valid command: its own control, or "
        "hold 0 kW (a battery idle, a PV inverter curtailed to nothing).",
    )


class SunSpecDevice(DeviceEntry):
    """A SunSpec Modbus TCP device (an inverter, a battery inverter, a meter)."""

    protocol: Literal["sunspec"]
    kind: Literal["pv", "battery", "meter"] = Field(description="What the device is.")
    host: str = Field(min_length=1, description="IP address or host name of the device.")
    port: int = Field(502, ge=1, le=65535, description="Modbus TCP port.")
    unit: int = Field(1, ge=1, le=247, description="Modbus unit id.")
    models: list[int] = Field(
        default_factory=list,
        description="SunSpec models the device must offer (checked at start); empty: "
        "whatever discovery finds.",
    )
    p_max_kw: float | None = Field(
        None,
        gt=0,
        le=100_000,
        description="Rating [kW] when the device does not declare one (model 120 / 702).",
    )
    timeout_s: float = Field(2.0, gt=0, le=30, description="Modbus request timeout [s].")
    meter_import_positive: bool = Field(
        True, description="Meters: W > 0 means imported from the grid (the SunSpec rule)."
    )
    grid_code: str | None = Field(
        None,
        description="Grid-code profile (e.g. IEEE1547-B, DE-VDE4105) whose volt-var, volt-watt "
        "and frequency-droop settings are written to models 705, 706 and 711.",
    )
    der_curves: DerCurvesOverride | None = Field(
        None, description="Volt-var, volt-watt and droop settings laid over the grid code's."
    )

    @field_validator("grid_code")
    @classmethod
    def _known_code(cls, v: str | None) -> str | None:
        from gridflock.edge.der import known_grid_codes

        if v is not None and v not in known_grid_codes():
            raise ValueError(f"unknown grid code; known: {', '.join(known_grid_codes())}")
        return v

    @model_validator(mode="after")
    def _der(self) -> SunSpecDevice:
        if self.kind == "meter" and (self.grid_code or self.der_curves):
            raise ValueError("a meter takes no grid_code or der_curves")
        self.der_settings()  # raises what is wrong with the curves
        return self

    def der_settings(self) -> DerSettings | None:
        """The volt-var, volt-watt and droop settings to write (None: none asked for)."""
        return derive_der_settings(self.id, self.kind, self.grid_code, self.der_curves)

    @field_validator("models")
    @classmethod
    def _known_models(cls, v: list[int]) -> list[int]:
        from gridflock.edge.sunspec.models import SUPPORTED_MODELS

        bad = [m for m in v if m not in SUPPORTED_MODELS]
        if bad:
            raise ValueError(
                f"unsupported SunSpec model(s) {bad}; supported: {sorted(SUPPORTED_MODELS)}"
            )
        return v


DriverFactory = Callable[[Sequence[Any]], "LocalDriver"]


@dataclass(frozen=True)
class ProtocolSpec:
    """A local protocol: its device entry model and the factory of its driver."""

    entry: type[DeviceEntry]
    factory: DriverFactory


_PROTOCOLS: dict[str, ProtocolSpec] = {}


def register_protocol(name: str, entry: type[DeviceEntry], factory: DriverFactory) -> None:
    """Make ``protocol: name`` device entries valid; ``factory`` builds their driver."""
    _PROTOCOLS[name] = ProtocolSpec(entry, factory)


def protocols() -> dict[str, ProtocolSpec]:
    """The registered protocols by name."""
    return dict(_PROTOCOLS)


def _sunspec_factory(devices: Sequence[Any]) -> LocalDriver:
    from gridflock.edge.sunspec.driver import SunSpecDriver

    return SunSpecDriver(devices)


register_protocol("sunspec", SunSpecDevice, _sunspec_factory)


class S2Device(DeviceEntry):
    """An S2 resource manager (battery, heat pump, appliance) at the gateway's CEM endpoint.

    The RM connects to the gateway over websocket (docs/s2.md); ``safe_mode`` ``own_control``
    hands control back to the RM on release, ``zero`` keeps it idle.
    """

    protocol: Literal["s2"]
    kind: Literal["battery", "heat_pump", "water_heater", "ev_charger", "load"] = Field(
        description="What the device is."
    )
    resource_id: uuid.UUID = Field(
        description="The resource_id the RM announces in its ResourceManagerDetails."
    )
    listen_host: str = Field("127.0.0.1", description="Address the CEM endpoint binds.")
    listen_port: int = Field(8765, ge=0, le=65535, description="TCP port (0: any free one).")
    path: str = Field("/s2", pattern=r"^/[A-Za-z0-9/_\-.]*$", description="URL path.")
    control_type: Literal["auto", "FRBC", "PPBC"] = Field(
        "auto", description="auto: FRBC when the RM offers it, else PPBC."
    )
    min_horizon_s: float = Field(
        60.0, gt=0, le=86_400, description="Fill level kept in range this long [s]."
    )
    reception_timeout_s: float = Field(
        5.0, gt=0, le=120, description="Wait for the RM's ReceptionStatus [s]."
    )


def _s2_factory(devices: Sequence[Any]) -> LocalDriver:
    from gridflock.edge.s2.config import S2DeviceConfig
    from gridflock.edge.s2.driver import build_s2_driver

    return build_s2_driver(
        [
            S2DeviceConfig(
                device_id=d.id,
                kind=d.kind,
                resource_id=d.resource_id,
                listen_host=d.listen_host,
                listen_port=d.listen_port,
                path=d.path,
                control_type=d.control_type,
                # own_control: the RM runs on its own; zero: the CEM keeps it idle
                safe_mode="rm_control" if d.safe_mode == "own_control" else "idle",
                min_horizon_s=d.min_horizon_s,
                reception_timeout_s=d.reception_timeout_s,
            )
            for d in devices
        ]
    )


register_protocol("s2", S2Device, _s2_factory)


class EdgeConfig(_Closed):
    """A whole edge configuration file."""

    gateway: GatewayConfig
    buffer: BufferConfig = BufferConfig()
    failsafe: FailsafeConfig = FailsafeConfig()
    devices: list[DeviceEntry] = Field(min_length=1)

    def devices_of(self, protocol: str) -> list[Any]:
        """The device entries of one protocol."""
        return [d for d in self.devices if getattr(d, "protocol", None) == protocol]


def _entry_adapter() -> TypeAdapter[Any]:
    """A validator of one device entry: the union of the registered protocols' entries."""
    entries = tuple(p.entry for p in _PROTOCOLS.values())
    if len(entries) == 1:
        return TypeAdapter(entries[0])
    union: Any = Annotated[Union[entries], Field(discriminator="protocol")]  # noqa: UP007
    return TypeAdapter(union)


def _where(loc: Sequence[int | str], raw: dict[str, Any]) -> tuple[str, str]:
    """(entry, field) of a pydantic error location in the raw file."""
    if loc and loc[0] == "devices" and len(loc) > 1 and isinstance(loc[1], int):
        devices = raw.get("devices")
        entry = f"devices[{loc[1]}]"
        if isinstance(devices, list) and loc[1] < len(devices):
            d = devices[loc[1]]
            if isinstance(d, dict) and isinstance(d.get("id"), str):
                entry = f"device {d['id']}"
        rest = [str(x) for x in loc[2:] if not (isinstance(x, str) and x in _PROTOCOLS)]
        return entry, ".".join(rest)
    if loc:
        return str(loc[0]), ".".join(str(x) for x in loc[1:])
    return "", ""


#: Fields whose value is never echoed in a problem (it may hold a secret).
_SECRET_FIELDS = frozenset({"password", "password_file", "broker"})


def _msg(err: Any) -> str:
    msg = str(err["msg"]).removeprefix("Value error, ")
    secret = bool(_SECRET_FIELDS & {str(x) for x in err["loc"]})
    whole = isinstance(err.get("input"), dict)  # a whole entry: its fields say enough
    if (
        err["type"] not in ("missing", "extra_forbidden")
        and "input" in err
        and not secret
        and not whole
    ):
        shown = repr(err["input"])
        msg += f" (got {shown if len(shown) <= 60 else shown[:57] + '...'})"
    if err["type"] == "union_tag_invalid":
        msg = f"unknown protocol; use one of {sorted(_PROTOCOLS)}"
    if err["type"] == "extra_forbidden":
        msg = "unknown key (check its spelling)"
    return msg


def parse_config(raw: Any, source: str = "<config>") -> EdgeConfig:
    """An :class:`EdgeConfig` from parsed YAML; ``ValidationError`` lists every problem."""
    problems: list[Problem] = []
    if not isinstance(raw, dict):
        raise ValidationError(
            [Problem(source, "", "", "the file must be a mapping with gateway and devices")]
        )
    adapter = _entry_adapter()
    devices: list[Any] = []
    raw_devices = raw.get("devices")
    if isinstance(raw_devices, list):
        for i, d in enumerate(raw_devices):
            if isinstance(d, dict) and d.get("protocol") not in _PROTOCOLS:
                entry, _ = _where(("devices", i), raw)
                problems.append(
                    Problem(
                        source,
                        entry,
                        "protocol",
                        f"unknown protocol {d.get('protocol')!r}; use one of {sorted(_PROTOCOLS)}",
                    )
                )
                continue
            try:
                devices.append(adapter.validate_python(d))
            except PydanticValidationError as e:
                for err in e.errors(include_url=False):
                    entry, fld = _where(("devices", i, *err["loc"]), raw)
                    problems.append(Problem(source, entry, fld, _msg(err)))
    top = {k: v for k, v in raw.items() if k != "devices"}
    cfg: EdgeConfig | None = None
    try:
        cfg = EdgeConfig.model_validate({**top, "devices": devices or [None]})
    except PydanticValidationError as e:
        for err in e.errors(include_url=False):
            if err["loc"] and err["loc"][0] == "devices" and isinstance(raw_devices, list):
                continue  # already reported per entry
            if err["loc"] and err["loc"][0] == "devices":
                problems.append(Problem(source, "devices", "", "give a list of devices"))
                continue
            entry, fld = _where(err["loc"], raw)
            problems.append(Problem(source, entry, fld, _msg(err)))
    if isinstance(raw_devices, list) and not raw_devices:
        problems.append(Problem(source, "devices", "", "give at least one device"))
    if isinstance(raw_devices, list):
        ids = [d.get("id") for d in raw_devices if isinstance(d, dict)]
        for dup in sorted({i for i in ids if isinstance(i, str) and ids.count(i) > 1}):
            problems.append(Problem(source, f"device {dup}", "id", "device id used twice"))
    problems.extend(_cross_checks(devices, source))
    if problems or cfg is None:
        raise ValidationError(problems)
    return cfg


def _cross_checks(devices: Sequence[Any], source: str) -> list[Problem]:
    """Problems between valid entries: two entries on one address, meters with a safe mode."""
    out: list[Problem] = []
    addr: dict[tuple[str, int, int], str] = {}
    for d in devices:
        if isinstance(d, SunSpecDevice):
            key = (d.host, d.port, d.unit)
            if key in addr:
                out.append(
                    Problem(
                        source,
                        f"device {d.id}",
                        "unit",
                        f"{d.host}:{d.port} unit {d.unit} is also device {addr[key]}",
                    )
                )
            addr[key] = d.id
            if d.kind == "meter" and d.safe_mode != "own_control":
                out.append(
                    Problem(source, f"device {d.id}", "safe_mode", "a meter takes no setpoints")
                )
    return out


def load_config(path: str | Path) -> EdgeConfig:
    """Read and validate an edge configuration file (YAML)."""
    p = Path(path)
    source = str(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise ValidationError([Problem(source, "", "", "file not found")]) from None
    except OSError as e:
        raise ValidationError([Problem(source, "", "", f"cannot read: {e}")]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f"line {mark.line + 1}" if mark is not None else ""
        raise ValidationError(
            [Problem(source, line, "", f"YAML syntax error: {getattr(e, 'problem', e)}")]
        ) from None
    return parse_config(raw, source)
