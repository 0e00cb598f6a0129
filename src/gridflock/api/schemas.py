"""API shapes: request bodies and responses (pydantic), apart from the table models.

Names carry their units (``p_kw``, ``target_kw``, ``duration_s``); power follows the
generator sign convention (> 0 towards the grid); times are ISO 8601 UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from gridflock.domain.events import (
    DEFAULT_PRIORITY,
    MAX_PRIORITY,
    MIN_PRIORITY,
    EventStatus,
    Scope,
)

__all__ = [
    "ApiKeyOut",
    "AuditEntryOut",
    "AvailableOut",
    "CommandOut",
    "DeviceDetailOut",
    "DeviceOut",
    "EventCreate",
    "EventOut",
    "FieldErrorOut",
    "FleetHistoryRow",
    "FleetImportOut",
    "FleetSummaryOut",
    "FlexibilityRow",
    "GatewayCreate",
    "GatewayCreatedOut",
    "GatewayOut",
    "GridNodeOut",
    "HealthOut",
    "KindSummaryOut",
    "PageOut",
    "ProblemOut",
    "ProtocolSummaryOut",
    "SeriesPointOut",
    "SiteDetailOut",
    "SiteOut",
    "TelemetryOut",
    "TelemetryRowOut",
]

T = TypeVar("T")

_TS = "Time (ISO 8601, UTC)."

#: Largest |target_kw| an event may ask for [kW].
MAX_TARGET_KW = 10_000_000.0
#: Longest event [s]: 7 days.
MAX_EVENT_S = 7 * 86_400.0


class _Out(BaseModel):
    """A response: fields beyond the declared ones are passed through."""

    model_config = ConfigDict(extra="allow")


class _In(BaseModel):
    """A request body: unknown fields are an error, not silently dropped.

    No text in it may hold a NUL character: no id, name or scope needs one, and
    PostgreSQL cannot store one.
    """

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, v: Any) -> Any:
        if _holds_nul(v):
            raise ValueError("must not contain a NUL character (\\u0000)")
        return v


def _holds_nul(value: Any) -> bool:
    """Whether ``value`` (a string, or a list or dict of them) holds a NUL character."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list | tuple):
        return any(_holds_nul(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    return False


# ---------------------------------------------------------------------- errors


class FieldErrorOut(BaseModel):
    """One invalid input."""

    field: str = Field(description="Where: the body field or query parameter (or fleet field).")
    message: str = Field(description="What is wrong and how to fix it.")
    entry: str | None = Field(None, description="Fleet import: the entry, e.g. 'device d-1'.")
    source: str | None = Field(None, description="Fleet import: which file the problem is in.")


class ProblemOut(BaseModel):
    """An error (RFC 9457 problem details, ``application/problem+json``)."""

    type: str = Field(examples=["https://gridflock.dev/problems/validation-error"])
    title: str = Field(examples=["Invalid request"])
    status: int = Field(examples=[422])
    detail: str = Field(
        examples=[
            "1 invalid input(s): target_kw: target_kw must be non-zero: positive asks the "
            "fleet for more export, negative to absorb"
        ]
    )
    instance: str = Field(description="The request path.", examples=["/api/v1/events"])
    errors: list[FieldErrorOut] | None = Field(None, description="Each invalid input.")
    error_id: str | None = Field(
        None, description="500 only: the id under which the service logged the error."
    )


# ---------------------------------------------------------------------- pages


class PageOut(BaseModel, Generic[T]):
    """One page of a list."""

    items: list[T]
    total: int = Field(description="Items matching the filters, over all pages.")
    limit: int = Field(description="Page size asked for.")
    offset: int = Field(description="Items skipped before this page.")


# ---------------------------------------------------------------------- system


class HealthOut(_Out):
    """Service health, with one entry per dependency (database, broker, ...)."""

    status: Literal["ok", "degraded", "down"] = Field(
        description="'ok', 'degraded' (still answering: HTTP 200) or 'down' (HTTP 503)."
    )


# ---------------------------------------------------------------------- fleet


class KindSummaryOut(_Out):
    """The fleet figures of one device kind."""

    kind: str = Field(examples=["battery"])


class ProtocolSummaryOut(_Out):
    """How many devices one protocol reaches, and how many of them are online."""

    protocol: str = Field(examples=["ocpp"])
    devices_total: int
    devices_online: int


class FleetSummaryOut(_Out):
    """The fleet now."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "ts": "2026-06-01T12:00:00Z",
                    "p_kw": 812.4,
                    "flex_up_kw": 350.0,
                    "flex_down_kw": 1200.5,
                    "flex_duration_h": 1.0,
                    "devices_online": 4870,
                    "devices_total": 5000,
                    "by_kind": [{"kind": "battery", "devices": 1200, "p_kw": -40.0}],
                }
            ]
        },
    )

    ts: datetime | None = Field(None, description=_TS)
    p_kw: float = Field(description="Net fleet power [kW], > 0 towards the grid.")
    flex_up_kw: float = Field(
        description="Up flexibility [kW, >= 0]: more export / less import the fleet can "
        "hold for flex_duration_h within every site and grid limit (with what events "
        "hold)."
    )
    flex_down_kw: float = Field(
        description="Down flexibility [kW, >= 0]: more import / less export the fleet can "
        "hold for flex_duration_h within every site and grid limit (with what events hold)."
    )
    flex_duration_h: float | None = Field(None, description="Hold duration of the flex [h].")
    committed_up_kw: float | None = Field(
        None, description="Up flexibility held now by active events [kW, >= 0]."
    )
    committed_down_kw: float | None = Field(
        None, description="Down flexibility held now by active events [kW, >= 0]."
    )
    remaining_up_kw: float | None = Field(
        None,
        description="Up flexibility the devices no event holds can still add, within the "
        "limits left [kW, >= 0]: what a new event can be offered.",
    )
    remaining_down_kw: float | None = Field(
        None,
        description="Down flexibility the devices no event holds can still add, within the "
        "limits left [kW, >= 0]: what a new event can be offered.",
    )
    devices_online: int = Field(description="Devices reporting recently.")
    devices_total: int = Field(description="Devices provisioned.")
    by_kind: list[KindSummaryOut] = Field(default_factory=list, description="Per device kind.")
    by_protocol: list[ProtocolSummaryOut] = Field(
        default_factory=list, description="Devices per protocol (mqtt, edge, ocpp, twin)."
    )


class FleetHistoryRow(_Out):
    """Fleet power at one time; also one column ``<kind>`` per device kind [kW]."""

    ts: datetime = Field(description=_TS)
    p_kw: float | None = Field(None, description="Net fleet power [kW], > 0 towards the grid.")


class FlexibilityRow(_Out):
    """Flexibility of one group (kind, grid node, program or region)."""

    group: str = Field(description="The group's label (kind, node id or tag).")
    devices: int | None = Field(None, description="Devices in the group.")
    online: int | None = Field(None, description="Devices online in the group.")
    flex_up_kw: float | None = Field(
        None,
        description="Up flexibility held for duration_h within every site and grid limit, "
        "the group's share of the scope moving together [kW, >= 0].",
    )
    flex_down_kw: float | None = Field(
        None,
        description="Down flexibility held for duration_h within every site and grid limit, "
        "the group's share of the scope moving together [kW, >= 0].",
    )
    ffr_up_kw: float | None = Field(
        None,
        description="Frequency-response capacity up: kW the group's devices give within "
        "1 s of an under-frequency, held 15 minutes (docs/frequency-response.md) [kW, >= 0].",
    )
    ffr_down_kw: float | None = Field(
        None,
        description="Frequency-response capacity down (over-frequency), as ffr_up_kw [kW, >= 0].",
    )
    committed_up_kw: float | None = Field(
        None, description="Up flexibility held now by active events [kW, >= 0]."
    )
    committed_down_kw: float | None = Field(
        None, description="Down flexibility held now by active events [kW, >= 0]."
    )
    remaining_up_kw: float | None = Field(
        None,
        description="Up flexibility the devices no event holds can still add, within the "
        "limits left [kW, >= 0]: what a new event can be offered.",
    )
    remaining_down_kw: float | None = Field(
        None,
        description="Down flexibility the devices no event holds can still add, within the "
        "limits left [kW, >= 0]: what a new event can be offered.",
    )


class GridNodeOut(BaseModel):
    """A grid node with the power it carries now."""

    id: str = Field(examples=["feeder-001"])
    kind: str = Field(examples=["feeder"])
    parent: str = Field(description="Upstream node id ('' for a root).")
    limit_import_kw: float = Field(description="Import limit [kW] (power drawn from upstream).")
    limit_export_kw: float = Field(description="Export limit [kW] (power fed upstream).")
    load_kw: float = Field(
        description="Power the node carries from its sites [kW]: > 0 flows upstream "
        "(export), < 0 is drawn from upstream (import)."
    )
    utilisation_pct: float | None = Field(
        description="load_kw as % of the limit in its direction (None when the limit is 0)."
    )
    envelope: bool = Field(
        False,
        description="Whether a grid operator's envelope sets a limit now (docs/envelopes.md).",
    )
    peak_utilisation_pct_24h: float | None = Field(
        None,
        description="Highest utilisation over the last 24 h (minute samples): where the "
        "fleet pushed against this node's limit. None before the first sample.",
    )
    peak_at: str | None = Field(None, description="When that peak was seen (ISO 8601, UTC).")
    sites: int = Field(description="Sites connected directly to this node.")


class FleetImportOut(BaseModel):
    """What an import replaced the fleet with."""

    grid_nodes: int
    sites: int
    devices: int
    by_kind: dict[str, int] = Field(description="Device count by kind.")


# ---------------------------------------------------------------------- sites, devices


class SiteOut(BaseModel):
    """A site (one grid connection) with its live net power."""

    id: str = Field(examples=["home-00001"])
    lat: float = Field(description="Latitude [deg].")
    lon: float = Field(description="Longitude [deg].")
    tz: str = Field(description="IANA time zone.", examples=["Europe/Berlin"])
    grid_node: str
    import_limit_kw: float = Field(description="Connection import limit [kW].")
    export_limit_kw: float = Field(description="Connection export limit [kW].")
    program: str
    region: str
    opt_out: bool = Field(description="The customer opted out of dispatch.")
    device_count: int
    devices_online: int
    p_kw: float = Field(description="Net site power now [kW], > 0 towards the grid.")


class DeviceOut(BaseModel):
    """A device with its latest values."""

    id: str = Field(examples=["home-00001-bat"])
    site_id: str
    kind: str = Field(examples=["battery"])
    gateway_id: str
    protocol: str = Field(
        "mqtt",
        description="How the service reaches it: mqtt, edge, ocpp or twin.",
        examples=["mqtt"],
    )
    cost_per_kwh: float = Field(description="Cost of dispatching it [currency/kWh].")
    p_kw: float | None = Field(description="Latest power [kW], > 0 towards the grid.")
    p_baseline_kw: float | None = Field(description="Reported baseline [kW].")
    soc: float | None = Field(description="State of charge [0..1] (batteries).")
    online: bool
    ts: datetime | None = Field(description="Time of the latest reading (ISO 8601, UTC).")


class DeviceDetailOut(DeviceOut):
    """A device with its capability model."""

    attributes: dict[str, Any] = Field(description="Its kind's attributes (units in names).")


class SiteDetailOut(SiteOut):
    """A site with its devices."""

    devices: list[DeviceOut]


class TelemetryRowOut(_Out):
    """One reading (or one resampled interval, mean power)."""

    ts: datetime = Field(description=_TS)
    p_kw: float | None = Field(None, description="Power [kW], > 0 towards the grid.")


class TelemetryOut(BaseModel):
    """Readings of a device or summed over a site's devices."""

    subject: str = Field(description="Device or site id.")
    start: datetime
    end: datetime
    every_s: float | None = Field(description="Resampling step [s]; None for raw readings.")
    items: list[TelemetryRowOut]


# ---------------------------------------------------------------------- gateways, keys


class GatewayCreate(_In):
    """A gateway to provision."""

    # the id grammar of the device protocol (gateways.mqtt.protocol.ID_PATTERN): an id is
    # a topic level, a broker user name and a line of the broker's configuration
    id: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$",
        description="Gateway id; also its MQTT user name and topic prefix: 1-64 of "
        "A-Z a-z 0-9 _ . -, starting with a letter or digit.",
        examples=["gw-home-00001"],
    )
    kind: str = Field(
        min_length=1, description="hems, charger, inverter or oem_cloud.", examples=["hems"]
    )
    site_id: str | None = Field(None, description="The site it serves (None for a cloud).")
    groups: list[
        Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")]
    ] = Field(
        default_factory=list,
        max_length=64,
        description="Broadcast groups it listens to (at most 64, each an id as above).",
        examples=[["g1"]],
    )


class GatewayOut(_Out):
    """A provisioned gateway."""

    id: str
    kind: str
    site_id: str | None
    groups: list[str]
    created_at: datetime | None = None
    last_seen_at: datetime | None = None


class GatewayCreatedOut(GatewayOut):
    """A gateway just provisioned, with its password (shown only this once)."""

    password: str = Field(description="MQTT password: store it now, it is not shown again.")


class ApiKeyOut(_Out):
    """An API key's record (never the key itself)."""

    id: str
    name: str
    role: str = Field(examples=["viewer", "operator", "admin"])
    created_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


class AuditEntryOut(_Out):
    """One audit record: who did what to which subject, when."""

    id: int | None = None
    ts: datetime = Field(description=_TS)
    actor: str = Field(examples=["apikey:ops-desk"])
    action: str = Field(examples=["event.create"])
    subject: str = Field(examples=["ev-20260601-0001"])
    detail: dict[str, Any] | None = None


# ---------------------------------------------------------------------- events


class EventCreate(_In):
    """A request for the fleet to move its power."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"target_kw": 250.0, "duration_s": 3600, "scope": "fleet"},
                {
                    "target_kw": -100.0,
                    "start": "2026-06-01T17:00:00Z",
                    "duration_s": 1800,
                    "scope": "grid_node:feeder-001",
                },
            ]
        },
    )

    target_kw: float = Field(
        description="Change asked relative to baseline [kW]: > 0 for more export / less "
        "import ('up'), < 0 to absorb ('down'). Non-zero. A JSON number: `true` or "
        '`"5"` are refused. At most 10,000,000 kW either way.',
        ge=-MAX_TARGET_KW,
        le=MAX_TARGET_KW,
        allow_inf_nan=False,
        strict=True,
    )
    start: datetime | None = Field(
        None,
        description="Start (ISO 8601 with offset, e.g. 2026-06-01T17:00:00Z), from "
        "2000-01-01 to one year ahead; now if absent.",
    )
    duration_s: float = Field(
        3600.0,
        ge=1.0,
        le=MAX_EVENT_S,
        allow_inf_nan=False,
        strict=True,
        description="Length [s], a JSON number: from 1 s to 7 days (604800 s).",
    )
    scope: str = Field(
        "fleet",
        max_length=200,
        description="'fleet', 'grid_node:ID', 'program:TAG' or 'region:TAG'.",
        examples=["fleet", "grid_node:feeder-001", "program:summer"],
    )
    priority: int = Field(
        DEFAULT_PRIORITY,
        ge=MIN_PRIORITY,
        le=MAX_PRIORITY,
        strict=True,
        description="Which event is served first when events compete for devices: "
        f"{MIN_PRIORITY}..{MAX_PRIORITY}, higher first (it may take devices from a lower "
        "one); equal priorities by start time, the earlier keeping its devices.",
    )
    allow_partial: bool = Field(
        False,
        strict=True,
        description="Accept a target above what the scope can still deliver over the "
        "window: the event then gets what there is. Without it such a request is a 422 "
        "stating `available_kw`.",
    )

    @field_validator("target_kw")
    @classmethod
    def _non_zero(cls, v: float) -> float:
        if v == 0:
            raise ValueError(
                "target_kw must be non-zero: positive asks the fleet for more export, "
                "negative to absorb"
            )
        return v

    @field_validator("duration_s", mode="before")
    @classmethod
    def _positive(cls, v: Any) -> Any:
        if isinstance(v, int | float) and not isinstance(v, bool) and v < 1:
            raise ValueError(f"duration_s must be at least 1 second (the event's length), got {v}")
        return v

    @field_validator("start")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError(
                "start needs a UTC offset, e.g. 2026-06-01T17:00:00Z or 2026-06-01T19:00:00+02:00"
            )
        return v

    @field_validator("scope")
    @classmethod
    def _scope(cls, v: str) -> str:
        return str(Scope.parse(v))


class EventOut(BaseModel):
    """An event with its live performance."""

    id: str
    status: EventStatus
    target_kw: float = Field(description="Asked change [kW], > 0 up, < 0 down.")
    delivered_kw: float | None = Field(
        description="Latest measured response [kW, with the event's sign]."
    )
    delivered_pct: float | None = Field(
        description="Mean delivery over the window so far [% of target]."
    )
    start: datetime
    end: datetime
    duration_s: float
    scope: str
    priority: int = Field(description="0..100; higher is served first.")
    source: str
    created_by: str
    tracking_rmse_pct: float | None = Field(description="RMS tracking error [% of target].")
    time_to_90pct_s: float | None = Field(description="Seconds from start to 90 % delivery.")
    non_responders: int = Field(description="Devices dropped for not following commands.")
    shortfall_kw: float = Field(description="Target the fleet could not allocate [kW].")
    commands_sent: int


class AvailableOut(BaseModel):
    """What a new event could still get over a scope and window."""

    available_kw: float = Field(
        description="kW the scope can hold over the window, within every site and grid-node "
        "limit, net of the events it would overlap [kW, signed like the direction]."
    )
    direction: Literal["up", "down"]
    scope: str
    start: datetime
    end: datetime
    duration_s: float


class SeriesPointOut(BaseModel):
    """Target against delivered at one time."""

    ts: datetime = Field(description=_TS)
    target_kw: float | None = Field(description="Target [kW].")
    delivered_kw: float | None = Field(description="Measured response [kW].")


class CommandOut(_Out):
    """A setpoint command sent for an event."""

    command_id: str
    device_id: str
    seq: int
    p_setpoint_kw: float | None = Field(description="Setpoint [kW]; null releases the device.")
    issued_at: datetime | None = None
    valid_until: datetime | None = None
    status: str | None = None
