"""Service commands: ``serve``, ``demo``, ``config``, ``db``, ``apikey``."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
import time
from collections.abc import Callable, Coroutine
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gridflock.cli._app import app, err, fail, out

if TYPE_CHECKING:
    from gridflock.config import Settings
    from gridflock.domain.ports import DeviceLink
    from gridflock.service import Runtime
    from gridflock.store import Store

config_app = typer.Typer(help="Show the effective configuration.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
key_app = typer.Typer(help="API keys for the REST API.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")
app.add_typer(key_app, name="apikey")

log = logging.getLogger("gridflock.service")

Host = Annotated[str | None, typer.Option(help="HTTP listen address (GRIDFLOCK_HOST).")]
Port = Annotated[
    int | None, typer.Option(min=0, max=65535, help="HTTP listen port (GRIDFLOCK_PORT).")
]
Db = Annotated[str | None, typer.Option("--db", help="Database URL (GRIDFLOCK_DATABASE_URL).")]


def _settings(**overrides: object) -> Settings:
    from pydantic import ValidationError as SettingsError

    from gridflock.config import load_settings

    try:
        return load_settings(**overrides)
    except SettingsError as e:
        lines = [
            f"{'.'.join(map(str, x['loc'])).upper() or 'config'}: {x['msg']}" for x in e.errors()
        ]
        fail(
            "invalid configuration (GRIDFLOCK_* variables or gridflock.toml):\n  "
            + "\n  ".join(lines)
        )


def _open_store(url: str, *, upgrade: bool) -> Store:
    """Open the store at ``url``, or exit saying why (never showing the URL's password)."""
    from gridflock.config import mask_url, redact
    from gridflock.domain import GridflockError
    from gridflock.store import Store

    shown = mask_url(url)
    try:
        store = Store(url)
        if upgrade:
            store.upgrade()
        elif not store.ping():
            raise GridflockError("the database does not answer")
        elif not store.schema_is_current():
            raise GridflockError("its schema is missing or old: run `gridflock db upgrade`")
    except GridflockError as e:
        fail(redact(f"database {shown!r}: {e}", url))
    except Exception as e:  # driver errors: say what failed and how to fix it
        fail(
            redact(
                f"database {shown!r}: {e.__class__.__name__}: {e}. Check the URL and that "
                "the server is running, then run `gridflock db upgrade`.",
                url,
            )
        )
    return store


@config_app.command("show")
def config_show() -> None:
    """Print the effective configuration as JSON (secrets masked)."""
    out.print_json(json.dumps(_settings().public()))


@db_app.command("upgrade")
def db_upgrade(db: Db = None) -> None:
    """Create or migrate the database schema to the latest version."""
    settings = _settings(database_url=db)
    _open_store(settings.database_url, upgrade=True).close()
    out.print(f"database at the latest schema: {settings.public()['database_url']}")


@db_app.command("prune-telemetry")
def db_prune_telemetry(
    keep_days: Annotated[
        float,
        typer.Option(
            min=1,
            help="Days of readings to keep before now; older ones are deleted (settlement "
            "baselines read up to 45 days back).",
        ),
    ],
    yes: Annotated[bool, typer.Option("--yes", help="Delete without asking.")] = False,
    db: Db = None,
) -> None:
    """Delete telemetry readings older than --keep-days (retention)."""
    settings = _settings(database_url=db)
    before = dt.datetime.now(dt.UTC) - dt.timedelta(days=keep_days)
    if not yes and not typer.confirm(
        f"delete every reading stamped before {before:%Y-%m-%d %H:%M} UTC?", err=True
    ):
        fail("nothing deleted", code=1)
    store = _open_store(settings.database_url, upgrade=False)
    try:
        n = store.delete_telemetry_before(before)
    finally:
        store.close()
    out.print(f"deleted {n:,} readings stamped before {before:%Y-%m-%d %H:%M} UTC")


@key_app.command("create")
def apikey_create(
    role: Annotated[str, typer.Option(help="admin, operator or viewer.")] = "operator",
    name: Annotated[
        str | None,
        typer.Option(help="Who the key is for (shown in the audit log); default: <role>-<time>."),
    ] = None,
    db: Db = None,
) -> None:
    """Create an API key and print it alone on stdout (it is stored hashed, shown once)."""
    from gridflock.domain.auth import Role

    try:
        parsed = Role(role)
    except ValueError:
        fail(f"--role: {role!r} is not a role; use admin, operator or viewer")
    settings = _settings(database_url=db)
    store = _open_store(settings.database_url, upgrade=False)
    key, record = store.create_api_key(parsed, name or f"{role}-{int(time.time())}")
    store.close()
    print(key)
    err.print(f"created {record.role} key {record.id} ({record.name})", highlight=False)


@key_app.command("revoke")
def apikey_revoke(
    key_id: Annotated[
        str, typer.Argument(help="The key's id: the 12 hex digits after gf_ (apikey list).")
    ],
    db: Db = None,
) -> None:
    """Revoke an API key: it and the dashboard sessions signed in with it are refused.

    A running service refuses the key within 5 s (its authentication cache); recorded
    in the audit log as apikey.revoke.
    """
    import getpass

    settings = _settings(database_url=db)
    store = _open_store(settings.database_url, upgrade=False)
    try:
        records = {k.id: k for k in store.list_api_keys()}
        wanted = key_id.split("_")[1] if key_id.startswith("gf_") else key_id  # a whole key
        record = records.get(wanted)
        if record is None:
            fail(f"no API key has the id {key_id[:40]!r}; see `gridflock apikey list`")
        if record.revoked_at is not None or not store.revoke_api_key(record.id):
            fail(f"the API key {record.id} ({record.name}) is already revoked", code=1)
        store.audit(
            f"cli:{getpass.getuser()}",
            "apikey.revoke",
            record.id,
            {"name": record.name, "role": str(record.role)},
        )
    finally:
        store.close()
    err.print(f"revoked {record.role} key {record.id} ({record.name})", highlight=False)


@key_app.command("list")
def apikey_list(db: Db = None) -> None:
    """List API keys: id, name, role, created, revoked, last used (never the key)."""
    from rich.table import Table

    settings = _settings(database_url=db)
    store = _open_store(settings.database_url, upgrade=False)
    try:
        keys = store.list_api_keys()
    finally:
        store.close()
    table = Table(show_edge=False)
    for col in ("id", "name", "role", "created", "revoked", "last used"):
        table.add_column(col)

    def day(ts: object) -> str:
        return "" if ts is None else f"{ts:%Y-%m-%d %H:%M}"

    for k in keys:
        table.add_row(
            k.id, k.name, str(k.role), day(k.created_at), day(k.revoked_at), day(k.last_used_at)
        )
    out.print(table)


def _check_port(host: str, port: int) -> None:
    """Exit with a clear message when ``host:port`` cannot be listened on.

    The probe binds with ``SO_REUSEADDR`` as uvicorn does: after a crash (kill -9) the
    old connections linger in TIME-WAIT for up to a minute, which would fail a plain
    bind although uvicorn can listen. Only a live listener makes the probe fail.
    """
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(1)  # Linux refuses a second listener on the port only here
        except OSError as e:
            fail(
                f"cannot listen on {host}:{port} ({e.strerror}): is another Gridflock "
                "running? Stop it or choose another --port."
            )


@app.command()
def serve(
    host: Host = None,
    port: Port = None,
    db: Db = None,
    mqtt: Annotated[str | None, typer.Option(help="Broker URL (GRIDFLOCK_MQTT_URL).")] = None,
    openadr: Annotated[
        str | None,
        typer.Option(help="OpenADR VEN: off, 2.0b or 3 (GRIDFLOCK_OPENADR_VEN)."),
    ] = None,
    vtn: Annotated[
        str | None, typer.Option(help="The utility's VTN URL (GRIDFLOCK_OPENADR_VTN_URL).")
    ] = None,
    ocpp_port: Annotated[
        int | None,
        typer.Option(
            min=0, max=65535, help="Port of the OCPP back end for chargers (GRIDFLOCK_OCPP_PORT)."
        ),
    ] = None,
    role: Annotated[
        str | None,
        typer.Option(
            help="What this process runs: all (default), control (leader or hot standby, "
            "elected in PostgreSQL), ingest, or api (an API and dashboard replica; needs "
            "--bus) (GRIDFLOCK_ROLE)."
        ),
    ] = None,
    bus: Annotated[
        str | None,
        typer.Option(help="Internal bus URL, e.g. nats://127.0.0.1:4222 (GRIDFLOCK_BUS_URL)."),
    ] = None,
) -> None:
    """Run the VPP service: REST API, device gateways, dispatch loop and store."""
    from gridflock.service.logs import setup_logging

    settings = _settings(
        host=host,
        port=port,
        database_url=db,
        mqtt_url=mqtt,
        openadr_ven=openadr,
        openadr_vtn_url=vtn,
        ocpp_port=ocpp_port,
        role=role,
        bus_url=bus,
    )
    setup_logging(
        settings.log_level,
        settings.log_format,
        secret_urls=[
            settings.database_url,
            settings.mqtt_url,
            settings.openadr_vtn_url,
            settings.bus_url,
        ],
    )
    store = _open_store(settings.database_url, upgrade=False)
    if settings.role == "api":
        _serve_replica(settings, store)
        return
    if settings.role == "ingest":
        _serve_ingest(settings, store)
        return
    try:
        spec = store.load_fleet()
    except Exception as e:
        fail(f"cannot read the fleet from the database ({e}); run `gridflock db upgrade`")
    link = _device_link(settings, spec, store)
    _check_port(settings.host, settings.port)
    runtime = _runtime(settings, store, spec, link)
    scheme = "https" if settings.tls_certfile else "http"
    log.info(
        "serving %d devices on %s://%s:%d", spec.n_devices, scheme, settings.host, settings.port
    )
    asyncio.run(_serve(settings, runtime, link))


def _serve_replica(settings: Settings, store: Store) -> None:
    """Run an API/dashboard replica: the read model from the bus, writes to the leader."""
    from gridflock.service.replica import ReplicaRuntime
    from gridflock.service.server import process_name, run_service

    if not settings.bus_url:
        fail(
            "--role api needs the bus the leader publishes on: set --bus or GRIDFLOCK_BUS_URL "
            "(e.g. nats://127.0.0.1:4222)"
        )
    _check_port(settings.host, settings.port)
    replica = ReplicaRuntime(settings, store, process_name(settings))
    log.info(
        "API replica on %s:%d, read model from %s", settings.host, settings.port, settings.bus_url
    )
    asyncio.run(run_service(settings, replica))


def _serve_ingest(settings: Settings, store: Store) -> None:
    """``serve --role ingest``: telemetry from the broker into the store, health and metrics."""
    from gridflock.service.ingest import INGEST_SHARE, IngestWorker, run_ingest

    if settings.mqtt_url is None:
        fail(
            "role ingest needs the broker: set GRIDFLOCK_MQTT_URL (e.g. mqtt://127.0.0.1:1883) "
            "or pass --mqtt"
        )
    link = _mqtt_link(settings, None, share=INGEST_SHARE, telemetry_only=True)
    _check_port(settings.host, settings.port)
    worker = IngestWorker(settings, store, link)  # type: ignore[arg-type]
    log.info(
        "ingest worker %s: telemetry of share group %s into the store; health on %s:%d",
        settings.mqtt_client_id,
        INGEST_SHARE,
        settings.host,
        settings.port,
    )
    asyncio.run(run_ingest(settings, worker))


def _runtime(
    settings: Settings, store: Store, spec: object, link: DeviceLink, weather: object = None
) -> Runtime:
    from gridflock.service import Runtime

    return Runtime(settings, store, spec, link, weather=weather)  # type: ignore[arg-type]


def _device_link(settings: Settings, spec: object, store: Store) -> DeviceLink:
    """The MQTT link, with the OCPP back end beside it when ``ocpp_port`` is set."""
    mqtt = _mqtt_link(settings, spec)
    if settings.ocpp_port is None:
        return mqtt
    from gridflock.cli.ocpp import ocpp_link
    from gridflock.domain.spec import FleetSpec
    from gridflock.service.links import CompositeLink

    assert isinstance(spec, FleetSpec)
    links: dict[str, DeviceLink] = {"ocpp": ocpp_link(settings, spec, store)}
    if settings.mqtt_url is not None:
        links["mqtt"] = mqtt
    return CompositeLink(links, spec)


def _mqtt_link(
    settings: Settings, spec: object, *, share: str = "gridflock", telemetry_only: bool = False
) -> DeviceLink:
    """The MQTT link of the settings (``spec`` None: its fleet is given later)."""
    if settings.mqtt_url is None:
        from gridflock.service.links import NoDevices

        return NoDevices()
    from gridflock.domain.spec import FleetSpec
    from gridflock.gateways.mqtt.link import BrokerAddress, GatewayLimits, MqttLink

    assert spec is None or isinstance(spec, FleetSpec)
    assert settings.mqtt_url is not None
    secret = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
    try:
        broker = BrokerAddress.parse(
            settings.mqtt_url,
            settings.mqtt_username,
            secret,
            ca_file=settings.mqtt_tls_ca_file,
            cert_file=settings.mqtt_tls_cert_file,
            key_file=settings.mqtt_tls_key_file,
        )
    except ValueError as e:
        fail(f"GRIDFLOCK_MQTT_URL: {e}")
    gateways: dict[str, str] = {}
    if spec is not None:
        devices = spec.all_devices()
        gateways = dict(zip(devices["id"], devices["gateway_id"], strict=True))
    control = settings.role == "control"
    return MqttLink(
        broker,
        gateways,
        # leader and standby each take the whole telemetry stream (a share group of their
        # own), so the standby's fleet state is warm; ingest workers answer the gateways
        share=control_share(settings.mqtt_client_id) if control else share,
        telemetry_only=telemetry_only,
        answer_telemetry=not control,
        client_id=settings.mqtt_client_id,
        limits=GatewayLimits(
            settings.gateway_max_messages_per_s,
            settings.gateway_max_readings_per_s,
            settings.gateway_burst_s,
        ),
    )


def control_share(client_id: str) -> str:
    """The telemetry share group of one control process: its own, named after its client id."""
    return "control-" + re.sub(r"[^A-Za-z0-9_.\-]", "-", client_id)[:56]


async def _serve(
    settings: Settings,
    runtime: Runtime,
    link: DeviceLink,
    extra: list[Callable[[], Coroutine[Any, Any, None]]] | None = None,
    on_ready: Callable[[], None] | None = None,
) -> None:
    from gridflock.service.server import run_service

    tasks = list(extra or [])
    tasks.insert(0, link.run)  # a link with a connection keeps it (MQTT); others return
    await run_service(settings, runtime, tasks, on_ready)


#: Sites with SunSpec Modbus devices behind simulated edge gateways in ``demo --mixed``.
DEMO_EDGE_SITES = 5


@app.command()
def demo(
    homes: Annotated[int, typer.Option(min=1, max=200_000, help="Homes in the twin.")] = 1000,
    host: Host = None,
    port: Port = None,
    db: Annotated[str, typer.Option("--db", help="Database URL.")] = "sqlite:///gridflock-demo.db",
    mqtt: Annotated[
        str | None,
        typer.Option(
            help="Run the twin's devices as MQTT gateways against this broker instead of in "
            "process, e.g. mqtt://127.0.0.1:1883."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of fleet, weather and faults.")] = 7,
    event_after: Annotated[
        float,
        typer.Option(
            min=0, help="Seconds until the scripted peak event fires (0: no scripted event)."
        ),
    ] = 180.0,
    history_days: Annotated[
        float,
        typer.Option(
            min=0,
            max=120,
            help="Days of twin history written to the empty database in the background, "
            "so forecasts appear within minutes (0: none; forecasting needs at least 14).",
        ),
    ] = 15.0,
    mixed: Annotated[
        bool,
        typer.Option(
            "--mixed",
            help="A fleet of three protocols: half the EV chargers (up to 200) become "
            "simulated OCPP charge points on the service's OCPP back end, and 5 sites with "
            "SunSpec Modbus devices behind simulated edge gateways join over MQTT (the "
            "--mqtt broker, else mqtt://127.0.0.1:1883); the rest stay twin / MQTT devices.",
        ),
    ] = False,
) -> None:
    """The whole VPP in one process: a twin fleet, the service and its API, no setup."""
    step = partial(err.print, highlight=False, soft_wrap=True)  # progress: at once, on stderr
    step(
        f"[bold]Gridflock demo[/]: {homes:,} simulated homes, the VPP service and its "
        "dashboard in this process (about 10 s to start)"
    )
    settings = _settings(host=host, port=port, database_url=db, mqtt_url=mqtt)
    # a lighter first model, so forecasts show within minutes (unless configured otherwise)
    light = {k: v for k, v in _DEMO_FORECAST.items() if k not in settings.model_fields_set}
    settings = settings.model_copy(update=light)
    _check_port(settings.host, settings.port)  # before touching the database of a running demo
    step(f"  preparing the database ({settings.public()['database_url']})...")
    from gridflock.domain.auth import Role
    from gridflock.service.logs import setup_logging  # loads the whole service: a few seconds

    setup_logging(
        settings.log_level,
        settings.log_format,
        secret_urls=[settings.database_url, settings.mqtt_url],
    )
    if db.startswith("sqlite:///"):
        Path(db.removeprefix("sqlite:///")).unlink(missing_ok=True)  # a fresh demo each time
    store = _open_store(settings.database_url, upgrade=True)
    step(f"  generating a fleet of {homes:,} homes...")
    from gridflock.fleet.generate import generate_fleet

    spec = generate_fleet(homes, seed)
    if mixed:
        from gridflock.cli.ocpp import mixed_fleet
        from gridflock.domain.spec import merge_fleets
        from gridflock.sim.edge_sites import edge_fleet

        spec = merge_fleets(mixed_fleet(spec), edge_fleet(DEMO_EDGE_SITES))
    store.save_fleet(spec)
    operator, _ = store.create_api_key(Role.OPERATOR, "demo-operator")
    viewer, _ = store.create_api_key(Role.VIEWER, "demo-viewer")
    extra: list[Callable[[], Coroutine[Any, Any, None]]] = []
    link: DeviceLink
    if mqtt:
        from gridflock.sim.gateways import SimulatedGateways

        link = _mqtt_link(settings, spec)
        gateways = SimulatedGateways(spec, mqtt, seed=seed)
        extra.append(gateways.run)
    weather = None
    if history_days > 0 and settings.forecast_enabled:
        from gridflock.service.forecast_seed import (
            AHEAD_DAYS,
            history_range,
            twin_weather_source,
        )

        _, first = history_range(time.time(), history_days)
        weather = twin_weather_source(spec, first, history_days + AHEAD_DAYS, seed)
    if not mqtt:
        step("  starting the digital twin (weather, homes and their devices)...")
        from gridflock.sim.realtime import RealtimeTwin

        if weather is None:
            link = RealtimeTwin(spec, seed=seed, step_s=5.0)
        else:  # today, under the weather the history was made and forecasts are issued with
            from gridflock.service.forecast_seed import interpolated_weather

            source = weather
            link = RealtimeTwin(
                spec,
                seed=seed,
                step_s=5.0,
                sim_date=_local_today(spec),
                weather=lambda times: interpolated_weather(source.weather, times),
            )
    if mixed:
        from gridflock.cli.ocpp import demo_chargers
        from gridflock.sim.edge_sites import SimulatedEdgeSites

        default = "mqtt" if mqtt else "twin"
        links: dict[str, DeviceLink] = {default: link}
        edge_url = mqtt or "mqtt://127.0.0.1:1883"
        step(f"  starting {DEMO_EDGE_SITES} edge sites (SunSpec Modbus) on {edge_url}...")
        if not mqtt:  # the twin runs in process: the edge sites need a link of their own
            links["edge"] = _mqtt_link(settings.model_copy(update={"mqtt_url": edge_url}), spec)
        edge_sites = SimulatedEdgeSites(DEMO_EDGE_SITES, edge_url)
        extra.append(edge_sites.run)
        step("  starting the OCPP back end and its simulated charge points...")
        link, chargers = demo_chargers(settings, spec, store, links, default)
        extra.append(chargers)
    step("  starting the service (control loop, API and dashboard)...")
    runtime = _runtime(settings, store, spec, link, weather)
    if weather is not None:
        runtime.forecaster.held = "seeding twin history"
        extra.append(lambda: _seed_history(runtime, store, spec, history_days, seed, weather))
    if event_after > 0:
        extra.append(lambda: _scripted_event(runtime, event_after))
    url = f"{'https' if settings.tls_certfile else 'http'}://{settings.host}:{settings.port}"

    def ready() -> None:
        say = partial(out.print, soft_wrap=True, highlight=False)  # keys and URLs unbroken
        say(f"\n[bold green]Gridflock demo[/] running at [bold]{url}[/]  (API docs: {url}/docs)")
        say(f"operator API key: [bold]{operator}[/]")
        say(f"viewer API key:   {viewer}")
        say(f'try: curl -H "Authorization: Bearer {operator}" {url}/api/v1/fleet')
        if weather is not None:
            say(
                f"forecasts: {history_days:g} days of twin history are written in the "
                f"background, then a model is trained: see {url}/forecast in a few minutes"
            )
        if event_after > 0:
            out.print(f"a scripted peak event fires in {event_after:.0f} s; Ctrl-C stops.\n")

    asyncio.run(_serve(settings, runtime, link, extra, ready))
    out.print("stopped.")


def _local_today(spec: object) -> dt.date:
    """Today in the fleet's (first site's) time zone."""
    import pandas as pd

    sites = getattr(spec, "sites", None)
    tz = str(sites["tz"].iloc[0]) if sites is not None and len(sites) else "UTC"
    return pd.Timestamp.now(tz=tz).date()


#: The demo's forecast model: fewer rounds and rows than a deployment's, trained in ~1 min.
_DEMO_FORECAST: dict[str, object] = {"forecast_boost_rounds": 50, "forecast_max_rows": 30_000}


async def _seed_history(
    runtime: Runtime, store: Store, spec: object, days: float, seed: int, weather: object
) -> None:
    """Write ``days`` of twin history (a worker thread), then let the forecaster train."""
    from gridflock.service.forecast_seed import seed_twin_history
    from gridflock.service.forecasting import in_daemon_thread

    t = time.perf_counter()
    try:
        _, took = await in_daemon_thread(
            seed_twin_history,
            store,
            spec,
            runtime.now(),
            days,
            seed,
            weather=weather,
            progress=lambda text: log.info("forecast history: %s", text),
            flex=runtime.forecaster.flex,
        )
    except Exception:
        log.exception("seeding the twin history failed: forecasts wait for real history")
    else:
        log.info(
            "forecast history: %.0f readings in %.1f s (simulated %.1f s, written %.1f s); "
            "training the first model",
            took["readings"],
            time.perf_counter() - t,
            took["simulate_s"],
            took["write_s"],
        )
    runtime.forecaster.release()


async def _scripted_event(runtime: Runtime, after_s: float) -> None:
    """The demo's peak event: half the up flexibility left for 15 minutes, for 15 minutes."""
    from gridflock.domain.auth import Principal, Role
    from gridflock.domain.events import EventSource, Scope

    await asyncio.sleep(after_s)
    for _ in range(60):  # the fleet must have reported before its flexibility is known
        # what is left for a 15-min event, net of any event an operator already runs
        flex = runtime.available_kw(Scope(), None, 900, True)
        if flex > 1:
            break
        await asyncio.sleep(1)
    else:
        log.warning("no up flexibility left for the scripted event; skipped")
        return
    kw = float(f"{0.5 * flex:.2g}")
    event = await runtime.create_event(
        kw,
        None,
        900,
        Scope(),
        Principal("demo", "demo-script", Role.OPERATOR),
        EventSource.SCHEDULE,  # fired by the demo's script, not by an operator
    )
    log.info("scripted peak event %s: %.0f kW for 15 min", event.id, kw)


broker_app = typer.Typer(help="MQTT broker configuration.", no_args_is_help=True)
app.add_typer(broker_app, name="broker")


@broker_app.command("acl")
def broker_acl(
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder for mosquitto.conf and dynamic-security.json.")
    ] = Path("broker"),
    port: Annotated[int, typer.Option(min=1, max=65535, help="Broker listen port.")] = 1883,
    listen: Annotated[str, typer.Option(help="Broker listen address.")] = "127.0.0.1",
    tls_cert: Annotated[Path | None, typer.Option(help="TLS certificate (PEM).")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="TLS private key (PEM).")] = None,
    tls_client_ca: Annotated[
        Path | None,
        typer.Option(help="CA of client certificates: clients must present one (mutual TLS)."),
    ] = None,
    run_as: Annotated[
        str | None,
        typer.Option(help="OS user the broker drops to when started as root (default mosquitto)."),
    ] = None,
    dynsec_plugin: Annotated[
        Path | None,
        typer.Option(help="Path of mosquitto_dynamic_security.so (found if not given)."),
    ] = None,
    db: Db = None,
) -> None:
    """Write the Mosquitto configuration: one account per gateway, confined by ACLs.

    Each gateway may publish only under gf/v1/<its id>/ and subscribe to and read only
    its own commands, its ack topic and its groups' broadcasts (Mosquitto's dynamic
    security plugin checks every SUBSCRIBE); the service account (GRIDFLOCK_MQTT_USERNAME,
    GRIDFLOCK_MQTT_PASSWORD) may use all of gf/v1/#. Passwords stay hashed; files are
    replaced atomically, so a failure leaves the previous ones intact.
    """
    from gridflock.gateways.mqtt.acl import GatewayCredential, hash_password, write_broker_config

    settings = _settings(database_url=db)
    if settings.mqtt_password is None:
        fail(
            "set GRIDFLOCK_MQTT_PASSWORD (the service's broker password) first: the broker "
            "needs it hashed, and `gridflock serve` needs it to log in"
        )
    if (tls_cert is None) != (tls_key is None):
        fail("--tls-cert and --tls-key go together")
    store = _open_store(settings.database_url, upgrade=False)
    gateways = [
        GatewayCredential(g.id, g.password_hash, list(g.groups)) for g in store.list_gateways()
    ]
    store.close()
    try:
        paths = write_broker_config(
            out_dir,
            gateways,
            settings.mqtt_username,
            hash_password(settings.mqtt_password.get_secret_value()),
            port=port,
            listener_address=listen,
            tls_certfile=tls_cert,
            tls_keyfile=tls_key,
            tls_client_cafile=tls_client_ca,
            run_as_user=run_as,
            plugin_path=dynsec_plugin,
        )
    except (ValueError, OSError) as e:
        fail(f"broker files not written (the previous ones are unchanged): {e}")
    out.print(
        f"wrote {paths.conf} and {paths.security} for {len(gateways)} "
        f"gateway(s) and the service account {settings.mqtt_username!r}",
        highlight=False,
    )
    out.print(f"run: mosquitto -c {paths.conf}", highlight=False)
