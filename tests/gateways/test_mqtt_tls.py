"""MQTT over TLS: the service and the simulated gateways on ``mqtts://`` with a local CA.

The test makes its own CA, a server certificate for 127.0.0.1 and a client certificate
(``cryptography``), and starts a private Mosquitto whose only listener speaks TLS and
requires a client certificate signed by that CA (as well as the password).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gridflock.fleet.generate import generate_fleet
from gridflock.gateways.mqtt.link import BrokerAddress, MqttLink
from gridflock.sim.gateways import SimulatedGateways
from gridflock.sim.imperfections import Imperfections

HOST = "127.0.0.1"
SVC_SECRET = "service-secret"  # conftest.SECRETS["svc"]


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    san: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer if issuer else (_name(subject), key)
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        b = b.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if san:
        b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, str]:
    """A local CA with a server certificate for 127.0.0.1 and a client certificate."""
    d = tmp_path / "pki"
    d.mkdir()
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("Gridflock test CA", ca_key, None, ca=True)
    _write(d / "ca", ca, ca_key)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _cert(
        "broker",
        server_key,
        (ca.subject, ca_key),
        san=[x509.IPAddress(ipaddress.ip_address(HOST)), x509.DNSName("localhost")],
    )
    _write(d / "server", server, server_key)
    client_key = ec.generate_private_key(ec.SECP256R1())
    _write(d / "client", _cert("gridflock-service", client_key, (ca.subject, ca_key)), client_key)
    other_key = ec.generate_private_key(ec.SECP256R1())  # a CA nobody trusts
    _write(d / "other-ca", _cert("Other CA", other_key, None, ca=True), other_key)
    return {
        name: str(d / f"{stem}.{ext}")
        for name, stem, ext in (
            ("ca", "ca", "crt"),
            ("server_cert", "server", "crt"),
            ("server_key", "server", "key"),
            ("client_cert", "client", "crt"),
            ("client_key", "client", "key"),
            ("other_ca", "other-ca", "crt"),
        )
    }


@pytest.fixture
def tls_port(make_broker: Callable[..., Any], pki: dict[str, str]) -> int:
    b = make_broker(
        tls_certfile=pki["server_cert"],
        tls_keyfile=pki["server_key"],
        tls_client_cafile=pki["ca"],
    )
    return int(b.port)


async def _until(cond: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := cond()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}", pytrace=False)
        await asyncio.sleep(0.05)
    return value


def test_service_and_simulated_gateways_speak_mqtts(tls_port: int, pki: dict[str, str]) -> None:
    spec = generate_fleet(3, 1)
    dev = spec.all_devices()
    url = f"mqtts://{HOST}:{tls_port}"
    tls = {"ca_file": pki["ca"], "cert_file": pki["client_cert"], "key_file": pki["client_key"]}

    async def scenario() -> None:
        link = MqttLink(
            BrokerAddress.parse(url, "svc", SVC_SECRET, **tls),
            dict(zip(dev["id"], dev["gateway_id"], strict=True)),
        )
        task = asyncio.create_task(link.run())
        # the simulated gateways share the service account here (the test broker has no
        # account per generated gateway): what is tested is their TLS connection
        sim = SimulatedGateways(
            spec,
            url,
            step_s=1.0,
            connections=1,
            username="svc",
            password=SVC_SECRET,
            imperfections=Imperfections.ideal(),
            tls_ca_file=pki["ca"],
            tls_cert_file=pki["client_cert"],
            tls_key_file=pki["client_key"],
        )
        sim_task = asyncio.create_task(sim.run())
        try:
            await _until(lambda: link.connected, "the service to connect over TLS")
            got: list[str] = []

            def poll() -> int:
                got.extend(d for b in link.receive() for d in b.device_ids.tolist())
                return len(got)

            await _until(lambda: poll() > 0, "telemetry over TLS")
            assert set(got) <= set(dev["id"])
        finally:
            sim.stop()
            link.stop()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(10):
                    await asyncio.gather(sim_task, task)

    asyncio.run(asyncio.wait_for(scenario(), 60))


@pytest.mark.parametrize("case", ["no client certificate", "untrusted broker", "plain mqtt"])
def test_tls_is_not_optional(tls_port: int, pki: dict[str, str], case: str) -> None:
    files = {
        "no client certificate": {"ca_file": pki["ca"]},
        "untrusted broker": {
            "ca_file": pki["other_ca"],
            "cert_file": pki["client_cert"],
            "key_file": pki["client_key"],
        },
        "plain mqtt": {},
    }[case]
    scheme = "mqtt" if case == "plain mqtt" else "mqtts"
    link = MqttLink(
        BrokerAddress.parse(f"{scheme}://{HOST}:{tls_port}", "svc", SVC_SECRET, **files), {}
    )

    link.connect_timeout_s = 2.0

    async def connect() -> None:
        await link.connect()

    with pytest.raises(ConnectionError, match="MQTT broker"):  # a message, not a hang
        asyncio.run(asyncio.wait_for(connect(), 15))
    assert not link.connected


def test_tls_files_need_mqtts() -> None:
    with pytest.raises(ValueError, match="mqtts://"):
        BrokerAddress.parse("mqtt://h:1883", ca_file="ca.crt")
    with pytest.raises(ValueError, match="not mqtts://"):
        SimulatedGateways(generate_fleet(1, 1), "mqtt://h:1883", tls_ca_file="ca.crt")
