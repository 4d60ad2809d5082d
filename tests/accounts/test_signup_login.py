"""Email sign-up, confirmation, login, logout and password reset through allauth."""

import re

import pytest
from django.core import mail
from django.db import IntegrityError, transaction

from accounts.models import User
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def _link(body: str) -> str:
    return re.search(r"https?://\S+", body).group(0)


def test_sign_up_confirm_and_reach_the_dashboard(client):
    response = client.post(
        "/accounts/signup/",
        {"email": "New.Person@Example.com", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert response.status_code == 302
    user = User.objects.get()
    assert user.email == "new.person@example.com"
    # Unconfirmed: no dashboard yet.
    assert client.get("/dashboard/").status_code == 302
    assert len(mail.outbox) == 1
    confirm_url = _link(mail.outbox[0].body)
    path = confirm_url.split("://", 1)[1].split("/", 1)[1]
    assert client.get("/" + path).status_code == 200
    response = client.post("/" + path)
    assert response.status_code == 302
    assert client.get("/dashboard/").status_code == 200


def test_login_is_case_insensitive_and_logout_ends_it(client, alice):
    response = client.post("/accounts/login/", {"login": "ALICE@example.COM", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/dashboard/").status_code == 200
    client.post("/accounts/logout/")
    assert client.get("/dashboard/").status_code == 302


def test_wrong_password_is_refused(client, alice):
    response = client.post("/accounts/login/", {"login": alice.email, "password": "nope"})
    assert response.status_code == 200
    assert b"not correct" in response.content
    assert client.get("/dashboard/").status_code == 302


def test_email_is_unique_whatever_its_case(alice):
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create_user(email="ALICE@EXAMPLE.COM")


def test_password_reset_by_email(client, alice):
    client.post("/accounts/password/reset/", {"email": alice.email})
    assert len(mail.outbox) == 1
    reset_url = _link(mail.outbox[0].body)
    path = "/" + reset_url.split("://", 1)[1].split("/", 1)[1]
    response = client.get(path, follow=True)
    form_path = response.redirect_chain[-1][0] if response.redirect_chain else path
    response = client.post(
        form_path, {"password1": "a brand new passphrase", "password2": "a brand new passphrase"}
    )
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password("a brand new passphrase")


def test_failed_logins_are_rate_limited(client, alice):
    for _ in range(5):
        client.post("/accounts/login/", {"login": alice.email, "password": "wrong"})
    # Even the right password is refused once the limit is reached.
    response = client.post("/accounts/login/", {"login": alice.email, "password": PASSWORD})
    assert b"Too many failed login attempts" in response.content
    assert client.get("/dashboard/").status_code == 302


def test_account_pages_use_the_kay_layout(client):
    for path in ("/accounts/login/", "/accounts/signup/", "/accounts/password/reset/"):
        html = client.get(path).content.decode()
        assert "css/kay.css" in html
        assert 'class="brand"' in html
        assert "<label" in html
