"""Simulated OCPP charge points: the ``ocpp`` library's client side with the twin's EV physics.

Each :class:`SimulatedChargePoint` connects to a CSMS over websockets (OCPP 1.6J or
2.0.1, HTTP Basic auth, TLS when the URL is ``wss://``), boots, plugs a car in, starts a
transaction and reports meter values (``Power.Active.Import`` in W and ``SoC``) every
``interval_s``. It keeps the charging profiles it is sent (SetChargingProfile,
ClearChargingProfile, GetCompositeSchedule) and charges at what the profile stack allows
now, quantised as a real charger does (:func:`gridflock.sim.physics.ev_charge_kw`:
below half the 6 A minimum it pauses). When a profile changes its power it reports a
meter value at once (a "triggered" sample), so the CSMS sees the change without waiting
for the next interval.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import math
import ssl
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import numpy as np
from ocpp.routing import on as _untyped_on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from gridflock.gateways.ocpp import (
    NOMINAL_VOLTAGE_V,
    Profile,
    Unit,
    active_limit,
    composite_periods,
    iso,
    kw_to_limit,
    limit_to_kw,
    profile_from_wire,
)
from gridflock.sim.physics import ev_charge_kw

__all__ = ["ChargerSpec", "SimulatedChargePoint", "run_charge_points"]

log = logging.getLogger("gridflock.sim.ocpp")
#: The ``ocpp`` library logs every frame at INFO; the charge points' own logger, quiet.
wire_log = logging.getLogger("gridflock.sim.ocpp.messages")
if wire_log.level == logging.NOTSET:
    wire_log.setLevel(logging.WARNING)
F = TypeVar("F", bound=Callable[..., Any])


def on(action: str) -> Callable[[F], F]:
    """The ``ocpp`` library's route decorator, typed; no schema check on the charger side.

    The CSMS checks every message it sends and receives against the OCPP schemas, so the
    simulated chargers skip the second check: it would only cost them CPU at scale.
    """
    return cast("Callable[[F], F]", _untyped_on(action, skip_schema_validation=True))


@dataclass
class ChargerSpec:
    """One simulated charge point with one connector and a car plugged in."""

    cp_id: str
    password: str
    version: str = "ocpp1.6"
    """``ocpp1.6`` or ``ocpp2.0.1``."""
    connector: int = 1
    p_max_kw: float = 11.0
    p_min_kw: float = 4.1
    phases: int = 3
    voltage_v: float = NOMINAL_VOLTAGE_V
    battery_kwh: float = 60.0
    soc: float = 0.3
    eta: float = 0.92
    id_tag: str = "TAG-0001"
    target_soc: float = 0.9
    """State of charge the driver wants by departure."""
    departure_in_s: float = 8 * 3600.0
    """When the car leaves, after it plugs in [s]."""


@dataclass
class _Ev:
    """The car and charger's electrical state."""

    spec: ChargerSpec
    soc: float
    p_kw: float = 0.0
    """Charging power now [kW, magnitude]."""
    last_t: float = 0.0
    profiles: dict[int, Profile] = field(default_factory=dict)
    tx_id: str | None = None

    def step(self, t: float) -> None:
        """Charge the car from ``last_t`` to ``t`` at the present power."""
        dt = max(t - self.last_t, 0.0)
        self.last_t = t
        s = self.spec
        self.soc = min(1.0, self.soc + self.p_kw * s.eta * dt / 3600.0 / s.battery_kwh)

    def target_kw(self, t: float) -> float:
        """What the profile stack and the car allow now [kW]."""
        s = self.spec
        car_kw = s.p_max_kw if self.soc < 0.999 else 0.0
        got = active_limit(self.profiles.values(), t, self.tx_id)
        asked = car_kw if got is None else limit_to_kw(got[0], got[1], s.phases, s.voltage_v)
        out = ev_charge_kw(np.array([asked]), np.array([car_kw]), np.array([s.p_min_kw]))
        return float(out[0])


def _accept_profile(ev: _Ev, profile: Profile) -> str:
    """Keep ``profile`` (replacing one of the same id, or of the same purpose and level)."""
    if profile.purpose == "TxProfile" and ev.tx_id is None:
        return "Rejected"  # a TxProfile needs a running transaction
    if profile.transaction_id is not None and profile.transaction_id != ev.tx_id:
        return "Rejected"
    for pid, p in list(ev.profiles.items()):
        if p.purpose == profile.purpose and p.stack_level == profile.stack_level:
            del ev.profiles[pid]
    ev.profiles[profile.id] = profile
    return "Accepted"


def _composite(ev: _Ev, duration: int, unit: Unit | None, t: float) -> dict[str, Any]:
    s = ev.spec
    u: Unit = unit or "A"
    periods = composite_periods(
        list(ev.profiles.values()),
        t,
        duration,
        ev.tx_id,
        u,
        s.phases,
        s.voltage_v,
        kw_to_limit(s.p_max_kw, u, s.phases, s.voltage_v),
    )
    return {
        "duration": duration,
        "charging_rate_unit": u,
        "charging_schedule_period": [
            {"start_period": p.start_s, "limit": p.limit} for p in periods
        ],
    }


class _Client16(ChargePoint16):  # type: ignore[misc]
    """The charge point side of OCPP 1.6J, answering the CSMS's smart-charging requests."""

    def __init__(self, owner: SimulatedChargePoint, connection: Any) -> None:
        super().__init__(owner.spec.cp_id, connection, response_timeout=30, logger=wire_log)
        self.owner = owner

    async def call(self, payload: Any, suppress: bool = True, unique_id: Any = None) -> Any:
        """Send a request without the charger-side schema check (the CSMS checks it)."""
        return await super().call(payload, suppress, unique_id, skip_schema_validation=True)

    @on(Action16.set_charging_profile)
    def on_set_profile(
        self, connector_id: int, cs_charging_profiles: dict[str, Any]
    ) -> result16.SetChargingProfile:
        """Keep the profile; charge at what it allows from now."""
        return result16.SetChargingProfile(
            status=self.owner.set_profile(connector_id, cs_charging_profiles, "ocpp1.6")
        )

    @on(Action16.clear_charging_profile)
    def on_clear_profile(self, id: int | None = None, **kw: Any) -> result16.ClearChargingProfile:
        """Drop the profile(s) asked for."""
        return result16.ClearChargingProfile(status=self.owner.clear_profile(id))

    @on(Action16.get_composite_schedule)
    def on_composite(
        self, connector_id: int, duration: int, charging_rate_unit: Unit | None = None
    ) -> result16.GetCompositeSchedule:
        """The limit the profile stack sets over the next ``duration`` seconds."""
        t = self.owner.clock()
        return result16.GetCompositeSchedule(
            status="Accepted",
            connector_id=connector_id,
            schedule_start=iso(t),
            charging_schedule=_composite(self.owner.ev, duration, charging_rate_unit, t),
        )


class _Client201(ChargePoint201):  # type: ignore[misc]
    """The charging station side of OCPP 2.0.1."""

    def __init__(self, owner: SimulatedChargePoint, connection: Any) -> None:
        super().__init__(owner.spec.cp_id, connection, response_timeout=30, logger=wire_log)
        self.owner = owner

    async def call(self, payload: Any, suppress: bool = True, unique_id: Any = None) -> Any:
        """Send a request without the charger-side schema check (the CSMS checks it)."""
        return await super().call(payload, suppress, unique_id, skip_schema_validation=True)

    @on(Action201.set_charging_profile)
    def on_set_profile(
        self, evse_id: int, charging_profile: dict[str, Any], **_: Any
    ) -> result201.SetChargingProfile:
        """Keep the profile; charge at what it allows from now."""
        return result201.SetChargingProfile(
            status=self.owner.set_profile(evse_id, charging_profile, "ocpp2.0.1")
        )

    @on(Action201.clear_charging_profile)
    def on_clear_profile(
        self, charging_profile_id: int | None = None, **_: Any
    ) -> result201.ClearChargingProfile:
        """Drop the profile(s) asked for."""
        return result201.ClearChargingProfile(status=self.owner.clear_profile(charging_profile_id))

    @on(Action201.get_composite_schedule)
    def on_composite(
        self, duration: int, evse_id: int, charging_rate_unit: Unit | None = None, **_: Any
    ) -> result201.GetCompositeSchedule:
        """The limit the profile stack sets over the next ``duration`` seconds."""
        t = self.owner.clock()
        sched = _composite(self.owner.ev, duration, charging_rate_unit, t)
        return result201.GetCompositeSchedule(
            status="Accepted", schedule={"evse_id": evse_id, "schedule_start": iso(t), **sched}
        )


class SimulatedChargePoint:
    """One simulated charge point against a CSMS (see the module docstring)."""

    def __init__(
        self,
        spec: ChargerSpec,
        clock: Callable[[], float] = time.time,
        on_power: Callable[[str, float, float], None] | None = None,
    ) -> None:
        self.spec = spec
        self.clock = clock
        self.ev = _Ev(spec, spec.soc, last_t=clock())
        self.on_power = on_power
        """Called as ``(cp_id, t, p_kw)`` whenever the charging power changes."""
        self.client: _Client16 | _Client201 | None = None
        self.connected = asyncio.Event()
        self.messages = 0
        self._seq = 0
        self._report_now = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        """The task that keeps it connected (:func:`run_charge_points`)."""

    # ------------------------------------------------------------------ profile handling
    def set_profile(self, connector: int, wire: dict[str, Any], version: str) -> str:
        """Take a SetChargingProfile; Accepted or Rejected."""
        t = self.clock()
        if connector != self.spec.connector:
            return "Rejected"
        try:
            profile = profile_from_wire(wire, version, t)
        except (KeyError, TypeError, ValueError):
            return "Rejected"
        status = _accept_profile(self.ev, profile)
        self._repower(t)
        return status

    def clear_profile(self, pid: int | None) -> str:
        """Take a ClearChargingProfile by id (all profiles when no id)."""
        ev = self.ev
        if pid is None:
            found = bool(ev.profiles)
            ev.profiles.clear()
        else:
            found = ev.profiles.pop(pid, None) is not None
        self._repower(self.clock())
        return "Accepted" if found else "Unknown"

    def _repower(self, t: float) -> None:
        """Settle energy so far, take the power now allowed; report at once if it changed."""
        ev = self.ev
        ev.step(t)
        new = ev.target_kw(t)
        if abs(new - ev.p_kw) > 1e-6:
            ev.p_kw = new
            if self.on_power is not None:
                self.on_power(self.spec.cp_id, t, -new)
            self._report_now.set()

    # ------------------------------------------------------------------ the connection
    def _auth_header(self) -> str:
        token = base64.b64encode(f"{self.spec.cp_id}:{self.spec.password}".encode()).decode()
        return f"Basic {token}"

    async def run(
        self, url: str, *, ssl_context: ssl.SSLContext | None = None, interval_s: float = 10.0
    ) -> None:
        """Connect to ``url`` (the CSMS base URL) and charge until cancelled or refused."""
        target = url.rstrip("/") + "/" + self.spec.cp_id
        async with connect(
            target,
            subprotocols=[self.spec.version],  # type: ignore[list-item]
            additional_headers={"Authorization": self._auth_header()},
            ssl=ssl_context if target.startswith("wss://") else None,
            open_timeout=30,
            ping_interval=None,
        ) as ws:
            await self._session(ws, interval_s)

    async def _session(self, ws: ClientConnection, interval_s: float) -> None:
        client: _Client16 | _Client201 = (
            _Client16(self, ws) if self.spec.version == "ocpp1.6" else _Client201(self, ws)
        )
        self.client = client
        reader = asyncio.create_task(client.start())
        try:
            await self._boot_and_plug(client)
            self.connected.set()
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._report_now.wait(), interval_s)
                self._report_now.clear()
                if reader.done():
                    break
                self.ev.step(self.clock())
                self._repower(self.clock())
                self._report_now.clear()
                await self._report(client)
        except ConnectionClosed:
            pass
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await reader

    async def _boot_and_plug(self, client: _Client16 | _Client201) -> None:
        s, t = self.spec, self.clock()
        if isinstance(client, _Client16):
            await client.call(
                call16.BootNotification(
                    charge_point_model="SimCharger", charge_point_vendor="Gridflock"
                )
            )
            await client.call(
                call16.StatusNotification(
                    connector_id=s.connector, error_code="NoError", status="Preparing"
                )
            )
            auth = await client.call(call16.Authorize(id_tag=s.id_tag))
            if auth.id_tag_info["status"] != "Accepted":
                return
            res = await client.call(
                call16.StartTransaction(
                    connector_id=s.connector, id_tag=s.id_tag, meter_start=0, timestamp=iso(t)
                )
            )
            if res.id_tag_info["status"] == "Accepted":
                self.ev.tx_id = str(res.transaction_id)
                await client.call(
                    call16.StatusNotification(
                        connector_id=s.connector, error_code="NoError", status="Charging"
                    )
                )
        else:
            await client.call(
                call201.BootNotification(
                    charging_station={"model": "SimCharger", "vendor_name": "Gridflock"},
                    reason="PowerUp",
                )
            )
            await client.call(
                call201.StatusNotification(
                    timestamp=iso(t),
                    connector_status="Occupied",
                    evse_id=s.connector,
                    connector_id=1,
                )
            )
            token = {"id_token": s.id_tag, "type": "ISO14443"}
            auth = await client.call(call201.Authorize(id_token=token))
            if auth.id_token_info["status"] != "Accepted":
                return
            tx = uuid.uuid4().hex[:16]
            await client.call(
                call201.TransactionEvent(
                    event_type="Started",
                    timestamp=iso(t),
                    trigger_reason="Authorized",
                    seq_no=self._next_seq(),
                    transaction_info={"transaction_id": tx, "charging_state": "Charging"},
                    evse={"id": s.connector, "connector_id": 1},
                    id_token=token,
                )
            )
            self.ev.tx_id = tx
            # what an ISO 15118 car tells the station: energy it wants, when it leaves
            need_wh = max(s.target_soc - self.ev.soc, 0.0) * s.battery_kwh * 1000.0
            await client.call(
                call201.NotifyEVChargingNeeds(
                    evse_id=s.connector,
                    charging_needs={
                        "requested_energy_transfer": "AC_three_phase"
                        if s.phases == 3
                        else "AC_single_phase",
                        "departure_time": iso(t + s.departure_in_s),
                        "ac_charging_parameters": {
                            "energy_amount": round(need_wh),
                            "ev_min_current": 6,
                            "ev_max_current": 32,
                            "ev_max_voltage": 400,
                        },
                    },
                )
            )
        self._repower(self.clock())

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq - 1

    async def _report(self, client: _Client16 | _Client201) -> None:
        """One meter value: power [W] and state of charge [%]."""
        s, ev, t = self.spec, self.ev, self.clock()
        if ev.tx_id is None:
            return
        power_w, soc_pct = ev.p_kw * 1000.0, ev.soc * 100.0
        self.messages += 1
        if isinstance(client, _Client16):
            sampled: list[dict[str, Any]] = [
                {"value": _fmt(power_w), "measurand": "Power.Active.Import", "unit": "W"},
                {"value": _fmt(soc_pct), "measurand": "SoC", "unit": "Percent"},
            ]
            await client.call(
                call16.MeterValues(
                    connector_id=s.connector,
                    meter_value=[{"timestamp": iso(t), "sampled_value": sampled}],
                    transaction_id=int(ev.tx_id),
                )
            )
        else:
            sampled = [
                {
                    "value": round(power_w, 1),
                    "measurand": "Power.Active.Import",
                    "unit_of_measure": {"unit": "W"},
                },
                {
                    "value": round(soc_pct, 1),
                    "measurand": "SoC",
                    "unit_of_measure": {"unit": "Percent"},
                },
            ]
            await client.call(
                call201.TransactionEvent(
                    event_type="Updated",
                    timestamp=iso(t),
                    trigger_reason="MeterValuePeriodic",
                    seq_no=self._next_seq(),
                    transaction_info={"transaction_id": ev.tx_id},
                    meter_value=[{"timestamp": iso(t), "sampled_value": sampled}],
                )
            )


def _fmt(x: float) -> str:
    return f"{x:.1f}" if math.isfinite(x) else "0"


async def run_charge_points(
    specs: Sequence[ChargerSpec],
    url: str,
    *,
    ssl_context: ssl.SSLContext | None = None,
    interval_s: float = 10.0,
    clock: Callable[[], float] = time.time,
    on_power: Callable[[str, float, float], None] | None = None,
    stagger_s: float = 0.0,
) -> list[SimulatedChargePoint]:
    """Run ``specs`` as charge points against ``url`` until cancelled; each reconnects on loss.

    Returns the charge points at once; their tasks run in the background of the caller's
    loop (cancel the returned points' ``task`` attribute, or the loop, to stop).
    """
    points = [SimulatedChargePoint(s, clock, on_power) for s in specs]

    async def keep(i: int, p: SimulatedChargePoint) -> None:
        if stagger_s:
            await asyncio.sleep(stagger_s * i / max(len(points), 1))
        while True:
            try:
                await p.run(url, ssl_context=ssl_context, interval_s=interval_s)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("charge point %s: %s; reconnecting in 5 s", p.spec.cp_id, e)
            p.connected.clear()
            await asyncio.sleep(5.0)

    for i, p in enumerate(points):
        p.task = asyncio.create_task(keep(i, p))
    return points
