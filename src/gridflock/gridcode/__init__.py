"""Country grid codes as data: profiles, which code each site has, and what they allow.

Profiles (``profiles/*.yaml``, validated by pydantic) declare each code's volt-var,
volt-watt and frequency-watt settings, trip and ride-through limits, export and control
rules, each with its clause. ``site_codes`` gives every site its code (explicit, else
from its position), ``check_fleet`` reports what breaks a profile, ``site_rules`` is what
dispatch enforces and ``device_settings`` what is pushed to devices. Fast frequency
products and the kinds' response model live in ``products.yaml``. Pure: no I/O beyond
reading the package's own data files.
"""

from gridflock.gridcode._assign import site_codes
from gridflock.gridcode._check import CodeIssue, check_fleet
from gridflock.gridcode._curves import curve_value, droop_p_pu, product_response
from gridflock.gridcode._enforce import PlanRules, SiteRules, plan_rules, site_rules
from gridflock.gridcode._load import (
    ProfileFileError,
    kind_responses,
    products,
    profile,
    profiles,
)
from gridflock.gridcode._model import (
    ControlRules,
    Curve,
    ExportRules,
    FrequencyProduct,
    FreqWatt,
    KindResponse,
    Profile,
    RideThrough,
    Trip,
)
from gridflock.gridcode._region import CALIFORNIA, REGIONS, code_at
from gridflock.gridcode._settings import SETTINGS_SCHEMA, device_settings

__all__ = [
    "CALIFORNIA",
    "REGIONS",
    "SETTINGS_SCHEMA",
    "CodeIssue",
    "ControlRules",
    "Curve",
    "ExportRules",
    "FreqWatt",
    "FrequencyProduct",
    "KindResponse",
    "PlanRules",
    "Profile",
    "ProfileFileError",
    "RideThrough",
    "SiteRules",
    "Trip",
    "check_fleet",
    "code_at",
    "curve_value",
    "device_settings",
    "droop_p_pu",
    "kind_responses",
    "plan_rules",
    "product_response",
    "products",
    "profile",
    "profiles",
    "site_codes",
    "site_rules",
]
