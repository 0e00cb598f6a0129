"""``gridflock edge``: run, check and discover for the edge gateway at a site."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from gridflock.cli._app import _problems, app, err, fail, out
from gridflock.cli.sim import sim_app

if TYPE_CHECKING:
    from gridflock.edge.config import EdgeConfig

edge_app = typer.Typer(
    help="The edge gateway at a site: local devices (SunSpec Modbus) to the service over MQTT.",
    no_args_is_help=True,
)
app.add_typer(edge_app, name="edge")


def _config(path: Path) -> EdgeConfig:
    from gridflock.domain import ValidationError
    from gridflock.edge.config import load_config

    try:
        return load_config(path)
    except ValidationError as e:
        _problems(e, wrote="")


@edge_app.command()
def check(
    config: Annotated[Path, typer.Argument(help="Edge configuration file (YAML).")],
) -> None:
    """Validate a configuration file; lists every problem with its place, exits 2 if any."""
    from gridflock.config import mask_url
    from gridflock.edge.config import SunSpecDevice

    cfg = _config(config)
    table = Table(title=f"{config}: gateway {cfg.gateway.id} -> {mask_url(cfg.gateway.broker)}")
    for col in ("device", "kind", "protocol", "address", "poll [s]", "safe mode", "curves"):
        table.add_column(col)
    for d in cfg.devices:
        addr = curves = ""
        if isinstance(d, SunSpecDevice):
            addr = f"{d.host}:{d.port} unit {d.unit}"
            der = d.der_settings()
            curves = der.source if der is not None else ""
        table.add_row(
            d.id,
            d.kind,
            getattr(d, "protocol", "?"),
            addr,
            f"{d.poll_interval_s:g}",
            d.safe_mode,
            curves,
        )
    out.print(table)
    out.print(
        f"OK: {len(cfg.devices)} device(s); buffer {cfg.buffer.max_readings_per_device} "
        f"readings per device; fail-safe after {cfg.failsafe.silence_s:g} s of silence",
        highlight=False,
    )


@edge_app.command()
def discover(
    host: Annotated[str, typer.Option(help="IP address or host name of the Modbus TCP device.")],
    port: Annotated[int, typer.Option(min=1, max=65535, help="Modbus TCP port.")] = 502,
    units: Annotated[str, typer.Option(help="Unit ids to try: 1-10, or 1,3,5-7.")] = "1-10",
    timeout: Annotated[float, typer.Option(min=0.1, max=30, help="Per request [s].")] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """List the SunSpec devices and models found on a range of unit ids."""
    from gridflock.edge.sunspec.discover import discover as run_discover
    from gridflock.edge.sunspec.discover import parse_units

    try:
        ids = parse_units(units)
    except ValueError as e:
        fail(str(e))
    found = asyncio.run(run_discover(host, port, ids, timeout))
    if as_json:
        print(json.dumps([u.as_dict() for u in found], indent=2))
    else:
        table = Table(title=f"SunSpec devices at {host}:{port}")
        for col in ("unit", "models", "DER", "manufacturer", "model", "serial", "note"):
            table.add_column(col)
        for u in found:
            if not u.found:
                continue
            note = f"unsupported models {u.unsupported}" if u.unsupported else ""
            table.add_row(
                str(u.unit),
                " ".join(str(m) for m in u.models),
                " ".join(str(m) for m in u.der_models) or "-",
                u.manufacturer or "",
                u.model or "",
                u.serial or "",
                note,
            )
        out.print(table)
        silent = [u.unit for u in found if not u.found]
        if silent:
            out.print(f"no SunSpec device on unit(s) {_ranges(silent)}", highlight=False)
    if not any(u.found for u in found):
        first = found[0].error if found else "no unit ids"
        err.print(
            f"[bold red]error:[/] no SunSpec device at {host}:{port} on units {units} "
            f"({first}); check the address, the port and that Modbus TCP is enabled",
            highlight=False,
        )
        raise typer.Exit(1)


def _ranges(ids: list[int]) -> str:
    """``[1, 2, 3, 7]`` as ``1-3, 7``."""
    parts: list[str] = []
    start = prev = ids[0]
    for i in [*ids[1:], -1]:
        if i != prev + 1:
            parts.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = i
        prev = i
    return ", ".join(parts)


@edge_app.command()
def run(
    config: Annotated[Path, typer.Option(help="Edge configuration file (YAML).")],
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run the edge gateway until SIGINT/SIGTERM (devices are released on the way out)."""
    from gridflock.config import mask_url
    from gridflock.edge.driver import DriverError
    from gridflock.edge.gateway import EdgeGateway

    cfg = _config(config)
    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    gw = EdgeGateway(cfg)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, gw.stop)
        await gw.run()

    out.print(
        f"edge gateway {cfg.gateway.id}: {len(cfg.devices)} device(s) -> "
        f"{mask_url(cfg.gateway.broker)}",
        highlight=False,
    )
    try:
        asyncio.run(main())
    except DriverError as e:
        fail(f"{e}; fix the device or its entry in {config}, then run again", code=1)
    s = gw.stats
    out.print(
        f"stopped: {s.readings_sent} readings sent, {len(gw.buffer)} left in the buffer, "
        f"{s.commands} commands, {s.schedules} schedules",
        highlight=False,
    )


@sim_app.command("edge")
def sim_edge(
    sites: Annotated[int, typer.Option(min=1, max=500, help="Simulated sites.")] = 3,
    mqtt: Annotated[
        str, typer.Option(help="The service's broker, mqtt://host:port (mqtts:// for TLS).")
    ] = "mqtt://127.0.0.1:1883",
    password: Annotated[
        str | None,
        typer.Option(envvar="GRIDFLOCK_MQTT_PASSWORD", help="Every gateway's broker secret."),
    ] = None,
    tls_ca: Annotated[
        Path | None, typer.Option(help="CA (PEM) of the broker's certificate.")
    ] = None,
    prefix: Annotated[str, typer.Option(help="Gateway ids are PREFIX-0001 ...")] = "edge",
    poll: Annotated[float, typer.Option(min=1, max=3600, help="Poll interval [s].")] = 5.0,
    fleet_out: Annotated[
        Path | None,
        typer.Option(help="Write the sites' fleet file (YAML) here, for the service, and go on."),
    ] = None,
) -> None:
    """SunSpec Modbus devices behind edge gateways: one Modbus server and gateway per site."""
    from gridflock.config import mask_url
    from gridflock.sim.edge_sites import SimulatedEdgeSites, edge_fleet_yaml

    if fleet_out is not None:
        fleet_out.write_text(edge_fleet_yaml(sites, prefix))
        out.print(f"fleet of {sites} edge site(s) written to {fleet_out}", highlight=False)
    sim = SimulatedEdgeSites(
        sites,
        mqtt,
        password=password,
        prefix=prefix,
        poll_s=poll,
        tls_ca=str(tls_ca) if tls_ca else None,
    )
    ports = ", ".join(str(s.server.port) for s in sim.sites[:5])
    out.print(
        f"simulating {sites} edge site(s) (PV, battery, meter on SunSpec Modbus TCP, ports "
        f"{ports}{' ...' if sites > 5 else ''}) -> {mask_url(mqtt)}. Ctrl-C stops.",
        highlight=False,
        soft_wrap=True,
    )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, sim.stop)
        await sim.run()

    asyncio.run(main())
    out.print(f"stopped: {sim.readings_sent} readings sent", highlight=False)
