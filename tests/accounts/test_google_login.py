"""Sign in with Google through allauth, against the fake Google on 127.0.0.1."""

from urllib.parse import parse_qs, urlparse

import pytest
from allauth.socialaccount.providers.google.views import GoogleOAuth2Adapter

from accounts.models import User
from tests.connections.helpers import consent
from tests.fakes.google import CLIENT_ID, CLIENT_SECRET, FakeGoogle

pytestmark = pytest.mark.django_db


@pytest.fixture
def google_configured(settings):
    settings.SOCIALACCOUNT_PROVIDERS = {
        "google": {
            "APP": {"client_id": CLIENT_ID, "secret": CLIENT_SECRET, "key": ""},
            "SCOPE": ["profile", "email"],
            "EMAIL_AUTHENTICATION": True,
        }
    }


@pytest.fixture
def fake_google(google_configured, monkeypatch):
    fake = FakeGoogle().start()
    # allauth reads Google's URLs from settings once, at import: point its adapter instead.
    monkeypatch.setattr(GoogleOAuth2Adapter, "authorize_url", fake.authorize_url)
    monkeypatch.setattr(GoogleOAuth2Adapter, "access_token_url", fake.access_token_url)
    yield fake
    fake.stop()


def test_google_button_only_when_configured(client, settings):
    settings.SOCIALACCOUNT_PROVIDERS = {}
    assert b"Sign in with Google" not in client.get("/accounts/login/").content


def test_google_button_when_configured(client, google_configured):
    assert b"Sign in with Google" in client.get("/accounts/login/").content


def test_sign_in_with_google_creates_a_verified_account(client, fake_google):
    response = client.post("/accounts/google/login/")
    assert response.status_code == 302
    assert response["Location"].startswith(fake_google.authorize_url)
    assert parse_qs(urlparse(response["Location"]).query)["client_id"] == [CLIENT_ID]

    back = consent(response["Location"])  # Google sends the browser back with a code
    response = client.get(back)
    assert response.status_code == 302, response.content[:500]
    code = parse_qs(urlparse(back).query)["code"]
    assert [request["code"] for request in fake_google.token_requests] == code
    user = User.objects.get(email="grace@example.com")
    assert user.name == "Grace Hopper"
    assert user.emailaddress_set.get().verified
    assert client.get("/dashboard/").status_code == 200


def test_a_forged_state_is_refused(client, fake_google):
    client.post("/accounts/google/login/")
    response = client.get("/accounts/google/login/callback/", {"code": "c", "state": "forged"})
    assert not User.objects.exists()
    assert fake_google.token_requests == []
    assert client.get("/dashboard/").status_code == 302
    assert response.status_code == 401
    assert b"css/kay.css" in response.content  # our styled error page, not a bare one


def test_a_code_google_refuses_signs_in_no_one(client, fake_google):
    started = client.post("/accounts/google/login/")
    state = parse_qs(urlparse(started["Location"]).query)["state"][0]
    response = client.get("/accounts/google/login/callback/", {"code": "4/never", "state": state})
    assert [request["code"] for request in fake_google.token_requests] == ["4/never"]
    assert not User.objects.exists()
    assert client.get("/dashboard/").status_code == 302
    assert b"css/kay.css" in response.content


@pytest.mark.parametrize(
    "path",
    [
        "/accounts/google/login/",
        "/accounts/google/login/callback/",
        "/accounts/google/login/token/",
    ],
)
def test_google_pages_are_404_when_google_sign_in_is_not_configured(client, db, settings, path):
    settings.SOCIALACCOUNT_PROVIDERS = {}
    client.raise_request_exception = False
    assert client.get(path).status_code == 404
    assert client.post(path).status_code in (403, 404)  # CSRF first for a POST
