"""Sign in with Google through allauth, against a fake Google token endpoint on 127.0.0.1."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import jwt
import pytest
from allauth.socialaccount.providers.google.views import GoogleOAuth2Adapter

from accounts.models import User

pytestmark = pytest.mark.django_db

CLIENT_ID = "kay-test.apps.googleusercontent.com"


class _GoogleToken(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):
        length = int(self.headers["Content-Length"])
        form = parse_qs(self.rfile.read(length).decode())
        _GoogleToken.received.append(form)
        now = int(time.time())
        id_token = jwt.encode(
            {
                "iss": "https://accounts.google.com",
                "aud": CLIENT_ID,
                "sub": "109876543210",
                "email": "Grace@Example.com",
                "email_verified": True,
                "name": "Grace Hopper",
                "given_name": "Grace",
                "family_name": "Hopper",
                "iat": now,
                "exp": now + 3600,
            },
            "not-verified-because-fetched-over-tls",
            algorithm="HS256",
        )
        body = json.dumps(
            {"access_token": "ya29.fake", "expires_in": 3599, "id_token": id_token}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_google(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _GoogleToken)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _GoogleToken.received = []
    monkeypatch.setattr(
        GoogleOAuth2Adapter, "access_token_url", f"http://127.0.0.1:{server.server_port}/token"
    )
    yield _GoogleToken
    server.shutdown()


@pytest.fixture
def google_configured(settings):
    settings.SOCIALACCOUNT_PROVIDERS = {
        "google": {
            "APP": {"client_id": CLIENT_ID, "secret": "google-secret", "key": ""},
            "SCOPE": ["profile", "email"],
            "EMAIL_AUTHENTICATION": True,
        }
    }


def test_google_button_only_when_configured(client, settings):
    settings.SOCIALACCOUNT_PROVIDERS = {}
    assert b"Sign in with Google" not in client.get("/accounts/login/").content


def test_google_button_when_configured(client, google_configured):
    assert b"Sign in with Google" in client.get("/accounts/login/").content


def test_sign_in_with_google_creates_a_verified_account(client, google_configured, fake_google):
    response = client.post("/accounts/google/login/")
    assert response.status_code == 302
    authorize = urlparse(response["Location"])
    assert authorize.netloc == "accounts.google.com"
    query = parse_qs(authorize.query)
    assert query["client_id"] == [CLIENT_ID]
    state = query["state"][0]

    response = client.get("/accounts/google/login/callback/", {"code": "auth-code", "state": state})
    assert response.status_code == 302, response.content[:500]
    assert fake_google.received[0]["code"] == ["auth-code"]
    user = User.objects.get(email="grace@example.com")
    assert user.name == "Grace Hopper"
    assert user.emailaddress_set.get().verified
    assert client.get("/dashboard/").status_code == 200


def test_a_forged_state_is_refused(client, google_configured, fake_google):
    client.post("/accounts/google/login/")
    response = client.get("/accounts/google/login/callback/", {"code": "c", "state": "forged"})
    assert not User.objects.exists()
    assert fake_google.received == []
    assert client.get("/dashboard/").status_code == 302
    assert response.status_code == 401
    assert b"css/kay.css" in response.content  # our styled error page, not a bare one
