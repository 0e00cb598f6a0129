"""The SunSpec Modbus TCP driver: reads inverters, batteries and meters, writes their controls.

At :meth:`SunSpecDriver.start` every device is scanned (pysunspec2 discovery) and checked:
the models it must offer (config ``models``), a model to read its power from, and, for
PV inverters and batteries, a control model and a rating. Each poll reads only the models
it needs; a device that stops answering is left out of the readings (and logged once)
until it answers again.

Controls (kW, generator sign, clipped to the device's ranges; the result says so):

- **PV** (``kind: pv``): a setpoint is an export cap, written as ``WMaxLimPct`` of the
  rating (model 123 with ``WMaxLim_Ena``, or model 704 with ``WMaxLimPctEna``), and a
  revert timer (``WMaxLimPct_RvrtTms``) of the command's remaining lifetime where the
  device offers one, so the device reverts by itself even if the gateway dies;
- **battery** (``kind: battery``): model 124, ``StorCtl_Mod`` = discharge with
  ``OutWRte`` (p > 0) or charge with ``InWRte`` (p < 0), both in % of ``WChaMax``; or,
  without model 124, model 704's ``WSet`` in W (``WSetMod`` = watts, ``WSetEna``);
- **meter**: takes no setpoints (``not_controllable``).

DER curves (``grid_code`` / ``der_curves`` in the entry): at start and again whenever a
device answers after a silence, the volt-var, volt-watt and frequency-droop settings are
written to models 705, 706 and 711 where the device offers them and read back
(:mod:`gridflock.edge.sunspec.der_write`), then read back every ``der_check_s`` and
written again where the device changed them (a reset, another tool);
:meth:`SunSpecDriver.der_outcomes` says what each model got. A missing model or a refused
curve is logged; the others still go.

Release (safe mode ``own_control``) clears the enable bits (``WMaxLim_Ena`` /
``WMaxLimPctEna`` = 0, ``StorCtl_Mod`` = 0); safe mode ``zero`` holds 0 kW instead.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gridflock.edge.config import SunSpecDevice
from gridflock.edge.der import DerSettings, pushed_der_settings
from gridflock.edge.driver import ApplyResult, DeviceReading, DriverError, SettingsResult
from gridflock.edge.sunspec._transport import PymodbusSunSpecDevice, SunSpecModbusClientError
from gridflock.edge.sunspec.der_write import DerOutcome, write_der
from gridflock.edge.sunspec.models import (
    BATTERY_CONTROL,
    INVERTER_READ,
    METER_READ,
    PV_CONTROL,
    RATING_READ,
    SOC_READ,
)
from gridflock.gateways.mqtt.protocol import MAX_P_KW, DeviceSettings

__all__ = ["SunSpecDriver"]

log = logging.getLogger(__name__)

_CHARGE, _DISCHARGE = 1, 2
#: Tolerance before a setpoint counts as clipped [kW].
_CLIP_TOL_KW = 1e-3
#: Longest revert timer written to a device [s] (a uint16 register; 0xFFFF means "none").
_MAX_RVRT_S = 65_534


def _first(models: dict[int, Any], ids: Sequence[int]) -> tuple[int, Any] | None:
    for mid in ids:
        if mid in models:
            return mid, models[mid]
    return None


def _num(point: Any) -> float:
    """A point's computed value (scale factor applied) [its unit]; NaN when not implemented."""
    v = point.cvalue
    return math.nan if v is None else float(v)


@dataclass
class _Dev:
    cfg: SunSpecDevice
    link: PymodbusSunSpecDevice
    models: dict[int, Any] = field(default_factory=dict)
    rating_kw: float = math.nan
    next_due: float = 0.0
    reachable: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)
    der: list[DerOutcome] = field(default_factory=list)
    der_due: float = math.inf
    pushed: DerSettings | None = None
    """Settings the service pushed; they replace the configuration's once verified."""

    def der_settings(self) -> DerSettings | None:
        """The DER settings in force: the service's last pushed ones, else the configuration's."""
        return self.pushed if self.pushed is not None else self.cfg.der_settings()


class SunSpecDriver:
    """The site's SunSpec Modbus TCP devices behind one :class:`LocalDriver`."""

    name = "sunspec"

    def __init__(
        self,
        devices: Sequence[SunSpecDevice],
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        read_wait_s: float = 1.0,
        der_check_s: float = 300.0,
    ) -> None:
        self.clock = clock
        self.monotonic = monotonic
        self.read_wait_s = read_wait_s
        """How long :meth:`read` waits for slow devices [s]; they report on a later call."""
        self.der_check_s = der_check_s
        """How often the DER curves are read back and, where they changed, written again [s]."""
        self._inflight: dict[str, asyncio.Future[DeviceReading | None]] = {}
        self._devs: dict[str, _Dev] = {
            d.id: _Dev(d, PymodbusSunSpecDevice(d.host, d.port, d.unit, d.timeout_s))
            for d in devices
        }

    @property
    def device_ids(self) -> Sequence[str]:
        """The Gridflock ids of the configured devices."""
        return list(self._devs)

    def rating_kw(self, device_id: str) -> float:
        """The power rating the driver clips to [kW] (NaN for meters)."""
        return self._devs[device_id].rating_kw

    def der_outcomes(self, device_id: str) -> list[DerOutcome]:
        """What the last DER write gave per model 705/706/711 (empty: none asked for)."""
        return list(self._devs[device_id].der)

    # ------------------------------------------------------------------ start
    async def start(self) -> None:
        """Scan every device and check it can do what its entry says; DriverError lists all."""
        problems = await asyncio.gather(
            *(asyncio.to_thread(self._start_one, d) for d in self._devs.values())
        )
        bad = [p for p in problems if p]
        if bad:
            for d in self._devs.values():
                d.link.close()
            raise DriverError("; ".join(bad))

    def _start_one(self, d: _Dev) -> str | None:
        """Scan and check one device; the problem as a sentence, None when fine."""
        c = d.cfg
        where = f"device {c.id} ({c.host}:{c.port} unit {c.unit})"
        try:
            with d.lock:
                d.link.scan(connect=False)
        except SunSpecModbusClientError as e:
            if "cannot connect" in str(e):
                return (
                    f"{where}: no SunSpec device found: cannot connect; check the host, the "
                    "port and that Modbus TCP is enabled on the device"
                )
            return (
                f"{where}: no SunSpec device found: no SunSpec map at 40000, 0 or 50000; "
                f"check the unit id ({_short(e)})"
            )
        d.models = {int(k): v[0] for k, v in d.link.models.items() if isinstance(k, int)}
        found = sorted(d.models)
        missing = [m for m in c.models if m not in d.models]
        if missing:
            return f"{where}: lacks SunSpec model(s) {missing} of the configuration (has {found})"
        read_ids = METER_READ if c.kind == "meter" else INVERTER_READ
        if _first(d.models, read_ids) is None and not (c.kind == "battery" and 802 in d.models):
            return f"{where}: no model to read its power from ({list(read_ids)}); has {found}"
        if c.kind == "pv" and _first(d.models, PV_CONTROL) is None:
            return f"{where}: no power-limit control (model 123 or 704); has {found}"
        if c.kind == "battery":
            if _first(d.models, BATTERY_CONTROL) is None:
                return f"{where}: no storage control (model 124 or 704); has {found}"
            if _first(d.models, SOC_READ) is None:
                return f"{where}: no state of charge (model 124 or 802); has {found}"
        if c.kind != "meter":
            d.rating_kw = self._rating(d)
            if d.rating_kw > MAX_P_KW:
                return (
                    f"{where}: declares a rating of {d.rating_kw:.6g} kW, beyond "
                    f"{MAX_P_KW:g} kW; give p_max_kw in the configuration"
                )
            if not d.rating_kw > 0:
                return (
                    f"{where}: declares no power rating (model 120 WRtg, 702 WMaxRtg or 124 "
                    "WChaMax); give p_max_kw in the configuration"
                )
        self._write_der(d)
        return None

    def _write_der(self, d: _Dev) -> None:
        """Write the device's grid-code curves (call with its lock held or before polling)."""
        settings = d.der_settings()
        if settings is None:
            return
        where = f"device {d.cfg.id} ({d.link.where()})"
        with d.lock:
            d.der = write_der(d.models, settings, where)
        d.der_due = self.monotonic() + self.der_check_s

    def _check_der(self, d: _Dev) -> None:
        """Read the verified DER curves back; write them again where the device changed them."""
        settings = d.der_settings()
        if settings is None or self.monotonic() < d.der_due:
            return
        d.der_due = self.monotonic() + self.der_check_s
        where = f"device {d.cfg.id} ({d.link.where()})"
        with d.lock:
            now = write_der(d.models, settings, where, write=False)
        was = {o.model: o.status for o in d.der}
        changed = [
            o.model for o in now if was.get(o.model) == "verified" and o.status != "verified"
        ]
        if changed:
            log.warning(
                "%s: DER settings of model(s) %s changed on the device; writing them again",
                where,
                changed,
            )
            self._write_der(d)

    def _rating(self, d: _Dev) -> float:
        if d.cfg.p_max_kw is not None:
            return d.cfg.p_max_kw
        if d.cfg.kind == "battery" and 124 in d.models:
            w = _num(d.models[124].WChaMax)
            if w > 0:
                return w / 1000.0
        hit = _first(d.models, RATING_READ)
        if hit is not None:
            mid, m = hit
            w = _num(m.WRtg if mid == 120 else m.WMaxRtg)
            if w > 0:
                return w / 1000.0
        return math.nan

    # ------------------------------------------------------------------ read
    async def read(self) -> list[DeviceReading]:
        """Read the devices whose poll interval is due, each in its own worker thread.

        Waits at most ``read_wait_s`` for them: a slow or dead device (up to its
        ``timeout_s``) does not hold back the others; its reading comes with a later call.
        """
        now = self.monotonic()
        for d in self._devs.values():
            if d.next_due <= now and d.cfg.id not in self._inflight:
                d.next_due = now + d.cfg.poll_interval_s
                self._inflight[d.cfg.id] = asyncio.ensure_future(
                    asyncio.to_thread(self._read_one, d)
                )
        if self._inflight:
            await asyncio.wait(list(self._inflight.values()), timeout=self.read_wait_s)
        out = []
        for dev_id, fut in list(self._inflight.items()):
            if fut.done():
                del self._inflight[dev_id]
                r = fut.result()
                if r is not None:
                    out.append(r)
        return out

    def _read_one(self, d: _Dev) -> DeviceReading | None:
        c = d.cfg
        try:
            with d.lock:
                if not d.models:
                    d.link.scan(connect=False)
                    d.models = {
                        int(k): v[0] for k, v in d.link.models.items() if isinstance(k, int)
                    }
                reading = self._reading(d)
        except (SunSpecModbusClientError, OSError, KeyError, AttributeError) as e:
            if d.reachable:
                log.warning("device %s: not read: %s", c.id, _short(e))
            d.reachable = False
            return None
        if not d.reachable:
            log.info("device %s: answering again", c.id)
            d.reachable = True
            self._write_der(d)  # a device that restarted may have lost them
        d.reachable = True
        try:
            self._check_der(d)
        except (SunSpecModbusClientError, OSError) as e:
            log.warning("device %s: DER settings not checked: %s", c.id, _short(e))
        return reading

    def _reading(self, d: _Dev) -> DeviceReading:
        c = d.cfg
        ts = self.clock()
        soc = math.nan
        if c.kind == "meter":
            hit = _first(d.models, METER_READ)
            assert hit is not None
            m = hit[1]
            m.read()
            w = _num(m.W)
            p_kw = (-w if c.meter_import_positive else w) / 1000.0
        else:
            hit = _first(d.models, INVERTER_READ)
            if hit is None:  # a battery read through model 802 only
                hit = (802, d.models[802])
            m = hit[1]
            m.read()
            p_kw = _num(m.W) / 1000.0
            if c.kind == "battery":
                mid, sm = _first(d.models, SOC_READ)  # type: ignore[misc]
                if sm is not m:
                    sm.read()
                soc = _num(sm.SoC if mid == 802 else sm.ChaState) / 100.0
                if not -0.005 <= soc <= 1.005:  # rounding kept, garbage dropped
                    if d.reachable and math.isfinite(soc):
                        log.warning("device %s: state of charge %.6g %% ignored", c.id, soc * 100)
                    soc = math.nan
                soc = min(max(soc, 0.0), 1.0) if math.isfinite(soc) else math.nan
        if not math.isfinite(p_kw):
            raise SunSpecModbusClientError("power register not implemented (0x8000)")
        if abs(p_kw) > MAX_P_KW:
            raise SunSpecModbusClientError(
                f"power {p_kw:.6g} kW is beyond {MAX_P_KW:g} kW: a scale factor or wiring error"
            )
        return DeviceReading(c.id, ts, p_kw, soc)

    # ------------------------------------------------------------------ settings
    async def apply_settings(self, device_id: str, settings: DeviceSettings) -> SettingsResult:
        """Write pushed grid-code settings to models 705/706/711, read back, say what stuck.

        Accepted when at least one function was written and verified (the others are
        listed as the device left them: ``absent``, ``refused``, ``failed``); the pushed
        settings then replace the configuration's for the device's periodic check. A
        fast frequency product's droop (``ffr``) has no SunSpec model: the gateway holds it.
        """
        d = self._devs.get(device_id)
        if d is None:
            return SettingsResult("rejected", "unknown_device")
        if d.cfg.kind == "meter":
            return SettingsResult("unsupported", "no_der_functions", detail="a meter")
        try:
            der = pushed_der_settings(settings)
        except ValueError as e:
            return SettingsResult("rejected", "out_of_range", detail=str(e)[:500])
        where = f"device {d.cfg.id} ({d.link.where()})"

        def write() -> list[DerOutcome]:
            with d.lock:
                return write_der(d.models, der, where)

        try:
            outcomes = await asyncio.to_thread(write)
        except (SunSpecModbusClientError, OSError) as e:
            return SettingsResult("rejected", "device_error", detail=_short(e)[:500])
        names = {705: "volt_var", 706: "volt_watt", 711: "freq_watt"}
        adopted = {names[o.model]: o.status for o in outcomes}
        if settings.ffr is not None:
            adopted["ffr"] = "held"
        detail = "; ".join(f"{names[o.model]}: {o.detail}" for o in outcomes if o.detail)[:500]
        asked = [o for o in outcomes if o.status != "not_configured"]
        if any(o.status == "verified" for o in asked):
            d.pushed = der
            d.der = outcomes
            d.der_due = self.monotonic() + self.der_check_s
            return SettingsResult("accepted", None, adopted, detail)
        if asked and all(o.status == "absent" for o in asked):
            return SettingsResult("unsupported", "no_der_functions", adopted, detail)
        if not asked:
            return SettingsResult("accepted", None, adopted, detail)
        return SettingsResult("rejected", "not_adopted", adopted, detail)

    # ------------------------------------------------------------------ control
    async def apply(self, device_id: str, p_setpoint_kw: float, valid_until: float) -> ApplyResult:
        """Write a setpoint (clipped to the device's ranges; the result says so)."""
        d = self._devs.get(device_id)
        if d is None:
            return ApplyResult(device_id, False, "unknown_device")
        if d.cfg.kind == "meter":
            return ApplyResult(device_id, False, "not_controllable")
        if not math.isfinite(p_setpoint_kw):
            return ApplyResult(device_id, False, "out_of_range")
        lifetime = max(0.0, valid_until - self.clock())
        return await asyncio.to_thread(self._apply_one, d, p_setpoint_kw, lifetime)

    def _clip(self, d: _Dev, p_kw: float) -> tuple[float, str | None]:
        lo = 0.0 if d.cfg.kind == "pv" else -d.rating_kw
        hi = d.rating_kw
        q = min(max(p_kw, lo), hi)
        if abs(q - p_kw) > _CLIP_TOL_KW:
            return q, "clipped_to_range"
        return q, None

    def _apply_one(self, d: _Dev, p_kw: float, lifetime_s: float) -> ApplyResult:
        q, note = self._clip(d, p_kw)
        try:
            with d.lock:
                if d.cfg.kind == "pv":
                    self._write_pv_limit(d, q, lifetime_s)
                else:
                    self._write_storage(d, q, lifetime_s)
        except (SunSpecModbusClientError, OSError, ValueError) as e:
            log.warning("device %s: setpoint %.3f kW not written: %s", d.cfg.id, q, _short(e))
            return ApplyResult(d.cfg.id, False, "device_error")
        return ApplyResult(d.cfg.id, True, note, q)

    def _write_pv_limit(self, d: _Dev, q_kw: float, lifetime_s: float) -> None:
        pct = round(100.0 * q_kw / d.rating_kw, 1)
        rvrt = min(_MAX_RVRT_S, math.ceil(lifetime_s)) if lifetime_s > 0 else 0
        if 123 in d.models:
            m = d.models[123]
            m.WMaxLimPct.cvalue = pct
            if rvrt and m.WMaxLimPct_RvrtTms.value is not None:
                m.WMaxLimPct_RvrtTms.value = rvrt
            m.WMaxLim_Ena.value = 1
        else:
            m = d.models[704]
            m.WMaxLimPct.cvalue = pct
            if rvrt and m.WMaxLimPctRvrtTms.value is not None:
                m.WMaxLimPctRvrtTms.value = rvrt
            m.WMaxLimPctEna.value = 1
        m.write()

    def _write_storage(self, d: _Dev, q_kw: float, lifetime_s: float) -> None:
        rvrt = min(_MAX_RVRT_S, math.ceil(lifetime_s)) if lifetime_s > 0 else 0
        if 124 not in d.models:  # the DER model: a signed setpoint in W
            c = d.models[704]
            c.WSetMod.value = 1  # WATTS
            c.WSet.cvalue = round(q_kw * 1000.0)
            if rvrt and c.WSetRvrtTms.value is not None:
                c.WSetRvrtTms.value = rvrt
            c.WSetEna.value = 1
            c.write()
            return
        m = d.models[124]
        base_w = _num(m.WChaMax)
        if not base_w > 0:
            raise ValueError("WChaMax is 0 or not implemented: no rate can be set")
        pct = round(100.0 * abs(q_kw) * 1000.0 / base_w, 1)
        if q_kw >= 0:
            m.OutWRte.cvalue = pct
            m.InWRte.cvalue = 0.0
            m.StorCtl_Mod.value = _DISCHARGE
        else:
            m.InWRte.cvalue = pct
            m.OutWRte.cvalue = 0.0
            m.StorCtl_Mod.value = _CHARGE
        if rvrt and m.InOutWRte_RvrtTms.value is not None:
            m.InOutWRte_RvrtTms.value = rvrt
        m.write()

    async def release(self, device_id: str) -> None:
        """Put the device in its safe mode (own control, or 0 kW)."""
        d = self._devs.get(device_id)
        if d is None or d.cfg.kind == "meter":
            return
        if d.cfg.safe_mode == "zero":
            res = await asyncio.to_thread(self._apply_one, d, 0.0, 0.0)
            if not res.accepted:
                raise DriverError(f"device {device_id}: safe mode (0 kW) not written")
            return
        await asyncio.to_thread(self._release_one, d)

    def _release_one(self, d: _Dev) -> None:
        try:
            with d.lock:
                if d.cfg.kind == "pv":
                    if 123 in d.models:
                        m = d.models[123]
                        m.WMaxLim_Ena.value = 0
                    else:
                        m = d.models[704]
                        m.WMaxLimPctEna.value = 0
                elif 124 in d.models:
                    m = d.models[124]
                    m.StorCtl_Mod.value = 0
                else:
                    m = d.models[704]
                    m.WSetEna.value = 0
                m.write()
        except (SunSpecModbusClientError, OSError) as e:
            raise DriverError(f"device {d.cfg.id}: not released: {_short(e)}") from None

    async def close(self) -> None:
        """Release every device and close the Modbus links."""
        if self._inflight:
            await asyncio.wait(list(self._inflight.values()), timeout=5.0)
            self._inflight.clear()
        for dev_id in self._devs:
            try:
                await self.release(dev_id)
            except DriverError as e:
                log.warning("%s", e)
        for d in self._devs.values():
            d.link.close()


def _short(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= 300 else text[:297] + "..."
