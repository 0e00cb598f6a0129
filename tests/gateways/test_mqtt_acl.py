"""Broker configuration: hash format, generated files, and the ACL enforced by a real Mosquitto.

The integration tests start a private ``mosquitto`` on a free loopback port (conftest.py)
and prove, with paho-mqtt over MQTT v5, that each gateway stays inside its own prefix.
Mosquitto must be installed: these tests fail rather than skip without it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import queue
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from gridflock.gateways.mqtt import (
    GatewayCredential,
    ack_topic,
    acl,
    activate_topic,
    cmd_topic,
    decode_status,
    decode_telemetry,
    dynsec_config,
    encode_activate,
    encode_status,
    encode_telemetry,
    hash_password,
    shared_telemetry_subscription,
    status_topic,
    telemetry_topic,
    write_broker_config,
)
from gridflock.gateways.mqtt.protocol import ID_PATTERN, check_id, gateway_of

MOSQUITTO_PASSWD = "/usr/bin/mosquitto_passwd"
SECRETS = {"A": "secret-of-A", "B": "secret-of-B", "H": "secret-of-H", "svc": "service-secret"}
TIMEOUT = 3.0
NOW = time.time()


# --- hashes and files -------------------------------------------------------------------------


def test_hash_password_format_and_known_vector():
    h = hash_password("pw", salt=b"0123456789ab")
    _, alg, it, salt, key = h.split("$")
    assert (alg, it) == ("7", "101")
    assert base64.b64decode(salt) == b"0123456789ab"
    assert base64.b64decode(key) == hashlib.pbkdf2_hmac("sha512", b"pw", b"0123456789ab", 101)
    assert hash_password("pw") != hash_password("pw")  # random salt
    assert hash_password("pw", iterations=1000).startswith("$7$1000$")
    with pytest.raises(ValueError, match="iterations"):
        hash_password("pw", iterations=0)


def test_hash_matches_mosquitto_passwd(tmp_path):
    tool = shutil.which(MOSQUITTO_PASSWD) or pytest.fail(f"{MOSQUITTO_PASSWD} is not installed")
    f = tmp_path / "pw"
    subprocess.run([tool, "-c", "-b", str(f), "alice", "wonder"], check=True, timeout=10)
    user, h = f.read_text().strip().split(":", 1)
    _, alg, it, salt, _ = h.split("$")
    assert (user, alg) == ("alice", "7")
    assert hash_password("wonder", iterations=int(it), salt=base64.b64decode(salt)) == h


def _acls(cfg: dict, role: str) -> set[tuple[str, str]]:
    (r,) = [r for r in cfg["roles"] if r["rolename"] == role]
    assert all(a["allow"] for a in r["acls"])
    return {(a["acltype"], a["topic"]) for a in r["acls"]}


def test_generated_accounts_and_acls():
    gws = [
        GatewayCredential("A", hash_password("a"), ["north", "g2"]),
        GatewayCredential("B", hash_password("b")),
    ]
    cfg = dynsec_config(gws, "svc", hash_password("s"))
    assert cfg["defaultACLAccess"] == {
        "publishClientSend": False,
        "publishClientReceive": False,
        "subscribe": False,
        "unsubscribe": True,
    }
    assert [c["username"] for c in cfg["clients"]] == ["svc", "A", "B"]
    assert ("subscribePattern", "$share/+/gf/v1/#") in _acls(cfg, "gridflock-service")
    a = _acls(cfg, "gateway-A")
    assert a == {
        ("publishClientSend", "gf/v1/A/telemetry"),
        ("publishClientSend", "gf/v1/A/status"),
        ("publishClientSend", "gf/v1/A/ack"),
        ("subscribeLiteral", "gf/v1/A/cmd"),
        ("subscribeLiteral", "gf/v1/A/ack"),
        ("subscribeLiteral", "gf/v1/groups/north/activate"),
        ("subscribeLiteral", "gf/v1/groups/g2/activate"),
        ("subscribeLiteral", "gf/v1/groups/+/activate"),
        ("publishClientReceive", "gf/v1/A/cmd"),
        ("publishClientReceive", "gf/v1/A/ack"),
        ("publishClientReceive", "gf/v1/groups/north/activate"),
        ("publishClientReceive", "gf/v1/groups/g2/activate"),
    }
    assert not any("$share" in t or "#" in t for _, t in a)  # no pattern, no share group
    # the stored hash carries over unchanged (same PBKDF2-SHA512 as mosquitto_passwd)
    h = hash_password("b", salt=b"0123456789ab")
    (_, b) = dynsec_config([GatewayCredential("B", h)], "svc", h)["clients"]
    assert f"$7${b['iterations']}${b['salt']}${b['password']}" == h
    with pytest.raises(ValueError, match="twice"):
        dynsec_config([*gws, GatewayCredential("svc", hash_password("x"))], "svc", h)
    with pytest.raises(ValueError, match="invalid gateway id"):
        dynsec_config([GatewayCredential("A/#", hash_password("x"))], "svc", h)
    with pytest.raises(ValueError, match="invalid group id"):
        dynsec_config([GatewayCredential("A", hash_password("x"), ["#"])], "svc", h)
    with pytest.raises(ValueError, match="not a Mosquitto"):
        dynsec_config([GatewayCredential("A", "plain-text")], "svc", h)


@pytest.mark.parametrize(
    "bad", ["gw:colon", "a" * 65, "-lead", ".hidden", "new\nline", "sp ace", "", "ü"]
)
def test_ids_outside_the_grammar_are_refused(bad):
    with pytest.raises(ValueError, match="1-64 characters"):
        check_id(bad, "gateway")


@given(st.from_regex(ID_PATTERN, fullmatch=True))
def test_every_id_of_the_grammar_is_a_topic_level_and_a_user_name(gw):
    assert check_id(gw, "gateway") == gw
    assert gateway_of(telemetry_topic(gw)) == gw
    assert not set(gw) & set("/+#$: \n\r\t\0")


def test_the_api_accepts_exactly_the_protocol_id_grammar():
    from gridflock.api.schemas import GatewayCreate

    schema = GatewayCreate.model_json_schema()["properties"]
    assert schema["id"]["pattern"] == ID_PATTERN
    assert schema["groups"]["items"]["pattern"] == ID_PATTERN
    assert schema["groups"]["maxItems"] == 64


def test_conf_file_contents(tmp_path):
    paths = write_broker_config(
        tmp_path / "b",
        [],
        "svc",
        hash_password("s"),
        port=8883,
        listener_address="0.0.0.0",
        tls_certfile="server.crt",
        tls_keyfile="server.key",
        tls_client_cafile="ca.crt",
    )
    conf = paths.conf.read_text()
    for line in (
        "allow_anonymous false",
        f"plugin_opt_config_file {paths.security}",
        "listener 8883 0.0.0.0",
        "persistence true",
        "require_certificate true",
        "persistent_client_expiration 1w",
    ):
        assert line in conf.splitlines()
    assert "certfile " in conf
    assert "keyfile " in conf
    assert "password_file" not in conf  # accounts live in the plugin's file
    assert "acl_file" not in conf
    assert paths.security.stat().st_mode & 0o077 in (0, 0o040)  # nobody else reads hashes
    with pytest.raises(ValueError, match="both"):
        write_broker_config(tmp_path / "c", [], "svc", hash_password("s"), tls_certfile="x")


def test_a_bad_record_leaves_the_previous_files_intact(tmp_path):
    good = [GatewayCredential("A", hash_password("a"))]
    paths = write_broker_config(tmp_path, good, "svc", hash_password("s"))
    before = {p: p.read_bytes() for p in (paths.conf, paths.security)}
    for bad in (
        [*good, GatewayCredential("gw:colon", hash_password("x"))],
        [*good, GatewayCredential("B", hash_password("b"), ["north\nuser svc"])],
        [*good, GatewayCredential("B", "not-a-hash")],
    ):
        with pytest.raises(ValueError, match=r"gateway id|group id|Mosquitto"):
            write_broker_config(tmp_path, bad, "svc", hash_password("s"))
        assert {p: p.read_bytes() for p in before} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "data",
        "dynamic-security.json",
        "mosquitto.conf",
    ]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    paths = write_broker_config(tmp_path, [], "svc", hash_password("s"))
    before = paths.security.read_bytes()

    def disk_full(fd, *_a):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(acl.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        write_broker_config(
            tmp_path, [GatewayCredential("A", hash_password("a"))], "svc", hash_password("s")
        )
    monkeypatch.undo()
    assert paths.security.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# --- a real broker (the ``broker`` fixture of conftest.py) -----------------------------------


class Peer:
    """A paho MQTT v5 client that records what it receives."""

    def __init__(self, port: int, user: str, password: str, will: bool = False) -> None:
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self.connack: ReasonCode | None = None
        self._connected = threading.Event()
        self._subacks: dict[int, list[ReasonCode]] = {}
        self._subscribed = threading.Condition()
        self.c = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=f"{user}-{uuid.uuid4().hex[:8]}",
            protocol=paho.MQTTv5,
        )
        self.c.username_pw_set(user, password)
        if will:
            self.c.will_set(status_topic(user), encode_status("offline"), qos=1, retain=True)
        self.c.on_connect = self._on_connect
        self.c.on_message = lambda _c, _u, m: self.messages.put(m)
        self.c.on_subscribe = self._on_subscribe
        self.c.connect("127.0.0.1", port, keepalive=10)
        self.c.loop_start()
        assert self._connected.wait(TIMEOUT), f"{user}: no CONNACK"

    def _on_connect(self, _c, _u, _flags, reason_code, _props) -> None:
        self.connack = reason_code
        self._connected.set()

    def _on_subscribe(self, _c, _u, mid, reason_codes, _props) -> None:
        with self._subscribed:
            self._subacks[mid] = reason_codes
            self._subscribed.notify_all()

    @property
    def ok(self) -> bool:
        return self.connack is not None and not self.connack.is_failure

    def subscribe(self, topic: str) -> ReasonCode:
        _, mid = self.c.subscribe(topic, qos=1)
        with self._subscribed:
            assert self._subscribed.wait_for(lambda: mid in self._subacks, TIMEOUT)
            return self._subacks[mid][0]

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(TIMEOUT)

    def until(self, topic: str) -> list[paho.MQTTMessage]:
        """Every message received up to and including the first one on ``topic``."""
        got = []
        deadline = time.monotonic() + TIMEOUT
        while True:
            m = self.messages.get(timeout=max(deadline - time.monotonic(), 0.01))
            got.append(m)
            if m.topic == topic:
                return got

    def close(self, with_will: bool = False) -> None:
        rc = (
            ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message")
            if with_will
            else None
        )
        self.c.disconnect(reasoncode=rc)
        self.c.loop_stop()


@pytest.fixture
def peers(broker) -> Iterator[dict[str, Peer]]:
    made: dict[str, Peer] = {}
    try:
        for user in ("svc", "A", "B"):
            made[user] = Peer(broker, user, SECRETS[user], will=user != "svc")
            assert made[user].ok, f"{user} could not log in: {made[user].connack}"
        yield made
    finally:
        for p in made.values():
            p.close()


def _telemetry(gw: str, device: str) -> bytes:
    return encode_telemetry(gw, [device], [NOW], [1.0])


def test_gateway_telemetry_reaches_the_service_only_under_its_own_prefix(peers):
    svc, a = peers["svc"], peers["A"]
    assert not svc.subscribe("gf/v1/#").is_failure
    assert not svc.subscribe(shared_telemetry_subscription()).is_failure
    a.publish(telemetry_topic("B"), _telemetry("B", "forged"))  # refused by the ACL
    a.publish(cmd_topic("A"), b'{"v":1}')  # a gateway cannot write commands, even its own
    a.publish(telemetry_topic("A"), _telemetry("A", "a-dev"))
    got = svc.until(telemetry_topic("A"))
    assert [m.topic for m in got] == [telemetry_topic("A")] * len(got)
    assert len(got) in (1, 2)  # once through gf/v1/#, maybe again through $share
    d = decode_telemetry(got[0].topic, got[0].payload, NOW)
    assert d.batch.device_ids.tolist() == ["a-dev"]


def test_gateway_reads_only_its_own_commands_and_groups(peers):
    svc, a, b = peers["svc"], peers["A"], peers["B"]
    # every SUBSCRIBE outside the gateway's own topics is refused outright
    for t in (cmd_topic("B"), "gf/v1/#", "#", "gf/v1/+/cmd", "$share/x/gf/v1/B/cmd"):
        assert a.subscribe(t).is_failure, t
    assert not b.subscribe(cmd_topic("B")).is_failure
    assert b.subscribe(activate_topic("north")).is_failure  # not B's group
    assert not b.subscribe("gf/v1/groups/+/activate").is_failure  # filtered per message
    for t in (cmd_topic("A"), ack_topic("A"), activate_topic("north")):
        assert not a.subscribe(t).is_failure
    svc.publish(cmd_topic("B"), b'{"for":"B"}')
    svc.publish(activate_topic("south"), encode_activate("p-south", NOW))
    svc.publish(ack_topic("B"), b'{"for":"B"}')
    svc.publish(activate_topic("north"), encode_activate("p-north", NOW))
    svc.publish(cmd_topic("A"), b'{"for":"A"}')
    got_a = a.until(cmd_topic("A"))
    topics_a = {m.topic for m in got_a}
    assert topics_a == {activate_topic("north"), cmd_topic("A")}
    assert b.until(cmd_topic("B"))[-1].payload == b'{"for":"B"}'
    # B is not in north: its wildcard on every group's broadcasts delivers only south's
    svc.publish(cmd_topic("B"), b'{"marker":1}')
    topics_b = {m.topic for m in b.until(cmd_topic("B"))}
    assert topics_b <= {cmd_topic("B"), activate_topic("south")}


def test_last_will_sets_retained_offline_status(broker, peers):
    peers["A"].publish(status_topic("A"), encode_status("online", NOW), retain=True)
    peers["A"].close(with_will=True)
    watcher = Peer(broker, "svc", SECRETS["svc"])
    try:
        watcher.subscribe(status_topic("A"))
        m = watcher.until(status_topic("A"))[-1]
        assert m.retain
        assert decode_status(m.payload).status == "offline"
    finally:
        watcher.close()


def test_wrong_password_and_unknown_user_are_refused(broker):
    for user, pw in (("A", "not-the-secret"), ("A", SECRETS["B"]), ("nobody", "x")):
        p = Peer(broker, user, pw)
        try:
            assert p.connack is not None
            assert p.connack.is_failure, f"{user} logged in with a wrong password"
        finally:
            p.close()


def test_broker_files_are_where_the_conf_says(tmp_path):
    paths = write_broker_config(tmp_path, [], "svc", hash_password("s"))
    assert Path(paths.conf).parent == tmp_path.resolve()


def test_the_broker_reads_its_files_after_dropping_privileges():
    """Started as root, Mosquitto drops to ``mosquitto`` and must still read its accounts."""
    if os.geteuid() != 0:
        pytest.skip("only a broker started as root drops privileges")
    import pwd
    import tempfile

    try:
        broker_user = pwd.getpwnam("mosquitto")
    except KeyError:
        pytest.fail("the mosquitto package's user 'mosquitto' does not exist")
    exe = shutil.which("/usr/sbin/mosquitto") or pytest.fail("mosquitto is not installed")
    work = Path(tempfile.mkdtemp(prefix="gf-broker-", dir="/tmp"))  # traversable by mosquitto
    work.chmod(0o755)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    proc = None
    try:
        paths = write_broker_config(
            work / "broker",
            [GatewayCredential("A", hash_password(SECRETS["A"]))],
            "svc",
            hash_password(SECRETS["svc"]),
            port=port,
            persistence=True,
        )
        assert "\nuser " not in paths.conf.read_text()  # Mosquitto's default: mosquitto
        st_ = paths.security.stat()
        assert (st_.st_uid, st_.st_gid, st_.st_mode & 0o777) == (0, broker_user.pw_gid, 0o640)
        log = work / "log"
        with log.open("wb") as f:
            proc = subprocess.Popen([exe, "-c", str(paths.conf)], stdout=f, stderr=f)
        deadline = time.monotonic() + 10
        while True:
            assert proc.poll() is None, f"mosquitto exited: {log.read_text()[-1500:]}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "mosquitto did not listen within 10 s"
                time.sleep(0.05)
        status = Path(f"/proc/{proc.pid}/status").read_text()
        uid = next(int(x.split()[1]) for x in status.splitlines() if x.startswith("Uid:"))
        assert uid == broker_user.pw_uid  # it did drop privileges
        for user in ("svc", "A"):
            p = Peer(port, user, SECRETS[user])
            try:
                assert p.ok, f"{user} could not log in: {p.connack}"
            finally:
                p.close()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)
