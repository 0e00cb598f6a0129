"""The edge gateway: polls a site's devices over their own protocols, speaks MQTT to the service.

It runs at the site (SunSpec Modbus, S2 drivers behind :mod:`gridflock.edge.driver`) and
keeps the site safe when the service falls silent.
"""
