# ruff: noqa: N815  (field names are the specification's own, in camelCase)
"""OpenADR 3 objects as pydantic models, after the specification's OpenAPI schema (3.0.1).

Only what a VEN reads or writes: program, event, report, subscription and their parts
(intervalPeriod, interval, valuesMap, payload descriptors). Unknown fields are kept
(``extra="allow"``), as VTNs add their own; the fields the schema requires are required.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Event",
    "EventPayloadDescriptor",
    "Interval",
    "IntervalPeriod",
    "Program",
    "Report",
    "ReportPayloadDescriptor",
    "ReportResource",
    "Subscription",
    "ValuesMap",
    "format_duration",
    "parse_duration",
]

_OBJECT_ID = r"^[a-zA-Z0-9_-]*$"
_DURATION = re.compile(
    r"^(-?)P(?=\d|T\d)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)([DW]))?"
    r"(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
)


def parse_duration(text: str) -> timedelta:
    """An ISO 8601 duration (the schema's pattern) as a timedelta.

    Years and months have no fixed length, so they are refused with a ValueError rather
    than guessed.
    """
    m = _DURATION.match(text or "")
    if m is None:
        raise ValueError(f"{text!r} is not an ISO 8601 duration such as PT1H or P1DT30M")
    sign, years, months, n, unit, hours, minutes, seconds = m.groups()
    if years or months:
        raise ValueError(f"duration {text!r} in years or months has no fixed length")
    days = float(n or 0) * (7 if unit == "W" else 1)
    td = timedelta(
        days=days, hours=float(hours or 0), minutes=float(minutes or 0), seconds=float(seconds or 0)
    )
    return -td if sign else td


def format_duration(seconds: float) -> str:
    """Seconds as an ISO 8601 duration (``PT900S``, ``PT0.5S``; never an exponent)."""
    text = f"{seconds:.6f}".rstrip("0").rstrip(".")
    return f"PT{text}S"


class _Object(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class IntervalPeriod(_Object):
    """Start, duration (PT0S: instantaneous or open-ended) and start randomisation."""

    start: datetime
    duration: str = "PT0S"
    randomizeStart: str | None = None


class ValuesMap(_Object):
    """A type and its values (a price, a level, a setpoint...)."""

    type: str = Field(min_length=1, max_length=128)
    values: list[Any]


class Interval(_Object):
    """One interval: an id (not a sequence number), its period and payloads."""

    id: int
    intervalPeriod: IntervalPeriod | None = None
    payloads: list[ValuesMap]


class EventPayloadDescriptor(_Object):
    """Units and currency of an event payload type."""

    objectType: Literal["EVENT_PAYLOAD_DESCRIPTOR"] | None = "EVENT_PAYLOAD_DESCRIPTOR"
    payloadType: str
    units: str | None = None
    currency: str | None = None


class ReportPayloadDescriptor(_Object):
    """Units and reading type of a report payload type."""

    objectType: Literal["REPORT_PAYLOAD_DESCRIPTOR"] | None = "REPORT_PAYLOAD_DESCRIPTOR"
    payloadType: str
    readingType: str | None = None
    units: str | None = None
    accuracy: float | None = None
    confidence: int | None = Field(None, ge=0, le=100)


class Program(_Object):
    """A utility's program; events belong to one."""

    id: str | None = Field(None, pattern=_OBJECT_ID, min_length=1, max_length=128)
    createdDateTime: datetime | None = None
    modificationDateTime: datetime | None = None
    objectType: Literal["PROGRAM"] | None = None
    programName: str = Field(min_length=1, max_length=128)
    programLongName: str | None = None
    intervalPeriod: IntervalPeriod | None = None
    payloadDescriptors: list[dict[str, Any]] | None = None
    targets: list[ValuesMap] | None = None


class Event(_Object):
    """A demand-response request: intervals of payloads, defaults in ``intervalPeriod``."""

    id: str | None = Field(None, pattern=_OBJECT_ID, min_length=1, max_length=128)
    createdDateTime: datetime | None = None
    modificationDateTime: datetime | None = None
    objectType: Literal["EVENT"] | None = None
    programID: str = Field(pattern=_OBJECT_ID, min_length=1, max_length=128)
    eventName: str | None = None
    priority: int | None = Field(None, ge=0)
    targets: list[ValuesMap] | None = None
    reportDescriptors: list[dict[str, Any]] | None = None
    payloadDescriptors: list[EventPayloadDescriptor] | None = None
    intervalPeriod: IntervalPeriod | None = None
    intervals: list[Interval]


class ReportResource(_Object):
    """One resource's report data (``AGGREGATED_REPORT``: more than one resource's)."""

    resourceName: str = Field(min_length=1, max_length=128)
    intervalPeriod: IntervalPeriod | None = None
    intervals: list[Interval]


class Report(_Object):
    """A VEN's report on an event."""

    id: str | None = Field(None, pattern=_OBJECT_ID, min_length=1, max_length=128)
    createdDateTime: datetime | None = None
    modificationDateTime: datetime | None = None
    objectType: Literal["REPORT"] | None = None
    programID: str = Field(pattern=_OBJECT_ID, min_length=1, max_length=128)
    eventID: str = Field(pattern=_OBJECT_ID, min_length=1, max_length=128)
    clientName: str = Field(min_length=1, max_length=128)
    reportName: str | None = None
    payloadDescriptors: list[ReportPayloadDescriptor] | None = None
    resources: list[ReportResource]


class Subscription(_Object):
    """A client's webhook for operations on objects of a program."""

    id: str | None = Field(None, pattern=_OBJECT_ID, min_length=1, max_length=128)
    objectType: Literal["SUBSCRIPTION"] | None = None
    clientName: str = Field(min_length=1, max_length=128)
    programID: str = Field(pattern=_OBJECT_ID, min_length=1, max_length=128)
    objectOperations: list[dict[str, Any]]
    targets: list[ValuesMap] | None = None
