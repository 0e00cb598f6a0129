"""Device kinds, each declared once: attributes, state columns, telemetry and power band.

Every attribute a fleet file may give for a device, site or grid node is declared here
with its unit, default, bounds and meaning, and each device kind by one
:class:`~gridflock.domain.kind_registry.KindDecl`: validation (``domain.spec``), the
CSV/YAML formats (``fleet.files``), ``docs/fleet-files.md``, the fleet state's columns,
the telemetry extras and the kind's power band (``domain.bands``, from which
``fleet.flexibility`` derives up and down flexibility) all follow from it. A new kind is
one more declaration (``declare_kind``) plus its physics in the twin.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import pandas as pd

from gridflock.domain import bands
from gridflock.domain.attributes import Attr
from gridflock.domain.kind_registry import (
    KIND_ATTRS,
    Band,
    Derive,
    DeviceKind,
    KindDecl,
    Rule,
    declare_kind,
    kind_decl,
    kind_decls,
    telemetry_extras,
    telemetry_extras_text,
    withdraw_kind,
)
from gridflock.domain.messages import FloatArray

__all__ = [
    "BUILT_IN",
    "DEVICE_COMMON",
    "DEVICE_PROTOCOLS",
    "GRID_NODE_ATTRS",
    "KIND_ATTRS",
    "PROTOCOL_CARRIER",
    "SITE_ATTRS",
    "Band",
    "Derive",
    "DeviceKind",
    "GridNodeKind",
    "KindDecl",
    "Rule",
    "declare_kind",
    "device_attrs",
    "kind_decl",
    "kind_decls",
    "telemetry_extras",
    "telemetry_extras_text",
    "withdraw_kind",
]


class GridNodeKind(StrEnum):
    """Kinds of grid node a site hangs from."""

    FEEDER = "feeder"
    TRANSFORMER = "transformer"
    SUBSTATION = "substation"


# ------------------------------------------------------------------------------------
# The built-in kinds


def _pv_max_kw(table: pd.DataFrame) -> FloatArray:
    """Largest AC output of a PV system [kW]: peak DC power net of system losses."""
    return (table["kwp"] * (1 - table["loss_fraction"])).to_numpy(dtype=np.float64)


def _tank_kwh_per_k(table: pd.DataFrame) -> FloatArray:
    """Heat capacity of a water heater's tank [kWh/K]."""
    return table["volume_l"].to_numpy(dtype=np.float64) * bands.WATER_KWH_PER_L_K


_HEAT_PUMP_EXTRAS = (
    Attr("t_in_c", "float", "degC", "indoor temperature"),
    Attr("t_out_c", "float", "degC", "outdoor temperature"),
    Attr("cop", "float", "1", "current coefficient of performance"),
    Attr(
        "gain_kw",
        "float",
        "kW",
        "heat gains of the house from sun, people and appliances, thermal",
    ),
    Attr("cooling", "float", "1", "1 while the heat pump cools, 0 while it heats"),
)

BUILT_IN: tuple[KindDecl, ...] = (
    KindDecl(
        "battery",
        "Stationary battery behind the meter, on self-consumption unless dispatched.",
        (
            Attr("e_kwh", "float", "kWh", "Usable energy capacity.", None, 0.0, 10_000, True),
            Attr(
                "p_charge_max_kw", "float", "kW", "Maximum charging power.", None, 0.0, 10_000, True
            ),
            Attr(
                "p_discharge_max_kw",
                "float",
                "kW",
                "Maximum discharging power.",
                None,
                0.0,
                10_000,
                True,
            ),
            Attr("eta_charge", "float", "1", "Charging efficiency.", 0.95, 0.0, 1.0, True),
            Attr("eta_discharge", "float", "1", "Discharging efficiency.", 0.95, 0.0, 1.0, True),
            Attr(
                "soc_min", "float", "1", "Lowest state of charge the battery may reach.", 0.05, 0, 1
            ),
            Attr(
                "soc_max", "float", "1", "Highest state of charge the battery may reach.", 1.0, 0, 1
            ),
            Attr(
                "soc_reserve",
                "float",
                "1",
                "Backup reserve kept for the customer: the VPP never discharges below it.",
                0.2,
                0,
                1,
            ),
            Attr(
                "soc_initial",
                "float",
                "1",
                "State of charge at the start of a simulation.",
                0.5,
                0,
                1,
            ),
        ),
        columns={"p_gen_max_kw": "p_discharge_max_kw", "p_load_max_kw": "p_charge_max_kw"},
        reports_soc=True,
        rules=(
            ("soc_min", "soc_max", "soc_min must not exceed soc_max"),
            ("soc_min", "soc_reserve", "soc_reserve must be at least soc_min"),
            ("soc_reserve", "soc_max", "soc_reserve must not exceed soc_max"),
            ("soc_min", "soc_initial", "soc_initial must be at least soc_min"),
            ("soc_initial", "soc_max", "soc_initial must not exceed soc_max"),
        ),
        band=bands.battery_band,
        follows_site=True,
    ),
    KindDecl(
        "pv",
        "Photovoltaic system; flexible downwards by curtailment.",
        (
            Attr("kwp", "float", "kWp", "Peak DC power of the array.", None, 0.0, 100_000, True),
            Attr("tilt_deg", "float", "deg", "Tilt from horizontal.", 30.0, 0, 90),
            Attr(
                "azimuth_deg",
                "float",
                "deg",
                "Azimuth, clockwise from north (180 = south).",
                180.0,
                0,
                360,
            ),
            Attr(
                "loss_fraction",
                "float",
                "1",
                "System losses (wiring, inverter, soiling).",
                0.14,
                0,
                0.9,
            ),
            Attr(
                "curtailable", "bool", "", "Whether the inverter accepts export curtailment.", True
            ),
        ),
        columns={"p_gen_max_kw": _pv_max_kw},
        band=bands.renewable_band,
    ),
    KindDecl(
        "wind",
        "Small wind turbine; flexible downwards by curtailment.",
        (
            Attr("rated_kw", "float", "kW", "Rated electrical power.", None, 0.0, 100_000, True),
            Attr("hub_height_m", "float", "m", "Hub height above ground.", 18.0, 1.0, 300),
            Attr(
                "turbine_type",
                "str",
                "",
                "windpowerlib turbine whose normalised power curve is scaled to rated_kw.",
                "E-53/800",
            ),
            Attr("curtailable", "bool", "", "Whether the turbine accepts curtailment.", True),
        ),
        columns={"p_gen_max_kw": "rated_kw"},
        band=bands.renewable_band,
    ),
    KindDecl(
        "ev_charger",
        "Electric-vehicle charger; charging deferred or advanced within the session.",
        (
            Attr("p_max_kw", "float", "kW", "Maximum charging power.", 11.0, 0.0, 1_000, True),
            Attr(
                "p_min_kw",
                "float",
                "kW",
                "Minimum charging power while charging (6 A).",
                1.4,
                0.0,
                1_000,
            ),
            Attr("phases", "int", "", "Number of phases.", 3, 1, 3),
            Attr(
                "eta",
                "float",
                "1",
                "Charging efficiency, grid to car battery.",
                0.92,
                0.0,
                1.0,
                True,
            ),
            Attr(
                "arrival_hour",
                "float",
                "h",
                "Typical local hour the car plugs in (sessions vary around it).",
                18.0,
                0,
                24,
            ),
            Attr(
                "departure_hour",
                "float",
                "h",
                "Typical local hour the car must be ready.",
                7.5,
                0,
                24,
            ),
            Attr("session_kwh", "float", "kWh", "Typical energy a session needs.", 12.0, 0.0, 200),
            Attr(
                "ocpp_connector",
                "int",
                "",
                "With protocol ocpp: the connector (OCPP 1.6) or EVSE (2.0.1) id of the "
                "charge point named by gateway_id.",
                1,
                1,
                64,
            ),
        ),
        columns={"p_load_max_kw": "p_max_kw"},
        extras=(
            Attr("e_need_kwh", "float", "kWh", "energy the plugged-in car still needs"),
            Attr("departure_ts", "float", "UTC epoch s", "time the car leaves"),
        ),
        rules=(("p_min_kw", "p_max_kw", "p_min_kw must not exceed p_max_kw"),),
        band=bands.ev_charger_band,
    ),
    KindDecl(
        "heat_pump",
        "Heat pump (heating, and cooling if reversible) in a house with thermal inertia.",
        (
            Attr(
                "p_elec_max_kw", "float", "kW", "Maximum electrical input.", None, 0.0, 1_000, True
            ),
            Attr(
                "cop_nominal",
                "float",
                "1",
                "COP at 7 degC outdoor (heating) / 35 degC (cooling).",
                3.5,
                1.0,
                8.0,
            ),
            Attr(
                "ua_kw_per_k",
                "float",
                "kW/K",
                "Heat loss coefficient of the house.",
                0.15,
                0.0,
                10,
                True,
            ),
            Attr(
                "c_kwh_per_k",
                "float",
                "kWh/K",
                "Thermal capacitance of the house.",
                6.0,
                0.0,
                1_000,
                True,
            ),
            Attr(
                "t_min_c",
                "float",
                "degC",
                "Lower edge of the customer's comfort band.",
                19.0,
                5,
                35,
            ),
            Attr(
                "t_max_c",
                "float",
                "degC",
                "Upper edge of the customer's comfort band.",
                26.0,
                5,
                40,
            ),
            Attr("t_heat_c", "float", "degC", "Thermostat setpoint when heating.", 21.0, 5, 35),
            Attr("t_cool_c", "float", "degC", "Thermostat setpoint when cooling.", 24.0, 5, 40),
            Attr(
                "can_cool",
                "bool",
                "",
                "Whether the heat pump is reversible (air conditioning).",
                True,
            ),
        ),
        columns={"p_load_max_kw": "p_elec_max_kw"},
        extras=_HEAT_PUMP_EXTRAS,
        rules=(
            ("t_min_c", "t_max_c", "t_min_c must be below t_max_c"),
            ("t_min_c", "t_heat_c", "t_heat_c must lie in the comfort band"),
            ("t_cool_c", "t_max_c", "t_cool_c must lie in the comfort band"),
        ),
        band=bands.heat_pump_band,
    ),
    KindDecl(
        "water_heater",
        "Electric water heater; its tank stores heat between two temperatures.",
        (
            Attr("volume_l", "float", "l", "Tank volume.", 200.0, 0.0, 10_000, True),
            Attr("p_element_kw", "float", "kW", "Heating element power.", 3.0, 0.0, 100, True),
            Attr("t_min_c", "float", "degC", "Lowest allowed tank temperature.", 45.0, 10, 95),
            Attr("t_max_c", "float", "degC", "Highest allowed tank temperature.", 75.0, 10, 95),
            Attr("t_set_c", "float", "degC", "Thermostat setpoint.", 58.0, 10, 95),
            Attr(
                "daily_draw_kwh",
                "float",
                "kWh",
                "Hot water drawn per day, as heat.",
                6.0,
                0.0,
                500,
            ),
            Attr("loss_kw_per_k", "float", "kW/K", "Standing loss coefficient.", 0.0015, 0.0, 1),
        ),
        columns={"p_load_max_kw": "p_element_kw", "tank_kwh_per_k": _tank_kwh_per_k},
        extras=(
            Attr("t_tank_c", "float", "degC", "tank temperature"),
            Attr("draw_kw", "float", "kW", "hot water drawn, as heat"),
        ),
        rules=(
            ("t_min_c", "t_max_c", "t_min_c must be below t_max_c"),
            ("t_min_c", "t_set_c", "t_set_c must lie in [t_min_c, t_max_c]"),
            ("t_set_c", "t_max_c", "t_set_c must lie in [t_min_c, t_max_c]"),
        ),
        band=bands.water_heater_band,
    ),
    KindDecl(
        "load",
        "Household base load: measured, never commanded.",
        (
            Attr(
                "annual_kwh",
                "float",
                "kWh",
                "Annual consumption of the household base load.",
                3500.0,
                0.0,
                10_000_000,
            ),
        ),
        controllable=False,
    ),
)

for _decl in BUILT_IN:
    declare_kind(_decl)

DeviceKind.BATTERY = DeviceKind("battery")
DeviceKind.PV = DeviceKind("pv")
DeviceKind.WIND = DeviceKind("wind")
DeviceKind.EV_CHARGER = DeviceKind("ev_charger")
DeviceKind.HEAT_PUMP = DeviceKind("heat_pump")
DeviceKind.WATER_HEATER = DeviceKind("water_heater")
DeviceKind.LOAD = DeviceKind("load")


SITE_ATTRS: tuple[Attr, ...] = (
    Attr("id", "str", "", "Unique site id."),
    Attr("lat", "float", "deg", "Latitude (WGS84).", None, -90, 90),
    Attr("lon", "float", "deg", "Longitude (WGS84).", None, -180, 180),
    Attr("tz", "str", "", "IANA time zone for local-time preferences and display.", "UTC"),
    Attr("grid_node", "str", "", "Id of the grid node (feeder) the site is connected to."),
    Attr("import_limit_kw", "float", "kW", "Connection import limit.", 25.0, 0.0, 100_000, True),
    Attr("export_limit_kw", "float", "kW", "Connection export limit.", 25.0, 0.0, 100_000),
    Attr("program", "str", "", "Programme tag, usable as a dispatch scope.", ""),
    Attr("region", "str", "", "Region tag, usable as a dispatch scope.", ""),
    Attr("opt_out", "bool", "", "Customer opted out: never dispatched.", False),
    Attr(
        "grid_code",
        "str",
        "",
        "Grid code the site connects under (e.g. DE-VDE4105, GB-G99; docs/grid-codes.md); "
        "empty: from its position.",
        "",
    ),
)

GRID_NODE_ATTRS: tuple[Attr, ...] = (
    Attr("id", "str", "", "Unique grid node id."),
    Attr(
        "kind",
        "str",
        "",
        "Node kind: " + ", ".join(k.value for k in GridNodeKind) + ".",
        GridNodeKind.FEEDER.value,
    ),
    Attr("parent", "str", "", "Id of the upstream node (empty for a root).", ""),
    Attr(
        "limit_import_kw",
        "float",
        "kW",
        "Largest power the node may carry towards its sites (site import).",
        None,
        0.0,
        1e9,
        True,
    ),
    Attr(
        "limit_export_kw",
        "float",
        "kW",
        "Largest power the node may carry away from its sites (site export).",
        None,
        0.0,
        1e9,
        True,
    ),
)

#: Attributes every device has, whatever its kind.
DEVICE_COMMON: tuple[Attr, ...] = (
    Attr("id", "str", "", "Unique device id."),
    Attr("site_id", "str", "", "Site the device is installed at."),
    Attr("kind", "str", "", "Device kind: " + ", ".join(d.name for d in BUILT_IN) + "."),
    Attr("gateway_id", "str", "", "Gateway the device talks through (default: the site's).", ""),
    Attr(
        "cost_per_kwh",
        "float",
        "EUR/kWh",
        "Cost of one kWh of flexibility from this device, for merit-order dispatch.",
        0.0,
        0.0,
    ),
    Attr(
        "protocol",
        "str",
        "",
        "How the service reaches the device: mqtt (a Gridflock gateway), edge (a SunSpec "
        "Modbus or S2 device behind a Gridflock edge gateway, over MQTT), ocpp (a charger "
        "speaking OCPP to the service; ev_charger only) or twin (the in-process twin).",
        "mqtt",
    ),
)

#: Values the ``protocol`` attribute may take.
DEVICE_PROTOCOLS = ("mqtt", "edge", "ocpp", "twin")

#: The link that carries a protocol's devices when it has no link of its own: an edge
#: gateway speaks device protocol v1 over MQTT.
PROTOCOL_CARRIER = {"edge": "mqtt"}


def device_attrs(kind: str) -> tuple[Attr, ...]:
    """All attributes of a device of ``kind``: the common ones then its capability model."""
    return DEVICE_COMMON + kind_decl(kind).attrs
