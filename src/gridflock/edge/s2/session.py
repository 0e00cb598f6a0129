"""One resource manager's websocket session, seen from the CEM.

Every message is parsed and validated with s2-python's models and answered with a
``ReceptionStatus``: ``OK``, or an error saying what was wrong (not JSON, not an object,
an unknown ``message_type``, a message that does not validate, a message out of turn or
for a control type not selected). Reception statuses the RM sends back complete the CEM's
own requests. A hostile RM only ever harms its own session.

The handshake (S2 over WebSocket): the RM sends ``Handshake``; the CEM checks the role and
that the RM supports :data:`S2_VERSION`, answers with its own ``Handshake`` and a
``HandshakeResponse``; the RM sends ``ResourceManagerDetails``, whose ``resource_id`` must
be one this gateway is configured for; the CEM then selects a control type.

s2-python's ``S2AsyncConnection`` is written for the RM side (one handler per message type
that answers OK afterwards, a non-object JSON message ends the connection), so the CEM keeps
its own small loop on the library's parser and message models.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from s2python.common import (
    ControlType,
    EnergyManagementRole,
    Handshake,
    HandshakeResponse,
    InstructionStatus,
    InstructionStatusUpdate,
    PowerForecast,
    PowerMeasurement,
    ReceptionStatus,
    ReceptionStatusValues,
    ResourceManagerDetails,
    RevokableObjects,
    RevokeObject,
    SelectControlType,
    SessionRequest,
)
from s2python.frbc import (
    FRBCActuatorStatus,
    FRBCFillLevelTargetProfile,
    FRBCInstruction,
    FRBCLeakageBehaviour,
    FRBCStorageStatus,
    FRBCSystemDescription,
    FRBCTimerStatus,
    FRBCUsageForecast,
)
from s2python.message import S2Message, S2MessageWithID
from s2python.ppbc import (
    PPBCEndInterruptionInstruction,
    PPBCPowerProfileDefinition,
    PPBCPowerProfileStatus,
    PPBCScheduleInstruction,
    PPBCStartInterruptionInstruction,
)
from s2python.s2_parser import TYPE_TO_MESSAGE_CLASS, S2Parser
from s2python.s2_validation_error import S2ValidationError
from s2python.version import S2_VERSION
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from gridflock.edge.s2.config import S2DeviceConfig
from gridflock.edge.s2.frbc import ELECTRIC, FrbcState

__all__ = ["S2_VERSION", "CemSession", "SessionClosed"]

log = logging.getLogger(__name__)

NIL = uuid.UUID(int=0)
"""Subject of a ReceptionStatus for a message whose own id could not be read."""

_CEM_ONLY = (
    HandshakeResponse,
    SelectControlType,
    FRBCInstruction,
    PPBCScheduleInstruction,
    PPBCStartInterruptionInstruction,
    PPBCEndInterruptionInstruction,
)
_FRBC = (
    FRBCSystemDescription,
    FRBCStorageStatus,
    FRBCActuatorStatus,
    FRBCLeakageBehaviour,
    FRBCUsageForecast,
    FRBCFillLevelTargetProfile,
    FRBCTimerStatus,
)
_PPBC = (PPBCPowerProfileDefinition, PPBCPowerProfileStatus)
_FUTURE_SLACK_S = 300.0
"""A measurement may be stamped at most this far ahead of the gateway's clock [s]."""

Verdict = tuple[ReceptionStatusValues, str | None]
_OK: Verdict = (ReceptionStatusValues.OK, None)


class SessionClosed(ConnectionError):  # noqa: N818 (reads as the event it is)
    """The RM's websocket closed while the CEM was talking to it."""


def _uuid_or_nil(value: object) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return NIL


def _non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(_non_finite(v) for v in value)
    return False


def _validation_label(mtype: str, err: S2ValidationError) -> str:
    cause = err.__cause__
    if isinstance(cause, ValidationError):
        parts = [
            f"{'.'.join(str(p) for p in e['loc']) or '(message)'}: {e['msg']}"
            for e in cause.errors()[:4]
        ]
        return f"{mtype} does not validate: " + "; ".join(parts)
    return f"{mtype} does not validate: {err.msg}"


class CemSession:
    """The CEM's side of one RM connection: handshake, state, and requests to the RM."""

    def __init__(
        self,
        ws: ServerConnection,
        lookup: Callable[[str], S2DeviceConfig | None],
        on_attach: Callable[[CemSession], None],
        on_update: Callable[[CemSession, S2Message], None],
        on_detach: Callable[[CemSession], None],
        reception_timeout_s: float = 5.0,
    ) -> None:
        self._ws = ws
        self._lookup = lookup
        self._on_attach = on_attach
        self._on_update = on_update
        self._on_detach = on_detach
        self.reception_timeout_s = reception_timeout_s
        self._pending: dict[uuid.UUID, asyncio.Future[ReceptionStatus]] = {}
        self._work: asyncio.Queue[Callable[[], Awaitable[None]]] = asyncio.Queue()
        self._send_lock = asyncio.Lock()
        self.handshaken = False
        self._close_after: tuple[int, str] | None = None
        """Close with (code, reason) once the current message is answered."""
        self.closed = False
        self.config: S2DeviceConfig | None = None
        self.details: ResourceManagerDetails | None = None
        self.control_type = ControlType.NO_SELECTION
        self.frbc = FrbcState()
        self.ppbc_definition: PPBCPowerProfileDefinition | None = None
        self.ppbc_status: PPBCPowerProfileStatus | None = None
        self.power_forecast: PowerForecast | None = None
        self.measurement: tuple[float, float] | None = None
        """(timestamp [UTC epoch s], p_kw generator sign) of the latest PowerMeasurement."""
        self.instruction_status: dict[uuid.UUID, InstructionStatus] = {}
        self.errors_sent: list[tuple[ReceptionStatusValues, str]] = []
        """Every error ReceptionStatus this session sent (status, diagnostic label)."""
        self.ready = asyncio.Event()
        """Set once the selected control type's description has arrived."""

    # -- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the connection until it closes."""
        worker = asyncio.create_task(self._worker())
        try:
            async for raw in self._ws:
                await self._receive(raw)
        except ConnectionClosed:
            pass
        finally:
            self.closed = True
            worker.cancel()
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(SessionClosed("the RM closed the connection"))
            self._pending.clear()
            await asyncio.gather(worker, return_exceptions=True)
            if self.config is not None:
                self._on_detach(self)

    async def _worker(self) -> None:
        """Run the CEM's own requests in order, outside the receive loop.

        They wait for reception statuses, which the receive loop delivers.
        """
        while True:
            job = await self._work.get()
            try:
                await job()
            except (SessionClosed, ConnectionClosed):
                return
            except TimeoutError:
                log.warning("S2 RM %s did not answer in time; closing", self.resource_id)
                await self.close(1011, "no reception status in time")
                return
            except Exception:
                log.exception("S2 session %s: follow-up failed", self.resource_id)

    @property
    def resource_id(self) -> str:
        """The RM's resource id ('?' before its ResourceManagerDetails)."""
        return str(self.details.resource_id) if self.details is not None else "?"

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the websocket (the loop then ends and the device detaches)."""
        await self._ws.close(code, reason[:120])

    # -- sending --------------------------------------------------------------------------

    async def send(self, msg: S2Message) -> None:
        """Send one message without waiting for its reception status."""
        if self.closed:
            raise SessionClosed(f"RM {self.resource_id} is not connected")
        async with self._send_lock:
            try:
                await self._ws.send(msg.to_json())
            except ConnectionClosed as e:
                raise SessionClosed(f"RM {self.resource_id} closed the connection") from e

    async def request(
        self, msg: S2MessageWithID, timeout_s: float | None = None
    ) -> ReceptionStatus:
        """Send ``msg`` and wait for the RM's ReceptionStatus for it.

        Raises ``TimeoutError`` when none comes within ``timeout_s`` and
        :class:`SessionClosed` when the connection goes.
        """
        fut: asyncio.Future[ReceptionStatus] = asyncio.get_running_loop().create_future()
        self._pending[msg.message_id] = fut
        try:
            await self.send(msg)
            return await asyncio.wait_for(fut, timeout_s or self.reception_timeout_s)
        finally:
            self._pending.pop(msg.message_id, None)

    async def _status(self, subject: uuid.UUID, verdict: Verdict) -> None:
        status, label = verdict
        if status is not ReceptionStatusValues.OK:
            self.errors_sent.append((status, label or ""))
            log.info("S2 RM %s: %s %s", self.resource_id, status.value, label)
        rs = ReceptionStatus(subject_message_id=subject, status=status, diagnostic_label=label)
        with contextlib.suppress(SessionClosed):
            await self.send(rs)

    # -- receiving ------------------------------------------------------------------------

    async def _receive(self, raw: str | bytes) -> None:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            await self._status(NIL, (ReceptionStatusValues.INVALID_DATA, f"not valid JSON: {e}"))
            return
        if not isinstance(data, dict):
            label = "an S2 message is a JSON object with message_type and message_id"
            await self._status(NIL, (ReceptionStatusValues.INVALID_DATA, label))
            return
        subject = _uuid_or_nil(data.get("message_id"))
        mtype = data.get("message_type")
        if _non_finite(data):
            label = f"{mtype} holds a non-finite number (NaN, Infinity or out of range)"
            await self._status(subject, (ReceptionStatusValues.INVALID_DATA, label))
            return
        if not isinstance(mtype, str) or mtype not in TYPE_TO_MESSAGE_CLASS:
            label = f"unknown message_type {mtype!r}"
            await self._status(subject, (ReceptionStatusValues.INVALID_MESSAGE, label))
            return
        try:
            msg = S2Parser.parse_as_any_message(data)
        except S2ValidationError as e:
            label = _validation_label(mtype, e)
            await self._status(subject, (ReceptionStatusValues.INVALID_MESSAGE, label[:500]))
            return
        if isinstance(msg, ReceptionStatus):
            fut = self._pending.pop(msg.subject_message_id, None)
            if fut is not None and not fut.done():
                fut.set_result(msg)
            return
        try:
            verdict = self._handle(msg)
        except Exception:
            log.exception("S2 RM %s: handling %s failed", self.resource_id, mtype)
            verdict = (
                ReceptionStatusValues.PERMANENT_ERROR,
                f"the CEM failed to process {mtype}; see the gateway log",
            )
        await self._status(msg.message_id, verdict)
        if self._close_after is not None:
            await self.close(*self._close_after)

    def _handle(self, msg: S2MessageWithID) -> Verdict:
        if isinstance(msg, Handshake):
            return self._handshake(msg)
        if not self.handshaken:
            return ReceptionStatusValues.INVALID_CONTENT, "send a Handshake first"
        if isinstance(msg, _CEM_ONLY):
            label = f"{msg.message_type} is sent by a CEM, not by a resource manager"
            return ReceptionStatusValues.INVALID_CONTENT, label
        if isinstance(msg, SessionRequest):
            self._close_after = (1000, f"RM asked {msg.request.value}")
            return _OK
        if isinstance(msg, ResourceManagerDetails):
            return self._details(msg)
        if self.config is None:
            return ReceptionStatusValues.INVALID_CONTENT, "send ResourceManagerDetails first"
        verdict = self._state(msg)
        if verdict[0] is ReceptionStatusValues.OK:
            self._on_update(self, msg)
        return verdict

    def _handshake(self, msg: Handshake) -> Verdict:
        if self.handshaken:
            return ReceptionStatusValues.INVALID_CONTENT, "the handshake is already done"
        if msg.role is not EnergyManagementRole.RM:
            self._close_after = (1008, "only resource managers connect here")
            return ReceptionStatusValues.INVALID_CONTENT, "this endpoint is a CEM; role must be RM"
        versions = msg.supported_protocol_versions or []
        if S2_VERSION not in versions:
            label = f"no common S2 version: the RM supports {versions}, this CEM {S2_VERSION!r}"
            self._close_after = (1008, "no common S2 version")
            return ReceptionStatusValues.INVALID_CONTENT, label
        self.handshaken = True

        async def answer() -> None:
            await self.request(
                Handshake(
                    message_id=uuid.uuid4(),
                    role=EnergyManagementRole.CEM,
                    supported_protocol_versions=[S2_VERSION],
                )
            )
            await self.request(
                HandshakeResponse(message_id=uuid.uuid4(), selected_protocol_version=S2_VERSION)
            )

        self._work.put_nowait(answer)
        return _OK

    def _details(self, msg: ResourceManagerDetails) -> Verdict:
        if self.config is not None:
            if msg.resource_id != self.config.resource_id:
                return ReceptionStatusValues.INVALID_CONTENT, "resource_id cannot change"
            self.details = msg
            return _OK
        config = self._lookup(str(msg.resource_id))
        if config is None:
            self._close_after = (1008, "unknown resource_id")
            label = (
                f"resource_id {msg.resource_id} is not configured at this gateway; add it to "
                "the gateway's S2 devices"
            )
            return ReceptionStatusValues.INVALID_CONTENT, label
        self.details, self.config = msg, config
        self._on_attach(self)
        wanted = self.wanted_control_type()

        async def select() -> None:
            await self.select(wanted)

        self._work.put_nowait(select)
        return _OK

    def wanted_control_type(self) -> ControlType:
        """The control type this RM should run under: per the config and what it offers."""
        offered = set(self.details.available_control_types if self.details else [])
        pref = self.config.control_type if self.config else "auto"
        order = {
            "auto": [ControlType.FILL_RATE_BASED_CONTROL, ControlType.POWER_PROFILE_BASED_CONTROL],
            "FRBC": [ControlType.FILL_RATE_BASED_CONTROL],
            "PPBC": [ControlType.POWER_PROFILE_BASED_CONTROL],
        }[pref]
        for ct in order:
            if ct in offered:
                return ct
        if ControlType.NOT_CONTROLABLE in offered:
            return ControlType.NOT_CONTROLABLE
        return ControlType.NO_SELECTION

    async def select(self, control_type: ControlType) -> ReceptionStatus:
        """Select ``control_type`` (the RM then sends that type's description)."""
        self.control_type = control_type
        self.frbc = FrbcState()
        self.ppbc_definition = self.ppbc_status = None
        self.ready.clear()
        rs = await self.request(
            SelectControlType(message_id=uuid.uuid4(), control_type=control_type)
        )
        if rs.status is not ReceptionStatusValues.OK:
            log.warning(
                "S2 RM %s refused %s: %s", self.resource_id, control_type.value, rs.diagnostic_label
            )
            self.control_type = ControlType.NO_SELECTION
        return rs

    def _state(self, msg: S2MessageWithID) -> Verdict:
        if isinstance(msg, PowerMeasurement):
            ts = msg.measurement_timestamp.timestamp()
            if ts > datetime.now(UTC).timestamp() + _FUTURE_SLACK_S:
                stamp = msg.measurement_timestamp.isoformat()
                label = f"measurement_timestamp {stamp} is in the future"
                return ReceptionStatusValues.INVALID_CONTENT, label
            watts = [float(v.value) for v in msg.values if v.commodity_quantity in ELECTRIC]
            if watts:
                self.measurement = (ts, -sum(watts) / 1000.0)
            return _OK
        if isinstance(msg, PowerForecast):
            self.power_forecast = msg
            return _OK
        if isinstance(msg, InstructionStatusUpdate):
            self.instruction_status[msg.instruction_id] = msg.status_type
            return _OK
        if isinstance(msg, RevokeObject):
            return self._revoke(msg)
        if isinstance(msg, _FRBC):
            if self.control_type is not ControlType.FILL_RATE_BASED_CONTROL:
                return self._not_selected(msg.message_type)
            return self._frbc(msg)
        if isinstance(msg, _PPBC):
            if self.control_type is not ControlType.POWER_PROFILE_BASED_CONTROL:
                return self._not_selected(msg.message_type)
            if isinstance(msg, PPBCPowerProfileDefinition):
                if msg.end_time <= msg.start_time:
                    return ReceptionStatusValues.INVALID_CONTENT, "end_time is not after start_time"
                self.ppbc_definition = msg
                self.ready.set()
            else:
                self.ppbc_status = msg
            return _OK
        label = (
            f"{msg.message_type} belongs to a control type this CEM does not support (FRBC, PPBC)"
        )
        return ReceptionStatusValues.INVALID_CONTENT, label

    def _not_selected(self, mtype: str) -> Verdict:
        label = f"{mtype} does not fit the selected control type {self.control_type.value}"
        return ReceptionStatusValues.INVALID_CONTENT, label

    def _frbc(self, msg: S2MessageWithID) -> Verdict:
        st = self.frbc
        if isinstance(msg, FRBCSystemDescription):
            r = msg.storage.fill_level_range
            if not r.start_of_range < r.end_of_range:
                return ReceptionStatusValues.INVALID_CONTENT, "storage fill_level_range is empty"
            st.system = msg
        elif isinstance(msg, FRBCStorageStatus):
            st.fill_level = float(msg.present_fill_level)
        elif isinstance(msg, FRBCActuatorStatus):
            st.actuator_status[msg.actuator_id] = msg
        elif isinstance(msg, FRBCLeakageBehaviour):
            st.leakage = msg
        elif isinstance(msg, FRBCUsageForecast):
            st.usage = msg
        elif isinstance(msg, FRBCTimerStatus):
            st.set_timer(msg)
        if st.system is not None and st.fill_level is not None:
            self.ready.set()
        return _OK

    def _revoke(self, msg: RevokeObject) -> Verdict:
        if msg.object_type is RevokableObjects.FRBC_SystemDescription:
            if self.frbc.system is not None and self.frbc.system.message_id == msg.object_id:
                self.frbc.system = None
                self.ready.clear()
            return _OK
        if msg.object_type is RevokableObjects.PPBC_PowerProfileDefinition:
            if self.ppbc_definition is not None and self.ppbc_definition.id == msg.object_id:
                self.ppbc_definition = None
                self.ready.clear()
            return _OK
        label = f"an RM cannot revoke a {msg.object_type.value}"
        return ReceptionStatusValues.INVALID_CONTENT, label
