"""The edge gateway's S2 CEM with many resource managers: session setup, setpoint latency,
storage-status throughput.

    python benchmarks/bench_s2.py [--devices 50] [--repeat 20] [--statuses 200]

Every RM is an s2-python resource manager (``S2AsyncConnection`` + ``ResourceManagerHandler``,
a battery under FRBC) on a real websocket to the gateway's CEM endpoint, all in this one
process, so the RMs' own work shares the CPU with the CEM's and the figures are an upper
bound on what the CEM alone needs. Measures: all RMs connected to ready (handshake, details,
control type, system description); ``apply`` round trip (plan, FRBC.Instruction, the RM's
InstructionStatusUpdate and ReceptionStatus) one device at a time and to all at once; how
many FRBC.StorageStatus messages per second the CEM validates, applies (with re-planning of a
standing setpoint) and answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import UTC, datetime

from s2python.common import (
    Commodity,
    CommodityQuantity,
    Duration,
    InstructionStatus,
    InstructionStatusUpdate,
    NumberRange,
    PowerRange,
    Role,
    RoleType,
)
from s2python.connection.asset_details import AssetDetails
from s2python.connection.async_.connection import S2AsyncConnection
from s2python.connection.async_.control_type.class_based import (
    FRBCControlType,
    ResourceManagerHandler,
)
from s2python.connection.async_.medium.websocket import WebsocketClientMedium
from s2python.frbc import (
    FRBCActuatorDescription,
    FRBCInstruction,
    FRBCOperationMode,
    FRBCOperationModeElement,
    FRBCStorageDescription,
    FRBCStorageStatus,
    FRBCSystemDescription,
)

from _common import Timing, ms, parser, print_header, print_table
from gridflock.edge.s2 import S2DeviceConfig, build_s2_driver

L1 = CommodityQuantity.ELECTRIC_POWER_L1
RATE = 5.0 / 10.0 * 100.0 / 3600.0  # 5 kW into 10 kWh [%/s]


class Battery(FRBCControlType):
    def __init__(self) -> None:
        self.mode = uuid.uuid4()
        self.actuator = uuid.uuid4()
        self.factor = 0.5

    async def handle_instruction(self, connection, msg, send_okay) -> None:
        assert isinstance(msg, FRBCInstruction)
        self.factor = msg.operation_mode_factor
        await connection.send_and_forget(
            InstructionStatusUpdate(
                message_id=uuid.uuid4(),
                instruction_id=msg.id,
                status_type=InstructionStatus.ACCEPTED,
                timestamp=datetime.now(UTC),
            )
        )
        await send_okay()

    async def activate(self, connection: S2AsyncConnection) -> None:
        element = FRBCOperationModeElement(
            fill_level_range=NumberRange(start_of_range=0, end_of_range=100),
            fill_rate=NumberRange(start_of_range=-RATE, end_of_range=RATE),
            power_ranges=[
                PowerRange(start_of_range=-5000, end_of_range=5000, commodity_quantity=L1)
            ],
        )
        await connection.send_msg_and_await_reception_status(
            FRBCSystemDescription(
                message_id=uuid.uuid4(),
                valid_from=datetime.now(UTC),
                actuators=[
                    FRBCActuatorDescription(
                        id=self.actuator,
                        operation_modes=[
                            FRBCOperationMode(
                                id=self.mode, elements=[element], abnormal_condition_only=False
                            )
                        ],
                        transitions=[],
                        timers=[],
                        supported_commodities=[Commodity.ELECTRICITY],
                    )
                ],
                storage=FRBCStorageDescription(
                    fill_level_range=NumberRange(start_of_range=0, end_of_range=100),
                    provides_leakage_behaviour=False,
                    provides_fill_level_target_profile=False,
                    provides_usage_forecast=False,
                ),
            )
        )
        await connection.send_msg_and_await_reception_status(
            FRBCStorageStatus(message_id=uuid.uuid4(), present_fill_level=50.0)
        )

    async def deactivate(self, connection: S2AsyncConnection) -> None:
        self.factor = 0.5


async def start_rm(url: str, rid: uuid.UUID) -> tuple[S2AsyncConnection, WebsocketClientMedium]:
    details = AssetDetails(
        resource_id=rid,
        provides_forecast=False,
        provides_power_measurements=[L1],
        instruction_processing_delay=Duration.from_milliseconds(10),
        roles=[Role(role=RoleType.ENERGY_STORAGE, commodity=Commodity.ELECTRICITY)],
    )
    medium = WebsocketClientMedium(url=url)
    await medium.connect()
    conn = S2AsyncConnection(medium=medium)
    ResourceManagerHandler([Battery()], details).register_handlers(conn)
    asyncio.get_running_loop().create_task(conn.run())
    return conn, medium


async def run(n: int, repeat: int, statuses: int) -> None:
    rids = [uuid.uuid4() for _ in range(n)]
    configs = [
        S2DeviceConfig(device_id=f"bat-{i}", resource_id=r, listen_port=0)
        for i, r in enumerate(rids)
    ]
    driver = build_s2_driver(configs)
    await driver.start()
    url = driver.endpoints["bat-0"]
    t0 = time.perf_counter()
    rms = await asyncio.gather(*(start_rm(url, r) for r in rids))
    while not all(
        (s := driver.session(f"bat-{i}")) is not None and s.ready.is_set() for i in range(n)
    ):
        await asyncio.sleep(0.001)
    setup = time.perf_counter() - t0

    one: list[float] = []
    for r in range(repeat + 1):
        for i in range(n):
            t = time.perf_counter()
            res = await driver.apply(f"bat-{i}", (-1) ** r * 2.0, time.time() + 900)
            assert res.accepted, res.reason
            if r:
                one.append(time.perf_counter() - t)
    fleet: list[float] = []
    for r in range(repeat + 1):
        t = time.perf_counter()
        results = await asyncio.gather(
            *(driver.apply(f"bat-{i}", (-1) ** r * 3.0, time.time() + 900) for i in range(n))
        )
        assert all(x.accepted for x in results)
        if r:
            fleet.append(time.perf_counter() - t)

    last = 50.0 + statuses * 0.01
    t = time.perf_counter()

    async def flood(conn: S2AsyncConnection) -> None:
        for k in range(1, statuses + 1):
            await conn.send_and_forget(
                FRBCStorageStatus(message_id=uuid.uuid4(), present_fill_level=50.0 + k * 0.01)
            )

    await asyncio.gather(*(flood(conn) for conn, _ in rms))
    while not all(
        (s := driver.session(f"bat-{i}")) is not None and s.frbc.fill_level == last
        for i in range(n)
    ):
        await asyncio.sleep(0.001)
    flood_s = time.perf_counter() - t

    one_t, fleet_t = Timing(tuple(one)), Timing(tuple(fleet))
    print_table(
        f"S2 CEM, {n} battery RMs (FRBC) in one process",
        ["measure", "median, ms", "p99 / total, ms", "min, ms"],
        [
            ["all RMs connected to ready", "", ms(setup), ""],
            ["apply, one device", ms(one_t.median), ms(one_t.p99), ms(one_t.min)],
            [f"apply to all {n} at once", ms(fleet_t.median), ms(fleet_t.p99), ms(fleet_t.min)],
            [
                f"{n * statuses:,} FRBC.StorageStatus (re-planned, answered)",
                "",
                f"{ms(flood_s)} = {n * statuses / flood_s:,.0f} msg/s",
                "",
            ],
        ],
    )
    await driver.close()
    for conn, medium in rms:
        await conn.stop()
        await medium.disconnect()


def main() -> None:
    p = parser(__doc__.splitlines()[0], devices=50, repeat=20)
    p.add_argument("--statuses", type=int, default=200, help="storage statuses per RM")
    args = p.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print_header("bench_s2: the edge gateway's S2 CEM")
    asyncio.run(run(args.devices, args.repeat, args.statuses))


if __name__ == "__main__":
    main()
