"""Grid-code settings pushed to the gateways: push them again, and what each gateway answered."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import Field

from gridflock.api._convert import jsonable
from gridflock.api.auth import Operator, Viewer
from gridflock.api.deps import RuntimeDep
from gridflock.api.schemas import _In, _Out

__all__ = ["router"]

router = APIRouter(tags=["gridcode"])


class PushIn(_In):
    """What to push: the sites' profiles, optionally with a frequency product's droop."""

    product: str | None = Field(
        None,
        description="A fast frequency product (GB-DC, AU-VFFCAS...): its droop and each "
        "device's contracted kW (its frequency-response capacity) go with the profiles.",
    )
    deadband_hz: float | None = Field(
        None, ge=0, le=2, description="Replaces the profiles' frequency-watt deadband [Hz]."
    )
    droop: float | None = Field(
        None, gt=0, le=0.2, description="Replaces the profiles' frequency-watt droop [1]."
    )


class PushOut(_Out):
    """What was pushed."""

    devices: int = Field(description="Devices behind a gateway with settings.")
    pushed: int = Field(description="Settings items made (each with a new seq).")
    sent: int = Field(description="Items handed to the broker now; the rest are re-sent.")
    gateways: int
    product: str | None
    deadband_hz: float | None
    droop: float | None


class SettingsRecordOut(_Out):
    """One device's latest settings and its gateway's answer."""

    device_id: str
    gateway_id: str
    settings_id: str
    seq: int
    profile: str
    product: str | None
    status: str = Field(description="pending, accepted, rejected or unsupported.")
    reason: str | None
    adopted: dict[str, str] = Field(
        description="Per function: verified, absent, refused, failed, not_configured, held."
    )
    detail: str | None
    sent_at: float | None = Field(description="Last sent [UTC epoch s].")
    answered_at: float | None = Field(description="Answer received [UTC epoch s].")
    attempts: int
    freq_watt: dict[str, Any] | None = Field(description="The droop pushed (deadbands, droops).")
    ffr: dict[str, Any] | None = Field(description="The product's droop and contracted kW.")


class SettingsStatusOut(_Out):
    """The settings pushed and the answers, by device."""

    product: str | None
    deadband_hz: float | None
    droop: float | None
    devices: int
    gateways: int
    by_status: dict[str, int]
    reasons: dict[str, int]
    settings: list[SettingsRecordOut]


@router.post(
    "/gridcode/push",
    summary="Push grid-code settings to the gateways",
    description="Every device behind a gateway gets its site profile's volt-var, volt-watt "
    "and frequency-watt settings again (protocol v1 `settings`, new seq), optionally with a "
    "frequency product's droop and its contracted kW, or another deadband and droop; "
    "re-sent until each gateway answers. Role: operator.",
    response_model=PushOut,
)
async def push(body: PushIn, runtime: RuntimeDep, principal: Operator) -> Any:
    """Run ``runtime.push_grid_settings``."""
    return jsonable(
        await runtime.push_grid_settings(body.product, body.deadband_hz, body.droop, principal)
    )


@router.get(
    "/gridcode/settings",
    summary="Grid-code settings and the gateways' answers",
    description="Each device's latest settings (profile, product, droop) and what its "
    "gateway answered: accepted with what each function became, rejected with the reason, "
    "unsupported, or still pending. Role: viewer.",
    response_model=SettingsStatusOut,
)
def settings_status(runtime: RuntimeDep, _: Viewer) -> Any:
    """Report ``runtime.grid_settings``."""
    return jsonable(runtime.grid_settings())
