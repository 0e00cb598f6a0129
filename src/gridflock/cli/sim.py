"""``gridflock sim gateways``: the digital twin's devices as MQTT gateways against a broker."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gridflock.cli._app import (
    Dropout,
    Ideal,
    Ignore,
    Latency,
    Noise,
    Offline,
    _load_fleet,
    app,
    err,
    fail,
    imperfections,
    out,
)

if TYPE_CHECKING:
    from gridflock.sim.gateways import SimulatedGateways

sim_app = typer.Typer(
    help="Run the digital twin against real infrastructure (an MQTT broker).",
    no_args_is_help=True,
)
app.add_typer(sim_app, name="sim")

DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1883"
STATUS_EVERY_S = 30.0


@sim_app.command()
def gateways(
    homes: Annotated[
        int,
        typer.Option(
            min=1, max=2_000_000, help="Homes in a generated fleet (ignored with --fleet)."
        ),
    ] = 1000,
    fleet: Annotated[Path | None, typer.Option(help="Fleet file to simulate instead.")] = None,
    mqtt: Annotated[
        str | None,
        typer.Option(
            help="Broker URL, mqtt://[user:password@]host:port (mqtts:// for TLS). "
            f"Default: $GRIDFLOCK_MQTT_URL, else {DEFAULT_MQTT_URL}."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed of fleet, weather and faults.")] = 7,
    step: Annotated[
        str, typer.Option(help="Twin step and reporting interval: 5s, 30s, 1m, or seconds.")
    ] = "5s",
    connections: Annotated[
        int,
        typer.Option(
            min=0,
            help="MQTT connections the gateways share; 0 = one per gateway (user name = "
            "gateway id, for brokers with per-gateway ACLs; small fleets only).",
        ),
    ] = 4,
    password: Annotated[
        str | None,
        typer.Option(
            envvar="GRIDFLOCK_MQTT_PASSWORD",
            help="Broker password (with --connections 0: every gateway's).",
        ),
    ] = None,
    tls_ca: Annotated[
        Path | None,
        typer.Option(
            help="CA (PEM) of the broker's certificate, for mqtts:// (default: system's)."
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(help="Client certificate (PEM), if the broker requires one.")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="Key of --tls-cert (PEM).")] = None,
    command_log: Annotated[
        Path | None,
        typer.Option(
            help="Append every command and schedule received to this file, one line each: "
            "ts gateway device seq epoch kind status reason valid_until."
        ),
    ] = None,
    latency: Latency = 3.0,
    dropout: Dropout = 0.02,
    offline: Offline = 0.01,
    ignore: Ignore = 0.02,
    noise: Noise = 0.02,
    ideal: Ideal = False,
) -> None:
    """Publish the twin's telemetry per gateway over MQTT and obey commands, until Ctrl-C."""
    from gridflock.cli.simulate import _parse_step
    from gridflock.config import mask_url
    from gridflock.sim.gateways import SimulatedGateways, parse_broker_url

    url = mqtt or os.environ.get("GRIDFLOCK_MQTT_URL") or DEFAULT_MQTT_URL
    try:
        parse_broker_url(url)
    except ValueError as e:
        fail(f"--mqtt: {e}")
    step_s = _parse_step(step)
    if not 1 <= step_s <= 3600:
        fail(f"--step: {step!r} must be between 1 second and 1 hour")
    spec = _load_fleet(fleet, homes, seed)
    if spec.n_devices == 0:
        fail("the fleet has no devices")
    imperfect = imperfections(latency, dropout, offline, ignore, noise, ideal)
    sim = SimulatedGateways(
        spec,
        url,
        seed=seed,
        step_s=step_s,
        connections=connections,
        imperfections=imperfect,
        password=password,
        tls_ca_file=str(tls_ca) if tls_ca else None,
        tls_cert_file=str(tls_cert) if tls_cert else None,
        tls_key_file=str(tls_key) if tls_key else None,
        command_log=str(command_log) if command_log else None,
    )
    mode = "one connection per gateway" if sim.per_gateway else f"{sim.n_connections} connection(s)"
    out.print(
        f"simulating {len(spec.sites):,} homes, {spec.n_devices:,} devices behind "
        f"{len(sim.gateways):,} gateways, every {step_s:g} s; "
        f"broker {mask_url(sim.broker_url)} ({mode}); "
        f"twin on {sim.rt.sim_date} ({sim.rt.tz}). Ctrl-C stops.",
        highlight=False,
        soft_wrap=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(sim, url))
    s = sim.stats
    out.print(
        f"stopped: {s.messages:,} telemetry messages ({s.readings:,} readings), "
        f"{s.commands_received:,} commands ({s.commands_accepted:,} accepted, "
        f"{s.commands_rejected:,} rejected); gateways reported offline.",
        highlight=False,
        soft_wrap=True,
    )


async def _run(sim: SimulatedGateways, url: str) -> None:
    import signal

    from gridflock.config import redact
    from gridflock.sim.gateways import BrokerUnreachableError

    # Ctrl-C and SIGTERM stop it gracefully (offline statuses published), also where the
    # parent started it with SIGINT ignored (a background job of a shell without job control)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, sim.stop)
    task = asyncio.create_task(sim.run())
    status = asyncio.create_task(_status(sim))
    try:
        await task
    except BrokerUnreachableError as e:
        msg = redact(str(e), url)  # the URL may carry a password
        if "cannot reach" in msg:
            msg += "; is it running? (mosquitto -d -c /etc/mosquitto/mosquitto.conf)"
        fail(msg)
    finally:
        status.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, BrokerUnreachableError):
                await task


async def _status(sim: SimulatedGateways) -> None:
    """One status line every 30 s."""
    t0 = time.monotonic()
    before = 0
    while True:
        await asyncio.sleep(STATUS_EVERY_S)
        s = sim.stats
        rate = (s.messages - before) / STATUS_EVERY_S
        before = s.messages
        reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(s.reasons.items()))
        err.print(
            f"[{time.monotonic() - t0:7.0f} s] {s.messages:,} messages ({rate:,.0f}/s, last step "
            f"{s.last_step_s:.2f} s), {sim.connected}/{sim.n_connections} connected; commands "
            f"{s.commands_received:,} received, {s.commands_accepted:,} accepted, "
            f"{s.commands_rejected:,} rejected" + (f" ({reasons})" if reasons else ""),
            highlight=False,
            markup=False,
        )
