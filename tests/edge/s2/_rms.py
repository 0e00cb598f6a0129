"""S2 resource managers for the tests, written with s2-python's RM-side classes.

``BatteryRM``: a 10 kWh battery under FRBC (fill level in %, modes charge / discharge /
idle, leakage); its fill level follows its own fill-rate model, stepped by the test.
``ApplianceRM``: a washing machine under PPBC (one container, two alternative sequences);
its power follows the schedule the CEM gave it, or its own plan when not controlled.
Both answer every message with a ReceptionStatus through the library's connection.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from s2python.common import (
    Commodity,
    CommodityQuantity,
    Duration,
    InstructionStatus,
    InstructionStatusUpdate,
    NumberRange,
    PowerForecastValue,
    PowerMeasurement,
    PowerRange,
    PowerValue,
    RevokeObject,
    Role,
    RoleType,
)
from s2python.connection.asset_details import AssetDetails
from s2python.connection.async_.connection import S2AsyncConnection
from s2python.connection.async_.control_type.class_based import (
    FRBCControlType,
    PPBCControlType,
    ResourceManagerHandler,
)
from s2python.connection.async_.medium.websocket import WebsocketClientMedium
from s2python.frbc import (
    FRBCActuatorDescription,
    FRBCActuatorStatus,
    FRBCInstruction,
    FRBCLeakageBehaviour,
    FRBCLeakageBehaviourElement,
    FRBCOperationMode,
    FRBCOperationModeElement,
    FRBCStorageDescription,
    FRBCStorageStatus,
    FRBCSystemDescription,
)
from s2python.ppbc import (
    PPBCPowerProfileDefinition,
    PPBCPowerSequence,
    PPBCPowerSequenceContainer,
    PPBCPowerSequenceElement,
    PPBCScheduleInstruction,
)

L1 = CommodityQuantity.ELECTRIC_POWER_L1
CAPACITY_KWH = 10.0
P_MAX_W = 5000.0
RATE_PCT_S = P_MAX_W / 1000.0 / CAPACITY_KWH * 100.0 / 3600.0
"""Fill rate at full power [%/s]: 5 kW into 10 kWh."""


def _now() -> datetime:
    return datetime.now(UTC)


def _element(lo: float, hi: float, rate: tuple[float, float], power: tuple[float, float]):
    return FRBCOperationModeElement(
        fill_level_range=NumberRange(start_of_range=lo, end_of_range=hi),
        fill_rate=NumberRange(start_of_range=rate[0], end_of_range=rate[1]),
        power_ranges=[
            PowerRange(start_of_range=power[0], end_of_range=power[1], commodity_quantity=L1)
        ],
    )


def battery_modes(fill_range: tuple[float, float] = (0.0, 100.0)) -> list[FRBCOperationMode]:
    """Charge (0..5 kW, slower above 90 %), discharge (0..5 kW) and idle."""
    lo, hi = fill_range
    knee = lo + 0.9 * (hi - lo)
    return [
        FRBCOperationMode(
            id=uuid.uuid4(),
            diagnostic_label="charge",
            elements=[
                _element(lo, knee, (0.0, RATE_PCT_S), (0.0, P_MAX_W)),
                _element(knee, hi, (0.0, RATE_PCT_S / 2), (0.0, P_MAX_W / 2)),
            ],
            abnormal_condition_only=False,
        ),
        FRBCOperationMode(
            id=uuid.uuid4(),
            diagnostic_label="discharge",
            elements=[_element(lo, hi, (-RATE_PCT_S, 0.0), (-P_MAX_W, 0.0))],
            abnormal_condition_only=False,
        ),
        FRBCOperationMode(
            id=uuid.uuid4(),
            diagnostic_label="idle",
            elements=[_element(lo, hi, (0.0, 0.0), (0.0, 0.0))],
            abnormal_condition_only=False,
        ),
    ]


def fill_rate(mode: FRBCOperationMode, factor: float, fill: float) -> tuple[float, float]:
    """The RM's own model: (fill rate [%/s], power [W]) of a mode at a factor and fill level."""
    for e in mode.elements:
        r = e.fill_level_range
        if r.start_of_range <= fill <= r.end_of_range:
            break
    else:
        e = min(
            mode.elements,
            key=lambda e: min(
                abs(fill - e.fill_level_range.start_of_range),
                abs(fill - e.fill_level_range.end_of_range),
            ),
        )
    fr, pr = e.fill_rate, e.power_ranges[0]
    rate = fr.start_of_range + factor * (fr.end_of_range - fr.start_of_range)
    power = pr.start_of_range + factor * (pr.end_of_range - pr.start_of_range)
    return rate, power


@dataclass
class BatteryPhysics:
    fill: float = 50.0
    leakage: float = 0.0
    """[%/s] lost at any fill level."""
    modes: list[FRBCOperationMode] = field(default_factory=battery_modes)
    actuator_id: uuid.UUID = field(default_factory=uuid.uuid4)
    mode: FRBCOperationMode | None = None
    factor: float = 0.0
    controlled: bool = False
    label: str = "%"
    """The storage's fill_level_label ("°C" for a water heater's tank)."""
    reject: bool = False
    """Reject every instruction (InstructionStatusUpdate REJECTED)."""
    instructions: list[FRBCInstruction] = field(default_factory=list)
    trace: list[float] = field(default_factory=list)
    """Every fill level the battery went through."""

    @property
    def idle(self) -> FRBCOperationMode:
        return self.modes[2]

    def power_w(self) -> float:
        mode = self.mode or self.idle
        return fill_rate(mode, self.factor, self.fill)[1]

    def step(self, dt: float, substeps: int = 200) -> None:
        """Advance ``dt`` seconds with the RM's own fill-rate model."""
        mode = self.mode or self.idle
        h = dt / substeps
        for _ in range(substeps):
            rate, _ = fill_rate(mode, self.factor, self.fill)
            self.fill += (rate - self.leakage) * h
            self.trace.append(self.fill)


class BatteryFRBC(FRBCControlType):
    def __init__(self, phys: BatteryPhysics) -> None:
        self.phys = phys

    async def handle_instruction(self, connection, msg, send_okay) -> None:
        assert isinstance(msg, FRBCInstruction)
        modes = {m.id: m for m in self.phys.modes}
        ok = msg.operation_mode in modes and 0.0 <= msg.operation_mode_factor <= 1.0
        ok = ok and not self.phys.reject
        await connection.send_and_forget(
            InstructionStatusUpdate(
                message_id=uuid.uuid4(),
                instruction_id=msg.id,
                status_type=InstructionStatus.ACCEPTED if ok else InstructionStatus.REJECTED,
                timestamp=_now(),
            )
        )
        if ok:
            self.phys.mode = modes[msg.operation_mode]
            self.phys.factor = msg.operation_mode_factor
            self.phys.instructions.append(msg)
        await send_okay()

    async def activate(self, connection: S2AsyncConnection) -> None:
        p = self.phys
        p.controlled = True
        await connection.send_msg_and_await_reception_status(
            FRBCSystemDescription(
                message_id=uuid.uuid4(),
                valid_from=_now(),
                actuators=[
                    FRBCActuatorDescription(
                        id=p.actuator_id,
                        operation_modes=p.modes,
                        transitions=[],
                        timers=[],
                        supported_commodities=[Commodity.ELECTRICITY],
                    )
                ],
                storage=FRBCStorageDescription(
                    fill_level_range=NumberRange(start_of_range=0.0, end_of_range=100.0),
                    fill_level_label=p.label,
                    provides_leakage_behaviour=p.leakage > 0,
                    provides_fill_level_target_profile=False,
                    provides_usage_forecast=False,
                ),
            )
        )
        if p.leakage > 0:
            await connection.send_msg_and_await_reception_status(
                FRBCLeakageBehaviour(
                    message_id=uuid.uuid4(),
                    valid_from=_now(),
                    elements=[
                        FRBCLeakageBehaviourElement(
                            fill_level_range=NumberRange(start_of_range=0.0, end_of_range=100.0),
                            leakage_rate=p.leakage,
                        )
                    ],
                )
            )
        await connection.send_msg_and_await_reception_status(
            FRBCActuatorStatus(
                message_id=uuid.uuid4(),
                actuator_id=p.actuator_id,
                active_operation_mode_id=(p.mode or p.idle).id,
                operation_mode_factor=p.factor,
            )
        )
        await connection.send_msg_and_await_reception_status(
            FRBCStorageStatus(message_id=uuid.uuid4(), present_fill_level=p.fill)
        )

    async def deactivate(self, connection: S2AsyncConnection) -> None:
        # Back on its own control: the battery idles.
        self.phys.controlled = False
        self.phys.mode, self.phys.factor = self.phys.idle, 0.0


@dataclass
class AppliancePlan:
    start: datetime
    end: datetime
    sequences: dict[str, tuple[uuid.UUID, list[tuple[float, float]]]]
    """name → (sequence id, [(duration s, power W)])."""
    container_id: uuid.UUID = field(default_factory=uuid.uuid4)
    profile_id: uuid.UUID = field(default_factory=uuid.uuid4)
    schedule: dict[uuid.UUID, PPBCScheduleInstruction] = field(default_factory=dict)
    revoked: list[uuid.UUID] = field(default_factory=list)
    controlled: bool = False

    def power_w(self, t: datetime) -> float:
        """Power at ``t`` [W, consumed]: the CEM's schedule, or its own plan (first
        sequence at the earliest start) when it has none."""
        if self.schedule:
            instr = next(iter(self.schedule.values()))
            steps = next(s for i, s in self.sequences.values() if i == instr.power_sequence_id)
            start = instr.execution_time
        else:
            steps, start = next(iter(self.sequences.values()))[1], self.start
        offset = (t - start).total_seconds()
        if offset < 0:
            return 0.0
        for d, w in steps:
            if offset < d:
                return w
            offset -= d
        return 0.0


def washing_machine(hours_to_end: float = 3.0) -> AppliancePlan:
    now = _now()
    return AppliancePlan(
        start=now - timedelta(seconds=1),
        end=now + timedelta(hours=hours_to_end),
        sequences={
            "normal": (uuid.uuid4(), [(1800.0, 2000.0), (1800.0, 500.0)]),
            "eco": (uuid.uuid4(), [(5400.0, 800.0)]),
        },
    )


class AppliancePPBC(PPBCControlType):
    def __init__(self, plan: AppliancePlan) -> None:
        self.plan = plan

    def register_handlers(self, connection: S2AsyncConnection) -> None:
        super().register_handlers(connection)
        connection.register_handler(RevokeObject, self.handle_revoke)

    async def handle_revoke(self, connection, msg, send_okay) -> None:
        assert isinstance(msg, RevokeObject)
        self.plan.revoked.append(msg.object_id)
        for cid, instr in list(self.plan.schedule.items()):
            if instr.id == msg.object_id:
                del self.plan.schedule[cid]
        await send_okay()

    async def handle_instruction(self, connection, msg, send_okay) -> None:
        assert isinstance(msg, PPBCScheduleInstruction)
        ok = msg.power_profile_id == self.plan.profile_id and msg.execution_time <= self.plan.end
        await connection.send_and_forget(
            InstructionStatusUpdate(
                message_id=uuid.uuid4(),
                instruction_id=msg.id,
                status_type=InstructionStatus.ACCEPTED if ok else InstructionStatus.REJECTED,
                timestamp=_now(),
            )
        )
        if ok:
            self.plan.schedule[msg.sequence_container_id] = msg
        await send_okay()

    async def activate(self, connection: S2AsyncConnection) -> None:
        p = self.plan
        p.controlled = True
        seqs = [
            PPBCPowerSequence(
                id=sid,
                elements=[
                    PPBCPowerSequenceElement(
                        duration=Duration.from_milliseconds(int(d * 1000)),
                        power_values=[PowerForecastValue(value_expected=w, commodity_quantity=L1)],
                    )
                    for d, w in steps
                ],
                is_interruptible=False,
                abnormal_condition_only=False,
            )
            for sid, steps in p.sequences.values()
        ]
        await connection.send_msg_and_await_reception_status(
            PPBCPowerProfileDefinition(
                message_id=uuid.uuid4(),
                id=p.profile_id,
                start_time=p.start,
                end_time=p.end,
                power_sequences_containers=[
                    PPBCPowerSequenceContainer(id=p.container_id, power_sequences=seqs)
                ],
            )
        )

    async def deactivate(self, connection: S2AsyncConnection) -> None:
        self.plan.controlled = False
        self.plan.schedule.clear()


class RM:
    """A resource manager connected to a CEM URL through s2-python's async connection."""

    def __init__(self, url: str, resource_id: str, control) -> None:
        self.url = url
        self.control = control
        self.details = AssetDetails(
            resource_id=uuid.UUID(resource_id),
            provides_forecast=False,
            provides_power_measurements=[L1],
            instruction_processing_delay=Duration.from_milliseconds(10),
            roles=[Role(role=RoleType.ENERGY_STORAGE, commodity=Commodity.ELECTRICITY)],
            name="test RM",
        )
        self.medium = WebsocketClientMedium(url=url)
        self.conn: S2AsyncConnection | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.medium.connect()
        self.conn = S2AsyncConnection(medium=self.medium)
        ResourceManagerHandler([self.control], self.details).register_handlers(self.conn)
        self.task = asyncio.create_task(self.conn.run())

    async def send(self, msg) -> None:
        assert self.conn is not None
        await self.conn.send_msg_and_await_reception_status(msg)

    async def measure(self, watts: float) -> None:
        await self.send(
            PowerMeasurement(
                message_id=uuid.uuid4(),
                measurement_timestamp=_now(),
                values=[PowerValue(commodity_quantity=L1, value=watts)],
            )
        )

    async def stop(self) -> None:
        if self.conn is not None:
            await self.conn.stop()
        await self.medium.disconnect()
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)
