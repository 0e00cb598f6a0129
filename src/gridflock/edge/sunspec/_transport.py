"""pysunspec2's Modbus device with its register I/O over pymodbus (blocking, one TCP link).

pysunspec2 ships its own socket client; this subclass keeps pysunspec2's model handling
(discovery, scale factors, point encoding) and sends every request through pymodbus's
``ModbusTcpClient``. Calls block: the driver runs them in a worker thread.
"""

from __future__ import annotations

import logging
from typing import Any

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException
from sunspec2.modbus.client import (
    SunSpecModbusClientDevice,
    SunSpecModbusClientError,
    SunSpecModbusClientModel,
)

__all__ = ["PymodbusSunSpecDevice", "SunSpecModbusClientError"]

_MAX_READ = 125  # registers per read request (Modbus limit)
_MAX_WRITE = 123  # registers per write request
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


class PymodbusSunSpecDevice(SunSpecModbusClientDevice):  # type: ignore[misc]
    """A SunSpec device at ``host:port``, unit ``unit``, reached through pymodbus."""

    def __init__(self, host: str, port: int, unit: int, timeout_s: float = 2.0) -> None:
        super().__init__(model_class=SunSpecModbusClientModel)
        self.host, self.port, self.unit = host, port, unit
        self.client: Any = ModbusTcpClient(host, port=port, timeout=timeout_s, retries=0)

    def where(self) -> str:
        """``host:port unit N`` for messages."""
        return f"{self.host}:{self.port} unit {self.unit}"

    def connect(self, timeout: Any = None) -> None:
        if not self.client.connected and not self.client.connect():
            raise SunSpecModbusClientError(f"cannot connect to {self.where()}")

    def disconnect(self) -> None:
        self.client.close()

    def close(self) -> None:
        self.client.close()

    def is_connected(self) -> bool:
        return bool(self.client.connected)

    def read(self, addr: int, count: int, op: Any = None) -> bytes:
        # pysunspec2 1.3 asks for the count points of models with repeating groups (705,
        # 706, 711, ...) with float address and count (len(data) / 2): make them integers
        addr, count = int(addr), int(count)
        self.connect()
        out = bytearray()
        done = 0
        while done < count:
            n = min(_MAX_READ, count - done)
            try:
                rr = self.client.read_holding_registers(addr + done, count=n, device_id=self.unit)
            except ModbusException as e:
                self.client.close()
                raise SunSpecModbusClientError(f"{self.where()}: {e}") from None
            if rr.isError():
                raise SunSpecModbusClientError(
                    f"{self.where()} refused reading {n} registers at {addr + done}: {rr}"
                )
            for r in rr.registers:
                out += int(r).to_bytes(2, "big")
            done += n
        return bytes(out)

    def write(self, addr: int, data: bytes) -> None:
        self.connect()
        regs = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
        for a in range(0, len(regs), _MAX_WRITE):
            chunk = regs[a : a + _MAX_WRITE]
            try:
                rr = self.client.write_registers(addr + a, chunk, device_id=self.unit)
            except ModbusException as e:
                self.client.close()
                raise SunSpecModbusClientError(f"{self.where()}: {e}") from None
            if rr.isError():
                raise SunSpecModbusClientError(
                    f"{self.where()} refused writing {len(chunk)} registers at {addr + a}: {rr}"
                )
