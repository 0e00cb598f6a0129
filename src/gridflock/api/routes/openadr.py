"""The utility's side: the OpenADR VEN's status and the utility events it took up."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from pydantic import Field

from gridflock.api._convert import jsonable
from gridflock.api.auth import Viewer
from gridflock.api.deps import RuntimeDep
from gridflock.api.schemas import _Out

__all__ = ["router"]

router = APIRouter(tags=["openadr"])


class VenOut(_Out):
    """The VEN: protocol, VTN, registration and counters since the service started."""

    protocol: str = Field(description="2.0b or 3.")
    vtn_url: str
    ven_name: str
    registered: bool = Field(description="2.0b: registered; 3: the last poll succeeded.")
    reachable: bool = Field(description="The VTN answered the latest requests.")
    ven_id: str | None = None
    last_poll: datetime | None = Field(None, description="Last answer from the VTN (UTC).")
    last_error: str | None = Field(None, description="Why the last try failed, if it did.")
    connect_attempts: int
    events_received: int = Field(description="Events received, each version counted once.")
    opt_ins: int
    opt_outs: int
    reports_sent: int = Field(
        description="2.0b: report values sent (one per report interval); 3: reports posted."
    )
    programs: list[str] = Field(description="3: the programs followed.")


class UtilityEventOut(_Out):
    """A utility event as the service took it up."""

    utility_event_id: str
    protocol: str
    program: str = Field(description="2.0b market context, or 3 programID.")
    modification: str = Field(description="The utility's version of the event.")
    cancelled: bool
    opt: str = Field(description="optIn or optOut.")
    reason: str = Field(description="Why, in words.")
    event_ids: list[str] = Field(description="The Gridflock events (source openadr) serving it.")
    received_at: datetime


class PriceOut(_Out):
    """A price interval from the utility, laid over the autopilot's tariff."""

    start: datetime
    end: datetime
    price_per_kwh: float = Field(description="Currency per kWh, as the utility sent it.")


class OpenADRStatusOut(_Out):
    """The OpenADR side of the service."""

    enabled: bool = Field(description="Whether a VEN is configured (openadr_ven).")
    policy: str = Field(description="opt_in or flexibility (openadr_opt).")
    scope: str = Field(description="The devices utility events use.")
    ven: VenOut | None = None
    events: list[UtilityEventOut] = Field(description="The latest 100, newest first.")
    prices: list[PriceOut]


def _dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


@router.get(
    "/openadr/status",
    summary="The OpenADR VEN now",
    description="Whether a VEN is configured, its registration and last poll, the utility "
    "events received with the answer given and the Gridflock events serving each, and the "
    "utility's prices. Role: viewer.",
    response_model=OpenADRStatusOut,
)
def openadr_status(runtime: RuntimeDep, _: Viewer) -> Any:
    """Report ``runtime.openadr_status``."""
    s = runtime.openadr_status()
    ven = s.get("ven")
    if ven is not None:
        ven = {**ven, "last_poll": _dt(ven.get("last_poll"))}
    events = [{**e, "received_at": _dt(e["received_at"])} for e in s["events"]]
    prices = [{**p, "start": _dt(p["start"]), "end": _dt(p["end"])} for p in s["prices"]]
    return jsonable({**s, "ven": ven, "events": events, "prices": prices})
