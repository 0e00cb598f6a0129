"""Device physics of the digital twin as pure, vectorised step functions.

Every function takes NumPy arrays over devices (shape (n,), scalars broadcast) and returns
new arrays; none keeps state or loops over devices. Powers are magnitudes unless a
docstring says otherwise; the caller applies the generator sign convention.
"""

# Model constants and array aliases (``NAME as NAME``) stay reachable as ``physics.NAME``,
# as before the module became a package; only the functions are in ``__all__``.
from gridflock.sim.physics._battery import battery_step
from gridflock.sim.physics._solar import AZIMUTH_BIN_DEG as AZIMUTH_BIN_DEG
from gridflock.sim.physics._solar import ETA_INVERTER as ETA_INVERTER
from gridflock.sim.physics._solar import GAMMA_PDC as GAMMA_PDC
from gridflock.sim.physics._solar import TILT_BIN_DEG as TILT_BIN_DEG
from gridflock.sim.physics._solar import pv_profiles
from gridflock.sim.physics._thermal import COP_MAX as COP_MAX
from gridflock.sim.physics._thermal import COP_MIN as COP_MIN
from gridflock.sim.physics._thermal import MIN_LIFT_K as MIN_LIFT_K
from gridflock.sim.physics._thermal import T_RATED_COOL_C as T_RATED_COOL_C
from gridflock.sim.physics._thermal import T_RATED_HEAT_C as T_RATED_HEAT_C
from gridflock.sim.physics._thermal import T_SINK_COOL_C as T_SINK_COOL_C
from gridflock.sim.physics._thermal import T_SINK_HEAT_C as T_SINK_HEAT_C
from gridflock.sim.physics._thermal import WATER_KWH_PER_L_K as WATER_KWH_PER_L_K
from gridflock.sim.physics._thermal import (
    cop,
    heat_pump_mode,
    house_step,
    thermostat_heat_pump,
    thermostat_water_heater,
    water_heater_step,
)
from gridflock.sim.physics._types import ArrayLike as ArrayLike
from gridflock.sim.physics._types import BoolArray as BoolArray
from gridflock.sim.physics._types import FloatArray as FloatArray
from gridflock.sim.physics._types import IntArray as IntArray
from gridflock.sim.physics._usage import EV_ARRIVAL_WINDOW_H as EV_ARRIVAL_WINDOW_H
from gridflock.sim.physics._usage import EV_MIN_PLUGGED_H as EV_MIN_PLUGGED_H
from gridflock.sim.physics._usage import EV_NO_SESSION_SHARE as EV_NO_SESSION_SHARE
from gridflock.sim.physics._usage import EV_SESSION_KWH_BOUNDS as EV_SESSION_KWH_BOUNDS
from gridflock.sim.physics._usage import EV_SESSION_SIGMA as EV_SESSION_SIGMA
from gridflock.sim.physics._usage import ev_charge_kw, ev_sessions, water_draw_profile
from gridflock.sim.physics._wind import wind_power_curve, wind_power_kw

__all__ = [
    "battery_step",
    "cop",
    "ev_charge_kw",
    "ev_sessions",
    "heat_pump_mode",
    "house_step",
    "pv_profiles",
    "thermostat_heat_pump",
    "thermostat_water_heater",
    "water_draw_profile",
    "water_heater_step",
    "wind_power_curve",
    "wind_power_kw",
]
