"""OCPP commands: ``charger create|revoke|list`` and ``sim ocpp``; the service's OCPP link."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import secrets
import ssl
import time
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gridflock.cli._app import app, err, fail, out
from gridflock.cli.service import Db, _open_store, _settings
from gridflock.cli.sim import sim_app

if TYPE_CHECKING:
    from gridflock.config import Settings
    from gridflock.domain.ports import DeviceLink
    from gridflock.domain.spec import FleetSpec
    from gridflock.gateways.ocpp import CredentialSource, OcppLink
    from gridflock.store import Store

charger_app = typer.Typer(
    help="Charge points allowed on the OCPP back end (their Basic-auth passwords).",
    no_args_is_help=True,
)
app.add_typer(charger_app, name="charger")

#: The gateway kind charge points are stored as (their credentials live with gateways').
CHARGER_KIND = "charger"


@charger_app.command("create")
def charger_create(
    cp_id: Annotated[str, typer.Argument(help="Charge point id: the last part of its URL.")],
    site: Annotated[str | None, typer.Option(help="The site it stands at.")] = None,
    db: Db = None,
) -> None:
    """Provision a charge point; print its password alone on stdout (stored hashed, shown once).

    Set the password as the charger's AuthorizationKey (OCPP 1.6) or BasicAuthPassword
    (2.0.1) and point it at ``wss://<host>:<ocpp port>/ocpp/<id>``.
    """
    from gridflock.gateways.mqtt.acl import hash_password
    from gridflock.store import AlreadyExistsError

    if not cp_id or len(cp_id) > 64 or "/" in cp_id or not cp_id.isprintable():
        fail(f"{cp_id[:70]!r} is not a charge point id: 1-64 printable characters, no /")
    password = secrets.token_urlsafe(24)  # 32 characters: within OCPP's 16..40
    settings = _settings(database_url=db)
    store = _open_store(settings.database_url, upgrade=False)
    try:
        store.create_gateway(
            cp_id,
            kind=CHARGER_KIND,
            site_id=site,
            groups=[],
            password_hash=hash_password(password, iterations=10_000),
        )
        store.audit(f"cli:{getpass.getuser()}", "charger.create", cp_id, {"site_id": site})
    except AlreadyExistsError:
        fail(f"charge point {cp_id!r} exists; revoke it first to issue a new password")
    finally:
        store.close()
    print(password)
    err.print(f"created charge point {cp_id}", highlight=False)


@charger_app.command("revoke")
def charger_revoke(
    cp_id: Annotated[str, typer.Argument(help="Charge point id.")], db: Db = None
) -> None:
    """Remove a charge point: its next connection is refused (a live one is not cut)."""
    settings = _settings(database_url=db)
    store = _open_store(settings.database_url, upgrade=False)
    try:
        rec = store.get_gateway(cp_id)
        if rec is None or rec.kind != CHARGER_KIND:
            fail(f"no charge point {cp_id[:70]!r}; see `gridflock charger list`")
        store.delete_gateway(cp_id)
        store.audit(f"cli:{getpass.getuser()}", "charger.revoke", cp_id, None)
    finally:
        store.close()
    err.print(f"revoked charge point {cp_id}", highlight=False)


@charger_app.command("list")
def charger_list(db: Db = None) -> None:
    """List provisioned charge points (never their passwords)."""
    settings = _settings(database_url=db)
    store = _open_store(settings.database_url, upgrade=False)
    try:
        rows = [g for g in store.list_gateways() if g.kind == CHARGER_KIND]
    finally:
        store.close()
    for g in rows:
        out.print(f"{g.id}\t{g.site_id or '-'}\t{g.created_at:%Y-%m-%d %H:%M}", highlight=False)


def store_credentials(store: Store) -> CredentialSource:
    """A credential source over the store: the password hash of a provisioned charger."""

    async def lookup(cp_id: str) -> str | None:
        rec = await asyncio.to_thread(store.get_gateway, cp_id)
        if rec is None or rec.kind != CHARGER_KIND:
            return None
        return str(rec.password_hash)

    return lookup


def ocpp_link(settings: Settings, spec: FleetSpec, store: Store) -> OcppLink:
    """The OCPP back end the configuration asks for (``ocpp_port`` set), or exit saying why."""
    from gridflock.gateways.ocpp import OcppLink, OcppSettings

    assert settings.ocpp_port is not None
    cert = settings.ocpp_tls_certfile or settings.tls_certfile
    key = settings.ocpp_tls_keyfile or settings.tls_keyfile
    context = None
    if cert is not None and key is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as e:
            fail(f"cannot use the OCPP TLS certificate {cert} with key {key}: {e}")
    elif not settings.ocpp_allow_insecure:
        fail(
            "the OCPP back end needs TLS (security profile 2): set GRIDFLOCK_OCPP_TLS_CERTFILE "
            "and GRIDFLOCK_OCPP_TLS_KEYFILE (or the API's GRIDFLOCK_TLS_*), or accept plain "
            "ws:// on a private network with GRIDFLOCK_OCPP_ALLOW_INSECURE=true"
        )
    return OcppLink(
        spec,
        store_credentials(store),
        OcppSettings(
            host=settings.ocpp_host,
            port=settings.ocpp_port,
            ssl=context,
            allow_insecure=settings.ocpp_allow_insecure,
            rate_unit=settings.ocpp_rate_unit,
            voltage_v=settings.ocpp_voltage_v,
            response_timeout_s=settings.ocpp_response_timeout_s,
        ),
    )


@sim_app.command("ocpp")
def sim_ocpp(
    url: Annotated[
        str, typer.Option(help="The CSMS base URL, e.g. wss://host:9000/ocpp/ (id appended).")
    ],
    chargers: Annotated[
        int, typer.Option(min=1, max=100_000, help="Charge points CP0001... to simulate.")
    ] = 10,
    passwords: Annotated[
        Path | None,
        typer.Option(help="JSON file {charge point id: password}; its ids replace --chargers."),
    ] = None,
    password: Annotated[
        str | None, typer.Option(help="One password for every charge point (a test rig).")
    ] = None,
    version: Annotated[
        str, typer.Option(help="ocpp1.6, ocpp2.0.1, or mixed (alternating).")
    ] = "mixed",
    interval: Annotated[float, typer.Option(min=0.5, help="Meter value interval [s].")] = 10.0,
    ca_file: Annotated[
        Path | None, typer.Option(help="CA (PEM) of the CSMS certificate for wss://.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the cars' states of charge.")] = 7,
) -> None:
    """Simulate OCPP charge points with cars plugged in, obeying the profiles they get."""
    import numpy as np

    from gridflock.sim.ocpp import ChargerSpec, run_charge_points

    if version not in ("ocpp1.6", "ocpp2.0.1", "mixed"):
        fail(f"--version: {version!r}; use ocpp1.6, ocpp2.0.1 or mixed")
    if not url.startswith(("ws://", "wss://")):
        fail(f"--url must start with ws:// or wss://, got {url[:60]!r}")
    if passwords is not None:
        try:
            creds = json.loads(passwords.read_text())
            assert isinstance(creds, dict)
        except (OSError, ValueError, AssertionError) as e:
            fail(f"--passwords: {passwords} is not a JSON object of id -> password ({e})")
    elif password is not None:
        creds = {f"CP{i:04d}": password for i in range(1, chargers + 1)}
    else:
        fail("give --passwords FILE (from `gridflock charger create`) or --password")
    rng = np.random.default_rng(seed)
    specs = [
        ChargerSpec(
            str(cp),
            str(pw),
            version=("ocpp1.6", "ocpp2.0.1")[i % 2] if version == "mixed" else version,
            soc=float(rng.uniform(0.1, 0.7)),
        )
        for i, (cp, pw) in enumerate(creds.items())
    ]
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    err.print(f"{len(specs)} charge points -> {url}", highlight=False)

    async def main() -> None:
        points = await run_charge_points(
            specs, url, ssl_context=context, interval_s=interval, stagger_s=min(len(specs), 5)
        )
        t0 = time.monotonic()
        try:
            while True:
                await asyncio.sleep(30)
                up = sum(p.connected.is_set() for p in points)
                sent = sum(p.messages for p in points)
                kw = sum(p.ev.p_kw for p in points)
                err.print(
                    f"[{time.monotonic() - t0:6.0f} s] {up}/{len(points)} connected, "
                    f"{sent:,} meter values, charging {kw:,.1f} kW",
                    highlight=False,
                )
        finally:
            for p in points:
                if p.task is not None:
                    p.task.cancel()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


# ---------------------------------------------------------------------- demo --mixed
#: At most this many of the demo's EV chargers become OCPP charge points.
MIXED_MAX_CHARGERS = 200


def mixed_fleet(spec: FleetSpec, share: float = 0.5) -> FleetSpec:
    """``spec`` with every other EV charger (up to ``MIXED_MAX_CHARGERS``) reached over OCPP.

    Each such charger gets a charge point of its own, ``CP-<device id>``.
    """
    from dataclasses import replace

    import numpy as np

    from gridflock.domain.kinds import DeviceKind

    df = spec.devices.get(DeviceKind.EV_CHARGER)
    if df is None or not len(df):
        return spec
    df = df.copy()
    step = max(round(1 / max(share, 1e-6)), 1)
    rows = np.arange(0, len(df), step)[:MIXED_MAX_CHARGERS]
    df.loc[rows, "protocol"] = "ocpp"
    df.loc[rows, "gateway_id"] = ["CP-" + str(d) for d in df["id"].iloc[rows]]
    df.loc[rows, "ocpp_connector"] = 1
    return replace(spec, devices={**spec.devices, DeviceKind.EV_CHARGER: df})


def demo_chargers(
    settings: Settings,
    spec: FleetSpec,
    store: Store,
    links: Mapping[str, DeviceLink],
    default: str,
) -> tuple[DeviceLink, Callable[[], Coroutine[Any, Any, None]]]:
    """The demo's OCPP part: the back end on loopback, its chargers provisioned and simulated.

    Returns the composite link (``links`` for the other devices, ``default`` for those
    whose protocol has no link) and the task that runs the simulated charge points.
    """
    import numpy as np

    from gridflock.gateways.mqtt.acl import hash_password
    from gridflock.gateways.ocpp import OcppLink, OcppSettings, places_of
    from gridflock.service.links import CompositeLink
    from gridflock.sim.ocpp import ChargerSpec, run_charge_points

    places = places_of(spec)
    rng = np.random.default_rng(7)
    specs = []
    for i, p in enumerate(places.values()):
        password = secrets.token_urlsafe(24)
        store.create_gateway(
            p.cp_id,
            kind=CHARGER_KIND,
            site_id=None,
            groups=[],
            password_hash=hash_password(password),
        )
        specs.append(
            ChargerSpec(
                p.cp_id,
                password,
                version=("ocpp1.6", "ocpp2.0.1")[i % 2],
                p_max_kw=p.p_max_kw,
                p_min_kw=min(1.4 * p.phases, p.p_max_kw),
                phases=p.phases,
                soc=float(rng.uniform(0.1, 0.6)),
            )
        )
    # loopback only, inside one process: plain ws:// (security profile 1) is safe here
    ocpp = OcppLink(
        spec,
        store_credentials(store),
        OcppSettings(host="127.0.0.1", port=settings.ocpp_port or 0, allow_insecure=True),
    )

    async def chargers() -> None:
        while not ocpp.connected:
            await asyncio.sleep(0.1)
        points = await run_charge_points(specs, ocpp.url, interval_s=10.0, stagger_s=5.0)
        try:
            await asyncio.Event().wait()
        finally:
            for p in points:
                if p.task is not None:
                    p.task.cancel()

    link = CompositeLink({**links, "ocpp": ocpp}, spec, default=default)
    return link, chargers
