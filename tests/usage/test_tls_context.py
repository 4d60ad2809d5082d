"""One TLS context per process for usage fetches: building a verifying context loads every
trusted certificate, which cost more CPU than a fetch when each client built its own. The
shared context must still refuse a certificate it does not trust."""

import datetime as dt
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import httpx2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from core.errors import ProviderUnavailable
from core.http import http_client, sdk_tls_context, tls_context
from usage.providers.openai import fetch_openai_usage

ADMIN = "sk-admin-FakeOrgAdminKey0000000000000000000000Zz01"
NOW = dt.datetime(2025, 1, 10, tzinfo=dt.UTC)
DAY_BEFORE = NOW - dt.timedelta(days=1)


@pytest.fixture
def trust_store_loads(monkeypatch) -> Iterator[list[object]]:
    """Each time any SSL context loads trusted certificates, from a fresh process cache."""
    loads: list[object] = []
    load = ssl.SSLContext.load_verify_locations

    def counted(self, *args, **kwargs):
        loads.append(self)
        return load(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counted)
    tls_context.cache_clear()
    sdk_tls_context.cache_clear()
    yield loads
    tls_context.cache_clear()
    sdk_tls_context.cache_clear()


def test_many_openai_fetches_load_the_trusted_certificates_once(settings, trust_store_loads):
    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"  # nothing listens: no answer needed
    for _ in range(3):
        with pytest.raises(ProviderUnavailable):
            fetch_openai_usage(admin_key=ADMIN, start=DAY_BEFORE, end=NOW, bucket_width="1d")
    assert len(trust_store_loads) == 1


def test_many_http_clients_load_the_trusted_certificates_once(trust_store_loads):
    for _ in range(3):
        http_client(timeout=5).close()
    assert len(trust_store_loads) == 1


@pytest.mark.parametrize(
    ("shared", "default"),
    [(sdk_tls_context, httpx2.create_ssl_context), (tls_context, httpx.create_ssl_context)],
    ids=["openai-sdk", "http_client"],
)
def test_the_shared_context_trusts_what_the_library_would_and_checks_host_names(shared, default):
    context = shared()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.cert_store_stats() == default().cert_store_stats()
    assert context.get_ca_certs() == default().get_ca_certs()


# --- A TLS server whose certificate nobody trusts -----------------------------------------


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _Answer(BaseHTTPRequestHandler):
    requests = 0

    def do_GET(self) -> None:
        _Answer.requests += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format, *args) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass  # the client refusing our certificate is what the tests expect


@pytest.fixture
def untrusted_tls_origin(tmp_path) -> Iterator[str]:
    cert, key = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = _QuietServer(("127.0.0.1", 0), _Answer)
    # Handshakes in the request threads: a refused one must not stop the server.
    server.socket = context.wrap_socket(
        server.socket, server_side=True, do_handshake_on_connect=False
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Answer.requests = 0
    yield f"https://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_openai_fetches_still_refuse_a_certificate_nobody_trusts(settings, untrusted_tls_origin):
    settings.OPENAI_BASE_URL = f"{untrusted_tls_origin}/v1"
    for _ in range(2):  # the second client reuses the first one's context
        with pytest.raises(ProviderUnavailable):
            fetch_openai_usage(admin_key=ADMIN, start=DAY_BEFORE, end=NOW, bucket_width="1d")
    assert _Answer.requests == 0  # the key was never sent


def test_http_clients_still_refuse_a_certificate_nobody_trusts(untrusted_tls_origin):
    for _ in range(2):
        with http_client(timeout=5) as client, pytest.raises(httpx.ConnectError):
            client.get(f"{untrusted_tls_origin}/", headers={"Authorization": "Bearer secret"})
    assert _Answer.requests == 0
