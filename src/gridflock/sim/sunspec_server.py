"""A SunSpec Modbus TCP server whose registers follow the twin's device physics.

The test peer of the edge gateway's SunSpec driver, and the devices of the simulated edge
sites (``gridflock sim edge``). Each Modbus unit id is one device, its register map built
from pysunspec2's model definitions (``sunspec2.device.Model``: no hand-written register
tables) at the SunSpec base address 40000 (``SunS``, the models, the end model):

- :class:`PvInverterUnit`: a PV inverter following irradiance and a power limit, either
  the classic models 1, 120, 103 and 123 (``WMaxLimPct``) or the DER models 1, 701, 702
  and 704 (``WMaxLimPctEna`` / ``WMaxLimPct``);
- :class:`BatteryUnit`: a battery inverter (1, 120, 103, 124, 802) following the storage
  controls of model 124 (``StorCtl_Mod``, ``InWRte``/``OutWRte`` in % of ``WChaMax``)
  with its state of charge kept within ``MinRsvPct``..100 % by :func:`battery_step`;
- either inverter optionally with the DER curve models 705 (volt-var), 706 (volt-watt)
  and 711 (frequency droop) (``der_models``; :mod:`gridflock.sim.sunspec_der`);
- :class:`MeterUnit`: a site meter (1, 203) summing the house load and the site's other
  units (``W`` > 0 imported from the grid, the SunSpec meter convention).

Registers are refreshed from the physics on every read (time advances with ``clock``);
a write goes through the point definitions: a register that is not a writable point is
refused with ``ILLEGAL_ADDRESS``, a value out of the point's range with ``ILLEGAL_VALUE``.
Power in the models is in W (scale factors as a real device has them); the Python side
speaks kW and the generator sign (``p_kw > 0`` delivered to the grid).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import sunspec2.device as ssdev
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from gridflock.sim.physics import ETA_INVERTER, battery_step
from gridflock.sim.sunspec_der import DerModels, der_model

__all__ = [
    "BASE_ADDR",
    "BatteryUnit",
    "MeterUnit",
    "PvInverterUnit",
    "SunSpecServer",
    "SunSpecUnit",
]

#: SunSpec base address of the map ("SunS" marker), the first one clients try.
BASE_ADDR = 40000
_END_MODEL = 0xFFFF
_STORCTL_CHARGE = 1
_STORCTL_DISCHARGE = 2


def _model(model_id: int, values: dict[str, float | int | str]) -> Any:
    """A pysunspec2 model with the given point values (scale factors first, as given)."""
    m = ssdev.Model(model_id=model_id)
    for name, v in values.items():
        point = m.points[name]
        if isinstance(v, str) or name.endswith("_SF") or point.sf is None:
            point.value = v
        else:
            point.cvalue = v
    return m


class SunSpecUnit:
    """One Modbus unit: a SunSpec device (its models) whose values a physics step sets.

    Subclasses build ``self.models`` and implement :meth:`advance` (physics over ``dt_s``)
    and :meth:`refresh` (physics → point values). ``p_kw`` is the unit's power now.
    """

    def __init__(self, models: Sequence[Any], clock: Callable[[], float]) -> None:
        self.models = list(models)
        self.clock = clock
        self._t = clock()
        self.p_kw = 0.0
        self.writes = 0
        self._layout: list[tuple[int, Any]] = []  # (offset of the model's ID register, model)
        offset = 2
        for m in self.models:
            self._layout.append((offset, m))
            offset += len(m.get_mb()) // 2
        self.n_registers = offset + 2
        self.der = DerModels(self.models)
        """The DER curve models' checks and curve adoption."""

    # -- to override
    def advance(self, dt_s: float) -> None:
        """Move the physics on by ``dt_s`` seconds."""

    def refresh(self) -> None:
        """Write the physics state into the model points."""

    def check_write(self, model: Any) -> str | None:
        """Why the model's new control values are refused (None: accepted)."""
        return None

    def written(self, model: Any) -> None:
        """A write to ``model`` was accepted (start revert timers here)."""

    # -- registers
    def step(self) -> None:
        """Advance the physics to ``clock()`` and refresh the points."""
        now = self.clock()
        dt = now - self._t
        if dt > 0:
            self.advance(dt)
            self._t = now
        self.refresh()

    def model(self, model_id: int) -> Any:
        """The unit's model ``model_id`` (KeyError if it has none)."""
        for _, m in self._layout:
            if m.model_id == model_id:
                return m
        raise KeyError(model_id)

    def has(self, model_id: int) -> bool:
        """Whether the unit exposes model ``model_id``."""
        return any(m.model_id == model_id for _, m in self._layout)

    def registers(self) -> list[int]:
        """The whole map from ``BASE_ADDR``: ``SunS``, the models, the end model."""
        regs = [0x5375, 0x6E53]
        for _, m in self._layout:
            b = m.get_mb()
            regs.extend(int.from_bytes(b[i : i + 2], "big") for i in range(0, len(b), 2))
        regs.extend([_END_MODEL, 0])
        return regs

    def write(self, offset: int, values: Sequence[int]) -> ExcCodes | None:
        """Apply a write of ``values`` at ``offset`` (registers from ``BASE_ADDR``)."""
        self.step()
        patched: dict[int, bytearray] = {}
        for i, v in enumerate(values):
            reg = offset + i
            found = None
            for k, (start, m) in enumerate(self._layout):
                size = len(m.get_mb()) // 2
                if start <= reg < start + size:
                    found = (k, start, m)
                    break
            if found is None or not _writable(found[2], reg - found[1]):
                return ExcCodes.ILLEGAL_ADDRESS
            k, start, m = found
            data = patched.setdefault(k, bytearray(m.get_mb()))
            data[(reg - start) * 2 : (reg - start) * 2 + 2] = (int(v) & 0xFFFF).to_bytes(2, "big")
        touched = [(self._layout[k][1], bytes(d)) for k, d in patched.items()]
        saved = [(m, m.get_mb()) for m, _ in touched]
        for m, new in touched:
            m.set_mb(new)
            if self.der.check(m) is not None or self.check_write(m) is not None:
                for m0, old in saved:
                    m0.set_mb(old)
                return ExcCodes.ILLEGAL_VALUE
        self.writes += 1
        for m, _ in touched:
            self.der.written(m)
            self.written(m)
        self.refresh()
        return None

    def device(self, unit_id: int) -> SimDevice:
        """The pymodbus simulated device of this unit (holding registers from ``BASE_ADDR``)."""

        async def action(
            function_code: int,
            start_address: int,
            address: int,
            count: int,
            current_registers: list[int],
            set_values: list[int] | list[bool] | None,
        ) -> ExcCodes | None:
            off = address - BASE_ADDR
            if set_values is not None:
                return self.write(off, [int(v) for v in set_values])
            self.step()
            current_registers[:] = self.registers()
            return None

        return SimDevice(
            id=unit_id,
            simdata=[
                SimData(
                    BASE_ADDR,
                    count=self.n_registers,
                    values=0,
                    datatype=DataType.REGISTERS,
                )
            ],
            action=action,
        )


def _points(group: Any) -> list[Any]:
    """The group's points in register order, those of its (repeating) groups included."""
    out = list(group.points.values())
    for g in group.groups.values():
        for sub in g if isinstance(g, list) else [g]:
            out.extend(_points(sub))
    return out


def _writable(model: Any, reg: int) -> bool:
    """Whether register ``reg`` (from the model's ID register) lies in a writable point."""
    pos = 0
    for p in _points(model):
        size = int(p.pdef.get("size", 1))
        if pos <= reg < pos + size:
            return bool(p.pdef.get("access") == "RW")
        pos += size
    return False


def _val(point: Any) -> float | None:
    """A point's computed value (scale factor applied), None when not implemented."""
    v = point.cvalue
    return None if v is None else float(v)


class PvInverterUnit(SunSpecUnit):
    """A PV inverter: AC power = min(available, limit), available from irradiance.

    ``flavour="1xx"`` exposes models 1, 120, 103, 123; ``"7xx"`` models 1, 701, 702, 704.
    ``irradiance`` gives the plane-of-array irradiance [W/m²] at a time [UTC epoch s];
    the array yields ``kwp * G / 1000 * ETA_INVERTER`` kW (at most the rating).
    """

    def __init__(
        self,
        rating_kw: float,
        kwp: float | None = None,
        *,
        irradiance: Callable[[float], float] = lambda t: 800.0,
        flavour: str = "1xx",
        clock: Callable[[], float] = time.time,
        serial: str = "PV-0001",
        der_models: Sequence[int] = (),
        der_points: int = 4,
    ) -> None:
        if flavour not in ("1xx", "7xx"):
            raise ValueError(f"flavour must be '1xx' or '7xx', got {flavour!r}")
        self.rating_kw = float(rating_kw)
        self.kwp = float(kwp if kwp is not None else rating_kw * 1.1)
        self.irradiance = irradiance
        self.flavour = flavour
        common = _model(1, {"Mn": "Gridflock", "Md": "PV twin", "SN": serial, "DA": 1})
        w_rtg = self.rating_kw * 1000.0
        if flavour == "1xx":
            models = [
                common,
                _model(120, {"WRtg_SF": 1, "DERTyp": 4, "WRtg": w_rtg}),
                _model(103, {"W_SF": 0, "WH_SF": 0, "Hz_SF": -2, "St": 4, "W": 0, "WH": 0}),
                _model(
                    123,
                    {
                        "WMaxLimPct_SF": -1,
                        "WMaxLimPct": 100.0,
                        "WMaxLim_Ena": 0,
                        "WMaxLimPct_RvrtTms": 0,
                        "Conn": 1,
                    },
                ),
            ]
        else:
            models = [
                common,
                _model(701, {"W_SF": 0, "W": 0, "ACType": 1, "InvSt": 2}),
                _model(702, {"W_SF": 1, "WMaxRtg": w_rtg, "WMax": w_rtg}),
                _model(
                    704,
                    {
                        "WMaxLimPct_SF": -1,
                        "WMaxLimPctEna": 0,
                        "WMaxLimPct": 100.0,
                        "WMaxLimPctRvrtTms": 0,
                    },
                ),
            ]
        models += [der_model(mid, n_points=der_points) for mid in der_models]
        self.revert_at = math.inf
        """When the device drops its power limit by itself (its revert timer) [UTC epoch s]."""
        super().__init__(models, clock)
        self.refresh()

    def _limit_model(self) -> tuple[Any, str, str]:
        if self.flavour == "1xx":
            return self.model(123), "WMaxLim_Ena", "WMaxLimPct_RvrtTms"
        return self.model(704), "WMaxLimPctEna", "WMaxLimPctRvrtTms"

    def written(self, model: Any) -> None:
        """A limit written with a revert time lapses by itself after it (0: never)."""
        m, ena, rvrt = self._limit_model()
        if model is m:
            t = m.points[rvrt].value or 0
            self.revert_at = self.clock() + t if t and m.points[ena].value == 1 else math.inf

    @property
    def available_kw(self) -> float:
        """What the array gives now [kW], before the limit."""
        g = max(0.0, float(self.irradiance(self.clock())))
        return min(self.rating_kw, self.kwp * g / 1000.0 * float(ETA_INVERTER))

    @property
    def limit_pct(self) -> float:
        """The active power limit in force [% of the rating] (100 when none)."""
        m, ena, _ = self._limit_model()
        if self.clock() >= self.revert_at:  # the device's own fail-safe
            m.points[ena].value = 0
            self.revert_at = math.inf
        on = m.points[ena].value == 1
        pct = _val(m.WMaxLimPct)
        return 100.0 if not on or pct is None else pct

    def refresh(self) -> None:
        """Physics state → point values."""
        self.p_kw = min(self.available_kw, self.rating_kw * self.limit_pct / 100.0)
        if self.flavour == "1xx":
            self.model(103).W.cvalue = round(self.p_kw * 1000.0)
        else:
            self.model(701).W.cvalue = round(self.p_kw * 1000.0)

    def check_write(self, model: Any) -> str | None:
        """Refuse control values outside the points' ranges."""
        if model.model_id in (123, 704):
            pct = _val(model.WMaxLimPct)
            if pct is not None and not 0.0 <= pct <= 100.0:
                return f"WMaxLimPct {pct} outside 0..100 %"
        return None


class BatteryUnit(SunSpecUnit):
    """A battery inverter following its storage controls, SoC by :func:`battery_step`.

    ``flavour="1xx"``: models 1, 120, 103, 124, 802, controlled through model 124
    (``StorCtl_Mod``, ``InWRte``/``OutWRte``); ``"7xx"``: the DER models 1, 701, 702, 704,
    802, controlled through model 704's ``WSetEna``/``WSetMod``/``WSet`` (W, > 0 discharge).
    Without a control it runs its own control: ``own_p_kw`` (0 = idle).
    """

    def __init__(
        self,
        e_kwh: float,
        p_max_kw: float,
        *,
        soc: float = 0.5,
        reserve: float = 0.1,
        eta: float = 0.95,
        own_p_kw: float = 0.0,
        flavour: str = "1xx",
        clock: Callable[[], float] = time.time,
        serial: str = "BAT-0001",
        der_models: Sequence[int] = (),
    ) -> None:
        if flavour not in ("1xx", "7xx"):
            raise ValueError(f"flavour must be '1xx' or '7xx', got {flavour!r}")
        self.flavour = flavour
        self._reserve = float(reserve)
        self.e_kwh = float(e_kwh)
        self.p_max_kw = float(p_max_kw)
        self.soc = float(soc)
        self.eta = float(eta)
        self.own_p_kw = float(own_p_kw)
        w = self.p_max_kw * 1000.0
        models = [
            _model(1, {"Mn": "Gridflock", "Md": "Battery twin", "SN": serial, "DA": 1}),
            _model(
                120,
                {
                    "WRtg_SF": 1,
                    "WHRtg_SF": 1,
                    "MaxChaRte_SF": 1,
                    "MaxDisChaRte_SF": 1,
                    "DERTyp": 82,
                    "WRtg": w,
                    "WHRtg": self.e_kwh * 1000.0,
                    "MaxChaRte": w,
                    "MaxDisChaRte": w,
                },
            ),
            _model(103, {"W_SF": 0, "WH_SF": 0, "St": 4, "W": 0, "WH": 0}),
            _model(
                124,
                {
                    "WChaMax_SF": 1,
                    "WChaDisChaGra_SF": 0,
                    "MinRsvPct_SF": -1,
                    "ChaState_SF": -1,
                    "InOutWRte_SF": -1,
                    "WChaMax": w,
                    "WChaGra": 100,
                    "WDisChaGra": 100,
                    "StorCtl_Mod": 0,
                    "MinRsvPct": reserve * 100.0,
                    "ChaState": self.soc * 100.0,
                    "OutWRte": 0.0,
                    "InWRte": 0.0,
                    "InOutWRte_RvrtTms": 0,
                    "ChaSt": 3,
                },
            ),
            _model(
                802,
                {
                    "AHRtg_SF": 0,
                    "WHRtg_SF": 1,
                    "WChaDisChaMax_SF": 1,
                    "SoC_SF": -1,
                    "W_SF": 0,
                    "AHRtg": 100,
                    "WHRtg": self.e_kwh * 1000.0,
                    "WChaRteMax": w,
                    "WDisChaRteMax": w,
                    "SoC": self.soc * 100.0,
                    "W": 0,
                    "ChaSt": 3,
                    "LocRemCtl": 0,
                    "Typ": 4,
                    "State": 4,
                },
            ),
        ]
        if flavour == "7xx":
            models = [
                models[0],
                _model(701, {"W_SF": 0, "W": 0, "ACType": 1, "InvSt": 2}),
                _model(702, {"W_SF": 1, "WMaxRtg": w, "WMax": w}),
                _model(
                    704,
                    {
                        "WSet_SF": 0,
                        "WSetPct_SF": -1,
                        "WSetEna": 0,
                        "WSetMod": 1,
                        "WSet": 0,
                        "WSetRvrtTms": 0,
                    },
                ),
                models[-1],
            ]
        models += [der_model(mid) for mid in der_models]
        self.revert_at = math.inf
        """When the device drops its storage control by itself (its revert timer)."""
        super().__init__(models, clock)
        self.refresh()

    def written(self, model: Any) -> None:
        """Rates written with a revert time lapse by themselves after it (0: never)."""
        if model.model_id == 124:
            t = model.InOutWRte_RvrtTms.value or 0
            active = int(model.StorCtl_Mod.value or 0) != 0
            self.revert_at = self.clock() + t if t and active else math.inf
        elif model.model_id == 704:
            t = model.WSetRvrtTms.value or 0
            active = model.WSetEna.value == 1
            self.revert_at = self.clock() + t if t and active else math.inf

    @property
    def requested_kw(self) -> float:
        """The power the controls ask for now [kW], generator sign (own control without)."""
        if self.flavour == "7xx":
            c = self.model(704)
            if self.clock() >= self.revert_at:  # the device's own fail-safe
                c.WSetEna.value = 0
                self.revert_at = math.inf
            if c.WSetEna.value != 1:
                return self.own_p_kw
            if c.WSetMod.value == 1:
                return (_val(c.WSet) or 0.0) / 1000.0
            return self.p_max_kw * (_val(c.WSetPct) or 0.0) / 100.0
        m = self.model(124)
        if self.clock() >= self.revert_at:  # the device's own fail-safe
            m.StorCtl_Mod.value = 0
            self.revert_at = math.inf
        mode = int(m.StorCtl_Mod.value or 0)
        base = _val(m.WChaMax) or 0.0
        if mode & _STORCTL_DISCHARGE:
            return base * (_val(m.OutWRte) or 0.0) / 100.0 / 1000.0
        if mode & _STORCTL_CHARGE:
            return -base * (_val(m.InWRte) or 0.0) / 100.0 / 1000.0
        return self.own_p_kw

    @property
    def reserve(self) -> float:
        """The backup reserve the SoC is kept above [0..1]."""
        if self.flavour == "7xx":
            return self._reserve
        return (_val(self.model(124).MinRsvPct) or 0.0) / 100.0

    def advance(self, dt_s: float) -> None:
        """Move the state of charge on by ``dt_s`` at the requested power."""
        soc, p = battery_step(
            np.array([self.soc]),
            np.array([self.requested_kw]),
            dt_s / 3600.0,
            self.e_kwh,
            self.p_max_kw,
            self.p_max_kw,
            self.eta,
            self.eta,
            self.reserve,
            1.0,
        )
        self.soc = float(soc[0])
        self.p_kw = float(p[0])

    def refresh(self) -> None:
        """Physics state → point values."""
        # the power a step from now would have, so a write shows at once on the next read
        _, p = battery_step(
            np.array([self.soc]),
            np.array([self.requested_kw]),
            1.0 / 3600.0,
            self.e_kwh,
            self.p_max_kw,
            self.p_max_kw,
            self.eta,
            self.eta,
            self.reserve,
            1.0,
        )
        self.p_kw = float(p[0])
        w = round(self.p_kw * 1000.0)
        self.model(802).W.cvalue = w
        self.model(802).SoC.cvalue = round(self.soc * 1000.0) / 10.0
        if self.flavour == "7xx":
            self.model(701).W.cvalue = w
            return
        self.model(103).W.cvalue = w
        self.model(124).ChaState.cvalue = round(self.soc * 1000.0) / 10.0
        self.model(124).ChaSt.value = 4 if w > 0 else (6 if w < 0 else 3)

    def check_write(self, model: Any) -> str | None:
        """Refuse control values outside the points' ranges."""
        if model.model_id == 124:
            for name in ("OutWRte", "InWRte"):
                v = _val(getattr(model, name))
                if v is not None and not -100.0 <= v <= 100.0:
                    return f"{name} {v} outside -100..100 %"
            w = _val(model.WChaMax)
            if w is not None and not 0.0 <= w <= self.p_max_kw * 1000.0:
                return f"WChaMax {w} W above the rating"
        if model.model_id == 704:
            w = _val(model.WSet)
            if w is not None and abs(w) > self.p_max_kw * 1000.0:
                return f"WSet {w} W beyond the rating"
            pct = _val(model.WSetPct)
            if pct is not None and not -100.0 <= pct <= 100.0:
                return f"WSetPct {pct} outside -100..100 %"
        return None


class MeterUnit(SunSpecUnit):
    """A site meter (model 203): ``W`` = house load - the site's units' output [W].

    SunSpec meters count power imported from the grid as positive.
    """

    def __init__(
        self,
        units: Sequence[SunSpecUnit],
        *,
        load_kw: Callable[[float], float] = lambda t: 0.5,
        clock: Callable[[], float] = time.time,
        serial: str = "MTR-0001",
    ) -> None:
        self.units = list(units)
        self.load_kw = load_kw
        models = [
            _model(1, {"Mn": "Gridflock", "Md": "Meter twin", "SN": serial, "DA": 1}),
            _model(203, {"W_SF": 0, "Hz_SF": -2, "V_SF": -1, "A_SF": -2, "W": 0, "Hz": 50.0}),
        ]
        super().__init__(models, clock)
        self.refresh()

    def refresh(self) -> None:
        """Physics state → point values."""
        for u in self.units:
            u.step()
        net_export = sum(u.p_kw for u in self.units) - float(self.load_kw(self.clock()))
        self.p_kw = net_export
        self.model(203).W.cvalue = round(-net_export * 1000.0)


class SunSpecServer:
    """A Modbus TCP server on ``host:port`` carrying ``units`` (unit id → unit)."""

    def __init__(
        self, units: dict[int, SunSpecUnit], host: str = "127.0.0.1", port: int = 0
    ) -> None:
        if not units:
            raise ValueError("a SunSpec server needs at least one unit")
        for uid in units:
            if not 1 <= uid <= 247:
                raise ValueError(f"unit id {uid} outside 1..247")
        self.units = dict(units)
        self.host = host
        self.port = port
        self._server: Any = None  # pymodbus ModbusTcpServer (untyped)

    async def start(self) -> None:
        """Listen (``port`` 0 is not allowed by pymodbus: give a free port)."""
        devices = [u.device(uid) for uid, u in self.units.items()]
        self._server = ModbusTcpServer(devices, address=(self.host, self.port))
        await self._server.serve_forever(background=True)

    async def stop(self) -> None:
        """Stop listening and close the connections."""
        if self._server is not None:
            await self._server.shutdown()
            self._server = None
        await asyncio.sleep(0)


def clear_sky(t: float, peak_w_m2: float = 900.0, noon_utc_h: float = 12.0) -> float:
    """A simple clear-sky day [W/m²]: a sine from 06:00 to 18:00 around ``noon_utc_h``."""
    h = (t / 3600.0) % 24.0
    x = (h - noon_utc_h + 6.0) / 12.0
    return peak_w_m2 * math.sin(math.pi * x) if 0.0 < x < 1.0 else 0.0
