"""`gridflock serve` over HTTPS, with a certificate from a local CA the test makes."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

GRIDFLOCK = [sys.executable, "-m", "gridflock"]


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca_and_server_cert(folder: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate for 127.0.0.1 and localhost it signed: (ca, cert, key) PEMs."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("Gridflock test CA"))
        .issuer_name(_name("Gridflock test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    paths[2].chmod(0o600)
    return paths


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_over_https_verified_against_a_local_ca(tmp_path: Path) -> None:
    ca, cert, key = make_ca_and_server_cert(tmp_path)
    port = free_port()
    env = {
        **os.environ,
        "GRIDFLOCK_DATABASE_URL": f"sqlite:///{tmp_path / 'gf.db'}",
        "GRIDFLOCK_PORT": str(port),
        "GRIDFLOCK_TLS_CERTFILE": str(cert),
        "GRIDFLOCK_TLS_KEYFILE": str(key),
        "GRIDFLOCK_CONFIG": str(tmp_path / "none.toml"),
    }
    env.pop("GRIDFLOCK_MQTT_URL", None)
    subprocess.run([*GRIDFLOCK, "db", "upgrade"], env=env, check=True, capture_output=True)
    log = (tmp_path / "serve.log").open("w")
    serve = subprocess.Popen(
        [*GRIDFLOCK, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT, text=True
    )
    trusted = ssl.create_default_context(cafile=str(ca))
    url = f"https://127.0.0.1:{port}/api/v1/health"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert serve.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                r = httpx.get(url, verify=trusted, timeout=5)
                break
            except httpx.ConnectError as e:
                if "CERTIFICATE" in str(e).upper() or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert r.status_code == 200
        assert r.headers["strict-transport-security"].startswith("max-age=")
        # a client that does not trust the local CA refuses the server
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(url, timeout=5)
        # and plain HTTP on the same port gets no answer from the API
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=5)
    finally:
        serve.send_signal(signal.SIGINT)
        try:
            serve.wait(timeout=20)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait()
        log.close()
    assert "https://127.0.0.1" in (tmp_path / "serve.log").read_text()


def test_a_certificate_without_its_key_is_refused(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "GRIDFLOCK_DATABASE_URL": f"sqlite:///{tmp_path / 'gf.db'}",
        "GRIDFLOCK_TLS_CERTFILE": str(tmp_path / "missing.pem"),
        "GRIDFLOCK_CONFIG": str(tmp_path / "none.toml"),
    }
    r = subprocess.run(
        [*GRIDFLOCK, "serve"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert r.returncode == 2
    assert "GRIDFLOCK_TLS_KEYFILE" in r.stderr
