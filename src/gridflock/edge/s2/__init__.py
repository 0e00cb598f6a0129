"""S2 (EN 50491-12-2) at the edge: the gateway is the CEM towards S2 resource managers.

FRBC (batteries, heat pumps with a buffer) and PPBC (shiftable appliances) over S2's
websocket transport, through s2-python's message models. See docs/s2.md.
"""

from gridflock.edge.s2.config import S2DeviceConfig
from gridflock.edge.s2.driver import S2Driver, build_s2_driver
from gridflock.edge.s2.session import S2_VERSION

__all__ = ["S2_VERSION", "S2DeviceConfig", "S2Driver", "build_s2_driver"]
