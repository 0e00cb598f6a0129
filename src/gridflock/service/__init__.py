"""The running service: wires fleet, dispatch, devices, store and API together.

Only this package and the CLI import every part of Gridflock.
"""

from gridflock.service.runtime import Runtime, ServiceLink
from gridflock.service.writer import StoreWriter

__all__ = ["Runtime", "ServiceLink", "StoreWriter"]
