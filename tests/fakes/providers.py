"""Fake AI-provider APIs for key checks: one real HTTP server on 127.0.0.1.

It answers the cheap authenticated calls Kay's validators make, with each provider's real
auth header and its real success and rejection bodies:

=================  ====================================  ==============================
provider           request                               credential
=================  ====================================  ==============================
OpenAI (+compat)   GET {base}/v1/models                  Authorization: Bearer
OpenAI admin       GET {base}/v1/organization/projects   Authorization: Bearer sk-admin-…
Mistral            GET {base}/v1/models                  Authorization: Bearer
Groq               GET {base}/openai/v1/models           Authorization: Bearer
Anthropic          GET {base}/v1/models                  x-api-key + anthropic-version
Anthropic admin    GET {base}/v1/organizations/api_keys  x-api-key sk-ant-admin…
Gemini             GET {base}/v1beta/models              x-goog-api-key (bad key: 400)
OpenRouter         GET {base}/api/v1/key                 Authorization: Bearer
Exa                GET {base}/websets/v0/websets         x-api-key
=================  ====================================  ==============================

A key is valid when it is in ``valid_keys``; an OpenRouter key also in
``management_keys`` is a management key (its ``/key`` answer says so). ``fail_status``
makes every request answer that status (e.g. 500); ``delay`` makes every answer late
(timeouts). With ``tls`` (from ``tls_files()``) it speaks https, as a user's own model
server would.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.fakes.server import JSONHandler, LocalHTTPServer

BASE_URL_SETTINGS = {
    "OPENAI_BASE_URL": "/v1",
    "ANTHROPIC_BASE_URL": "",
    "GEMINI_BASE_URL": "",
    "OPENROUTER_BASE_URL": "/api/v1",
    "MISTRAL_BASE_URL": "/v1",
    "GROQ_BASE_URL": "/openai/v1",
    "EXA_BASE_URL": "",
    "COPILOTKIT_BASE_URL": "",
}


def _openai_models() -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"}
        ],
    }


def _openai_unauthorized(key: str) -> dict[str, Any]:
    shown = f"{key[:3]}*****{key[-4:]}" if key else ""
    return {
        "error": {
            "message": f"Incorrect API key provided: {shown}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }


def _anthropic_admin(headers: dict[str, str], valid_keys: set[str]) -> tuple[int, dict[str, Any]]:
    """``GET /v1/organizations/api_keys``: an admin key lists the organisation's keys; an
    API key is refused (403), an unknown key too (401)."""
    key = headers.get("x-api-key", "")
    if key not in valid_keys:
        error = {"type": "authentication_error", "message": "invalid x-api-key"}
        return 401, {"type": "error", "error": error}
    if not key.startswith("sk-ant-admin") or not headers.get("anthropic-version"):
        error = {"type": "permission_error", "message": "This endpoint requires an admin key"}
        return 403, {"type": "error", "error": error}
    item = {
        "id": "apikey_01Rj2N8SVvo6BePZj99NhmiT",
        "type": "api_key",
        "name": "Developer Key",
        "workspace_id": "wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ",
        "created_at": "2024-10-30T23:58:27.427722Z",
        "created_by": {"id": "user_01WCz1FkmYMm4gnmykNKUu3Q", "type": "user"},
        "partial_key_hint": "sk-ant-api03-R2D...igAA",
        "status": "active",
    }
    return 200, {"data": [item], "has_more": True, "first_id": item["id"], "last_id": item["id"]}


def tls_files(directory: Path, hostname: str) -> tuple[Path, Path, Path]:
    """A throw-away CA and a certificate for ``hostname`` only (no IP address) signed by
    it: ``(ca.pem, cert.pem, key.pem)``. Trust the CA with ``SSL_CERT_FILE``."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Kay test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
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
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


class FakeProviders(LocalHTTPServer):
    def __init__(
        self, valid_keys: set[str] | None = None, *, tls: tuple[Path, Path, Path] | None = None
    ) -> None:
        self.valid_keys: set[str] = set(valid_keys or ())
        self.management_keys: set[str] = set()
        self.fail_status: int | None = None
        self.delay = 0.0
        # When set, every request to another path is answered 302 → this URL.
        self.redirect_to: str | None = None
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        super().__init__()
        self.scheme = "http"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls[1], tls[2])
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def configure(self, settings: Any) -> None:
        """Point every provider's base URL at this fake (allowed although it is private),
        with a short check timeout; ``settings`` is pytest-django's fixture."""
        for name, suffix in BASE_URL_SETTINGS.items():
            setattr(settings, name, self.base_url + suffix)
        settings.KEYS_VALIDATION_TIMEOUT = 1.0
        settings.KEYS_ALLOW_PRIVATE_BASE_URLS = True

    # --- protocol ------------------------------------------------------------------------

    def respond(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if self.fail_status:
            return self.fail_status, {"error": {"message": "The server had an error."}}
        bearer = headers.get("authorization", "")
        bearer_key = bearer[7:] if bearer.lower().startswith("bearer ") else ""
        if path == "/v1/organizations/api_keys":  # Anthropic's Admin API
            return _anthropic_admin(headers, self.valid_keys)
        if path == "/v1/models" and "x-api-key" in headers:  # Anthropic
            if headers["x-api-key"].startswith("sk-ant-admin"):
                # An admin key can only call the Admin API.
                return 401, {
                    "type": "error",
                    "error": {"type": "authentication_error", "message": "invalid x-api-key"},
                }
            if not headers.get("anthropic-version"):
                return 400, {
                    "type": "error",
                    "error": {
                        "type": "invalid_request_error",
                        "message": "anthropic-version required",
                    },
                }
            if headers["x-api-key"] not in self.valid_keys:
                return 401, {
                    "type": "error",
                    "error": {"type": "authentication_error", "message": "invalid x-api-key"},
                }
            return 200, {
                "data": [
                    {
                        "type": "model",
                        "id": "claude-sonnet-4-5",
                        "display_name": "Claude Sonnet 4.5",
                        "created_at": "2025-09-29T00:00:00Z",
                    }
                ],
                "has_more": False,
                "first_id": "claude-sonnet-4-5",
                "last_id": "claude-sonnet-4-5",
            }
        if path in ("/v1/models", "/openai/v1/models"):
            if bearer_key not in self.valid_keys or bearer_key.startswith("sk-admin-"):
                return 401, _openai_unauthorized(bearer_key)
            return 200, _openai_models()
        if path == "/v1/organization/projects":
            if bearer_key not in self.valid_keys:
                return 401, _openai_unauthorized(bearer_key)
            if not bearer_key.startswith("sk-admin-"):
                return 403, {
                    "error": {
                        "message": "You have insufficient permissions for this "
                        "operation. Missing scopes: api.management.read.",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": None,
                    }
                }
            return 200, {
                "object": "list",
                "data": [
                    {
                        "id": "proj_abc",
                        "object": "organization.project",
                        "name": "Default project",
                        "created_at": 1711471533,
                        "archived_at": None,
                        "status": "active",
                    }
                ],
                "first_id": "proj_abc",
                "last_id": "proj_abc",
                "has_more": False,
            }
        if path == "/v1beta/models":
            if headers.get("x-goog-api-key") not in self.valid_keys:
                return 400, {
                    "error": {
                        "code": 400,
                        "message": "API key not valid. Please pass a valid API key.",
                        "status": "INVALID_ARGUMENT",
                        "details": [
                            {
                                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                "reason": "API_KEY_INVALID",
                                "domain": "googleapis.com",
                            }
                        ],
                    }
                }
            return 200, {
                "models": [{"name": "models/gemini-2.5-flash", "displayName": "Gemini 2.5 Flash"}],
                "nextPageToken": "x",
            }
        if path == "/api/v1/key":
            if bearer_key not in self.valid_keys:
                return 401, {"error": {"message": "No auth credentials found", "code": 401}}
            return 200, {
                "data": {
                    "label": f"{bearer_key[:12]}...{bearer_key[-3:]}",
                    "limit": None,
                    "usage": 0.25,
                    "is_free_tier": False,
                    "limit_remaining": None,
                    "is_management_key": bearer_key in self.management_keys,
                    "is_provisioning_key": bearer_key in self.management_keys,
                }
            }
        if path == "/websets/v0/websets":
            if headers.get("x-api-key") not in self.valid_keys:
                return 401, {"error": "Invalid API key"}
            return 200, {"data": [], "hasMore": False, "nextCursor": None}
        return 404, {"error": {"message": f"no route {path}"}}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(JSONHandler):
            def do_GET(self) -> None:  # noqa: N802
                path = urlparse(self.path).path
                headers = {name.lower(): value for name, value in self.headers.items()}
                with fake._lock:
                    fake.requests.append({"path": path, "headers": headers})
                if fake.delay:
                    time.sleep(fake.delay)
                if fake.redirect_to and not fake.redirect_to.endswith(path):
                    self.send_json(302, {}, location=fake.redirect_to)
                    return
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    # The client may have given up (timeout tests).
                    self.send_json(*fake.respond(path, headers))

        return Handler
