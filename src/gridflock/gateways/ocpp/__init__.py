"""The OCPP back end (CSMS) for EV chargers: OCPP 1.6J and 2.0.1 over websockets.

See docs/ocpp.md. Public: :class:`OcppLink` (a :class:`~gridflock.domain.ports.DeviceLink`)
with :class:`OcppSettings`, the credential helpers, and the profile arithmetic the
simulated chargers share.
"""

from gridflock.gateways.ocpp._auth import (
    CredentialSource,
    MemoryCredentials,
    parse_basic,
    verify_password,
)
from gridflock.gateways.ocpp._meter import MeterError, MeterReading, read_sampled
from gridflock.gateways.ocpp._profiles import (
    NOMINAL_VOLTAGE_V,
    Period,
    Profile,
    Unit,
    active_limit,
    composite_periods,
    iso,
    kw_to_limit,
    limit_to_kw,
    parse_iso,
    profile_from_wire,
    profile_to_wire,
)
from gridflock.gateways.ocpp._session import Place, places_of
from gridflock.gateways.ocpp.link import SUBPROTOCOLS, OcppLink, OcppSettings

__all__ = [
    "NOMINAL_VOLTAGE_V",
    "SUBPROTOCOLS",
    "CredentialSource",
    "MemoryCredentials",
    "MeterError",
    "MeterReading",
    "OcppLink",
    "OcppSettings",
    "Period",
    "Place",
    "Profile",
    "Unit",
    "active_limit",
    "composite_periods",
    "iso",
    "kw_to_limit",
    "limit_to_kw",
    "parse_basic",
    "parse_iso",
    "places_of",
    "profile_from_wire",
    "profile_to_wire",
    "read_sampled",
    "verify_password",
]
