"""Mosquitto 2.x configuration for the protocol: accounts, per-gateway ACLs, listener.

Each gateway logs in with its own id as user name and may publish only under its own
prefix (``telemetry``, ``ack``, ``status``), and subscribe to and receive only its own
``cmd`` and ``ack`` topics and its groups' ``activate`` broadcasts; the service account
may use all of ``gf/v1/#`` and the shared telemetry subscription.

Why Mosquitto's dynamic security plugin, not ``password_file`` and ``acl_file``: the
``acl_file`` of Mosquitto 2.0 does not check SUBSCRIBE at all, it only filters each
delivery. A gateway could then subscribe to ``$share/<group>/gf/v1/+/telemetry`` and
join the service's shared subscription: the broker hands it its round-robin share of
every gateway's telemetry, the read ACL denies each delivery, and the message is dropped
instead of going to the service. The dynamic security plugin checks every SUBSCRIBE
against ``subscribeLiteral``/``subscribePattern`` rules and refuses it, so a gateway can
never become a member of the share group. Its configuration (``dynamic-security.json``)
is generated here in full from the gateway records, like the other files.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import pwd
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gridflock.gateways.mqtt.protocol import MAX_PAYLOAD_BYTES, check_id

__all__ = [
    "DYNSEC_PLUGIN_PATHS",
    "BrokerPaths",
    "GatewayCredential",
    "dynsec_config",
    "find_dynsec_plugin",
    "hash_password",
    "write_broker_config",
]

_SALT_BYTES = 12  # what mosquitto_passwd uses
#: Where distributions install Mosquitto's dynamic security plugin.
DYNSEC_PLUGIN_PATHS = (
    "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",
    "/usr/lib64/mosquitto_dynamic_security.so",
    "/usr/local/lib/mosquitto_dynamic_security.so",
    "/opt/homebrew/lib/mosquitto_dynamic_security.so",
    "/usr/local/opt/mosquitto/lib/mosquitto_dynamic_security.so",
)


def hash_password(secret: str, *, iterations: int = 101, salt: bytes | None = None) -> str:
    """Hash ``secret`` in Mosquitto's password-file format, PBKDF2-HMAC-SHA512.

    Gives ``$7$<iterations>$<base64 salt>$<base64 hash>``, as ``mosquitto_passwd`` writes
    (a 12-byte random salt unless given, a 64-byte key). 101 iterations is Mosquitto's
    default; raise it for brokers exposed beyond a private network.
    """
    if iterations < 1:
        raise ValueError("iterations must be at least 1")
    if salt is None:
        salt = os.urandom(_SALT_BYTES)
    key = hashlib.pbkdf2_hmac("sha512", secret.encode(), salt, iterations)
    b64 = base64.b64encode
    return f"$7${iterations}${b64(salt).decode()}${b64(key).decode()}"


@dataclass(frozen=True)
class GatewayCredential:
    """A gateway's broker account: its id (the user name), password hash and groups."""

    id: str
    password_hash: str
    groups: Sequence[str] = field(default_factory=tuple)


@dataclass(frozen=True)
class BrokerPaths:
    """Files written by :func:`write_broker_config`."""

    conf: Path
    security: Path
    """``dynamic-security.json``: accounts (hashed passwords), roles and ACLs."""


def _dynsec_password(user: str, h: str) -> dict[str, Any]:
    """A ``$7$`` hash as the dynamic security plugin stores it (same PBKDF2-SHA512)."""
    parts = h.split("$")
    if len(parts) != 5 or parts[1] != "7" or not parts[2].isdigit():
        raise ValueError(
            f"password hash of {user!r} is not a Mosquitto $7$ (PBKDF2-SHA512) hash: "
            "make it with hash_password (re-provision the gateway to get a new one)"
        )
    try:
        salt = base64.b64decode(parts[3], validate=True)
        key = base64.b64decode(parts[4], validate=True)
    except ValueError:
        raise ValueError(f"password hash of {user!r}: salt or key is not base64") from None
    if not salt or len(key) != 64:
        raise ValueError(f"password hash of {user!r} is not a 64-byte PBKDF2-SHA512 key")
    return {"password": parts[4], "salt": parts[3], "iterations": int(parts[2])}


def _acl(kind: str, topic: str) -> dict[str, Any]:
    return {"acltype": kind, "topic": topic, "priority": 0, "allow": True}


def dynsec_config(
    gateways: Iterable[GatewayCredential], service_user: str, service_hash: str
) -> dict[str, Any]:
    """The dynamic security plugin's configuration: one client and one role per account.

    Everything not granted is denied (publish, subscribe, receive); the gateway's role
    names its own topics literally, so no wildcard of a gateway can reach another's.
    """
    check_id(service_user, "service user")
    clients = [
        {
            "username": service_user,
            "textname": "Gridflock service",
            "roles": [{"rolename": "gridflock-service"}],
            **_dynsec_password(service_user, service_hash),
        }
    ]
    roles: list[dict[str, Any]] = [
        {
            "rolename": "gridflock-service",
            "acls": [
                _acl("publishClientSend", "gf/v1/#"),
                _acl("publishClientReceive", "gf/v1/#"),
                _acl("subscribePattern", "gf/v1/#"),
                _acl("subscribePattern", "$share/+/gf/v1/#"),
                _acl("unsubscribePattern", "#"),
            ],
        }
    ]
    seen = {service_user}
    for g in gateways:
        gw = check_id(g.id, "gateway")
        if gw in seen:
            raise ValueError(f"user {gw!r} appears twice (gateway ids and service user differ)")
        seen.add(gw)
        p = f"gf/v1/{gw}"
        reads = [f"{p}/cmd", f"{p}/ack"]
        reads += [f"gf/v1/groups/{check_id(x, 'group')}/activate" for x in g.groups]
        acls = [_acl("publishClientSend", f"{p}/{t}") for t in ("telemetry", "status", "ack")]
        acls += [_acl("subscribeLiteral", t) for t in reads]
        # one wildcard a gateway may subscribe to: every group's broadcasts, of which it
        # receives only its own groups' (publishClientReceive below); not shareable
        acls.append(_acl("subscribeLiteral", "gf/v1/groups/+/activate"))
        acls += [_acl("publishClientReceive", t) for t in reads]
        roles.append({"rolename": f"gateway-{gw}", "acls": acls})
        clients.append(
            {
                "username": gw,
                "textname": f"gateway {gw}",
                "roles": [{"rolename": f"gateway-{gw}"}],
                **_dynsec_password(gw, g.password_hash),
            }
        )
    return {
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": False,
            "subscribe": False,
            "unsubscribe": True,
        },
        "clients": clients,
        "groups": [],
        "roles": roles,
    }


def find_dynsec_plugin(candidates: Sequence[str] = DYNSEC_PLUGIN_PATHS) -> Path:
    """Path of Mosquitto's dynamic security plugin, or ``FileNotFoundError`` saying what to do."""
    for c in candidates:
        if Path(c).is_file():
            return Path(c)
    raise FileNotFoundError(
        "Mosquitto's dynamic security plugin (mosquitto_dynamic_security.so, part of "
        "Mosquitto 2.x) was not found in " + ", ".join(candidates) + ": install Mosquitto 2 "
        "or give its path (gridflock broker acl --dynsec-plugin PATH)"
    )


def _broker_owner(run_as_user: str | None) -> tuple[int, int] | None:
    """``(uid, gid)`` the broker will run as when it drops privileges, if we must care.

    Only a broker started as root drops to another user (``mosquitto`` unless the
    configuration says otherwise); only a root writer can hand files to that user.
    """
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(run_as_user or "mosquitto")
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def _write_atomic(path: Path, text: str, mode: int, group: int | None = None) -> None:
    """Write ``text`` to ``path`` all or nothing: a temporary file, then a rename.

    A failure at any point leaves the old file as it was (never truncated). ``group``
    gives the file to that group (mode ``0o640``: the broker's user reads it).
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if group is not None:
            os.chown(tmp, 0, group)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_broker_config(
    out_dir: str | Path,
    gateways: Iterable[GatewayCredential],
    service_user: str,
    service_password_hash: str,
    *,
    port: int = 1883,
    listener_address: str = "127.0.0.1",
    tls_certfile: str | Path | None = None,
    tls_keyfile: str | Path | None = None,
    tls_client_cafile: str | Path | None = None,
    persistence: bool = True,
    run_as_user: str | None = None,
    plugin_path: str | Path | None = None,
) -> BrokerPaths:
    """Write ``mosquitto.conf`` and ``dynamic-security.json`` for the fleet into ``out_dir``.

    Every file is checked in full before anything is written, and each is replaced
    atomically: a bad gateway id or hash raises ``ValueError`` and leaves the previous
    files untouched.

    Parameters
    ----------
    out_dir
        Folder to write into (created if missing).
    gateways
        One account per gateway; user name = gateway id.
    service_user, service_password_hash
        The account of the Gridflock service (read/write on ``gf/v1/#``).
    port, listener_address
        Where the broker listens; loopback by default (offline unless asked).
    tls_certfile, tls_keyfile
        Server certificate and key: when given, the listener speaks TLS only (recommended
        for any broker reachable beyond the host).
    tls_client_cafile
        CA of client certificates: when given, every client must present a certificate
        signed by it (mutual TLS) as well as its password.
    persistence
        Keep retained messages (gateway status) and sessions across broker restarts
        (in ``out_dir/data``).
    run_as_user
        OS user the broker drops to when started as root (Mosquitto's default:
        ``mosquitto``). When this runs as root, the security file is given to that
        user's group (mode 0640) and the data folder to the user, so the broker can
        still read and write them after dropping privileges.
    plugin_path
        Mosquitto's ``mosquitto_dynamic_security.so``; found in the usual places if not
        given.

    Returns
    -------
    BrokerPaths
        Start the broker with ``mosquitto -c <conf>``.

    """
    if (tls_certfile is None) != (tls_keyfile is None):
        raise ValueError("give both tls_certfile and tls_keyfile, or neither")
    if tls_client_cafile is not None and tls_certfile is None:
        raise ValueError("tls_client_cafile needs a TLS listener: give tls_certfile, tls_keyfile")
    plugin = Path(plugin_path) if plugin_path is not None else find_dynsec_plugin()
    # everything is built (and checked) before the first byte is written
    security_text = json.dumps(
        dynsec_config(gateways, service_user, service_password_hash), indent=1
    )
    out = Path(out_dir).resolve()
    paths = BrokerPaths(out / "mosquitto.conf", out / "dynamic-security.json")
    data = out / "data"
    conf = [
        "# Generated by gridflock (gridflock broker acl): do not edit, regenerate.",
        "per_listener_settings false",
        "allow_anonymous false",
        f"plugin {plugin}",
        f"plugin_opt_config_file {paths.security}",
        f"max_packet_size {MAX_PAYLOAD_BYTES + 65536}",
        f"persistence {'true' if persistence else 'false'}",
        # a persistent session nobody resumes (a decommissioned service process, a gateway
        # gone for good) is dropped after a week instead of holding queued messages and
        # its subscriptions, shared ones included, forever
        "persistent_client_expiration 1w",
    ]
    if run_as_user is not None:
        conf.append(f"user {run_as_user}")
    if persistence:
        conf.append(f"persistence_location {data}/")
    conf.append(f"listener {int(port)} {listener_address}")
    if tls_certfile is not None:
        conf += [
            f"certfile {Path(tls_certfile).resolve()}",
            f"keyfile {Path(tls_keyfile or '').resolve()}",
        ]
    if tls_client_cafile is not None:
        conf += [f"cafile {Path(tls_client_cafile).resolve()}", "require_certificate true"]
    conf_text = "\n".join(conf) + "\n"

    out.mkdir(parents=True, exist_ok=True)
    owner = _broker_owner(run_as_user)
    group = None if owner is None else owner[1]
    _write_atomic(paths.security, security_text, 0o600 if group is None else 0o640, group)
    _write_atomic(paths.conf, conf_text, 0o644)
    if persistence:
        data.mkdir(exist_ok=True)
        if owner is not None:
            os.chown(data, *owner)
    return paths
