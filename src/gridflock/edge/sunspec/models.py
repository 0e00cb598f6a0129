"""The SunSpec models the edge gateway reads and writes, and what it does with each."""

from __future__ import annotations

__all__ = [
    "BATTERY_CONTROL",
    "DER_CONTROL_MODELS",
    "INVERTER_READ",
    "METER_READ",
    "PV_CONTROL",
    "SUPPORTED_MODELS",
]

#: Inverter power ``W`` (AC, > 0 delivered), preferred first.
INVERTER_READ = (103, 102, 101, 701)
#: Meter power ``W`` (> 0 imported from the grid, unless configured otherwise).
METER_READ = (203, 204, 201, 202)
#: State of charge: model 124 ``ChaState`` or model 802 ``SoC`` [%].
SOC_READ = (802, 124)
#: Active power limit of PV inverters: model 123 ``WMaxLimPct`` or model 704 ``WMaxLimPct``.
PV_CONTROL = (123, 704)
#: Storage charge/discharge: model 124 ``StorCtl_Mod`` with ``InWRte`` / ``OutWRte``, else
#: model 704 ``WSetEna`` / ``WSetMod`` / ``WSet`` (W, > 0 discharge).
BATTERY_CONTROL = (124, 704)
#: The DER control models: 704 (limits, setpoints), 705 volt-var, 706 volt-watt, 711 droop.
DER_CONTROL_MODELS = (704, 705, 706, 711)
#: Ratings: model 120 ``WRtg``, model 702 ``WMaxRtg``.
RATING_READ = (120, 702)

#: Every model the gateway understands, with what it takes from it.
SUPPORTED_MODELS: dict[int, str] = {
    1: "common: manufacturer, model, serial number (read)",
    101: "single-phase inverter: W (read)",
    102: "split-phase inverter: W (read)",
    103: "three-phase inverter: W (read)",
    120: "nameplate: WRtg, the power rating (read)",
    123: "immediate controls: WMaxLimPct, WMaxLim_Ena, WMaxLimPct_RvrtTms (write)",
    124: "basic storage controls: ChaState (read); StorCtl_Mod, InWRte, OutWRte, "
    "InOutWRte_RvrtTms (write)",
    201: "single-phase meter: W (read)",
    202: "split-phase meter: W (read)",
    203: "three-phase wye meter: W (read)",
    204: "three-phase delta meter: W (read)",
    701: "DER AC measurement: W (read)",
    702: "DER capacity: WMaxRtg (read)",
    704: "DER AC controls: WMaxLimPctEna, WMaxLimPct, WMaxLimPctRvrtTms (PV); WSetEna, "
    "WSetMod, WSet, WSetRvrtTms (batteries) (write)",
    705: "DER volt-var: a curve from the grid code, % VNom / % VarMax, adopted, Ena (write)",
    706: "DER volt-watt: a curve from the grid code, % VNom / % WMax, adopted, Ena (write)",
    711: "DER frequency droop: DbOf, DbUf [Hz], KOf, KUf, RspTms, adopted, Ena (write)",
    802: "battery base model: SoC (read)",
}
