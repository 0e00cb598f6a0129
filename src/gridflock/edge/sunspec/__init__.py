"""SunSpec Modbus TCP devices at a site: discovery, reading and controls through pysunspec2.

pysunspec2 (``sunspec2.modbus.client``) knows the SunSpec models and their scale factors;
its register reads and writes go over pymodbus (:mod:`._transport`).
"""

from gridflock.edge.sunspec.discover import DiscoveredUnit, discover
from gridflock.edge.sunspec.driver import SunSpecDriver
from gridflock.edge.sunspec.models import SUPPORTED_MODELS

__all__ = ["SUPPORTED_MODELS", "DiscoveredUnit", "SunSpecDriver", "discover"]
