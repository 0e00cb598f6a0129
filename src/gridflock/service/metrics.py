"""Prometheus metrics of the service, in a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["ServiceMetrics"]


class ServiceMetrics:
    """Counters and gauges the control loop and the gateways update."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.readings = Counter(
            "gridflock_telemetry_readings", "Readings received, by outcome", ["outcome"], registry=r
        )
        self.rejected = Counter(
            "gridflock_telemetry_rejected", "Readings rejected, by reason", ["reason"], registry=r
        )
        self.messages = Counter(
            "gridflock_telemetry_messages", "Telemetry messages received", registry=r
        )
        self.commands = Counter("gridflock_commands_sent", "Commands sent to devices", registry=r)
        self.acks = Counter(
            "gridflock_command_acks", "Command acknowledgements, by status", ["status"], registry=r
        )
        self.devices_online = Gauge("gridflock_devices_online", "Devices reporting", registry=r)
        self.devices_total = Gauge("gridflock_devices_total", "Devices provisioned", registry=r)
        self.fleet_p_kw = Gauge(
            "gridflock_fleet_p_kw", "Fleet net power [kW, + export]", registry=r
        )
        self.flex_up_kw = Gauge("gridflock_flex_up_kw", "Up flexibility [kW]", registry=r)
        self.flex_down_kw = Gauge("gridflock_flex_down_kw", "Down flexibility [kW]", registry=r)
        self.events_active = Gauge("gridflock_events_active", "Events in progress", registry=r)
        self.cycle_failures = Counter(
            "gridflock_control_cycle_failures",
            "Control cycles that raised and were skipped",
            registry=r,
        )
        self.buffered_rows = Gauge(
            "gridflock_store_buffered_rows", "Readings waiting for the database", registry=r
        )
        self.written_rows = Gauge(
            "gridflock_store_written_rows", "Readings written to the database", registry=r
        )
        self.dropped_rows = Gauge(
            "gridflock_store_dropped_rows",
            "Readings dropped because the buffer was full",
            registry=r,
        )
        self.quarantined = Gauge(
            "gridflock_store_quarantined",
            "Writes the database refused for their content, set aside as dead letters, "
            "by kind (ops: events, commands, audit...; readings: telemetry rows)",
            ["kind"],
            registry=r,
        )
        self.database_up = Gauge(
            "gridflock_database_up", "1 if the last write succeeded", registry=r
        )
        self.mqtt_connected = Gauge(
            "gridflock_mqtt_connected", "1 if connected to the broker", registry=r
        )
        self.envelope_held_devices = Gauge(
            "gridflock_envelope_held_devices",
            "Devices the envelope hold commands (no event holds them)",
            registry=r,
        )
        self.envelope_held_sites = Gauge(
            "gridflock_envelope_held_sites", "Sites held within their envelopes", registry=r
        )
        self.envelope_moved_kw = Gauge(
            "gridflock_envelope_moved_kw",
            "Power the envelope hold moves: generation curtailed, storage charged or "
            "discharged, consumption shed or added [kW, magnitudes summed]",
            registry=r,
        )
        self.envelope_breach_left_kw = Gauge(
            "gridflock_envelope_breach_left_kw",
            "Breach of envelopes in force the free devices could not remove [kW, summed "
            "over sites and nodes]",
            registry=r,
        )
        self.envelope_hold_commands = Counter(
            "gridflock_envelope_hold_commands", "Commands sent by the envelope hold", registry=r
        )
        self.leading = Gauge(
            "gridflock_leader", "1 while this process commands the plant, 0 standing by", registry=r
        )
        self.epoch = Gauge(
            "gridflock_leader_epoch", "Epoch (fencing token) this process leads with", registry=r
        )
        self.fenced_writes = Gauge(
            "gridflock_fenced_writes", "Writes refused as this process no longer led", registry=r
        )
        self.cycle = Histogram(
            "gridflock_control_cycle_seconds",
            "Duration of a control cycle",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )

    def exposition(self) -> bytes:
        """The metrics in Prometheus text format."""
        return generate_latest(self.registry)
