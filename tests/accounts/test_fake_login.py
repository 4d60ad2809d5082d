"""The development-only fake login (seed 000, "Proxy to production")."""

import importlib

import pytest
from django.urls import clear_url_caches

from accounts.models import User

pytestmark = pytest.mark.django_db


def _reload_urls():
    import accounts.urls
    import config.urls

    importlib.reload(accounts.urls)
    importlib.reload(config.urls)
    clear_url_caches()


@pytest.fixture
def debug_urls(settings):
    settings.DEBUG = True
    _reload_urls()
    yield
    settings.DEBUG = False
    _reload_urls()


def test_it_logs_in_as_any_email_creating_the_user(client, debug_urls):
    response = client.post("/accounts/fake-login/", {"email": "Someone@Example.com"})
    assert response.status_code == 302
    user = User.objects.get(email="someone@example.com")
    assert not user.is_staff
    assert not user.has_usable_password()
    assert client.get("/dashboard/").status_code == 200


def test_admin_domain_emails_become_staff(client, debug_urls, settings):
    settings.FAKE_LOGIN_ADMIN_DOMAIN = "admin.example.com"
    client.post("/accounts/fake-login/", {"email": "my-fullname@admin.example.com"})
    assert User.objects.get(email="my-fullname@admin.example.com").is_staff
    assert client.get("/admin/").status_code == 200


def test_it_logs_into_an_existing_account(client, debug_urls, alice):
    client.post("/accounts/fake-login/", {"email": "ALICE@example.com"})
    assert User.objects.count() == 1
    assert client.get("/dashboard/").context["user"] == alice


def test_a_bad_email_is_refused(client, debug_urls):
    response = client.post("/accounts/fake-login/", {"email": "not-an-email"})
    assert response.status_code == 200
    assert b"Enter a valid email address" in response.content
    assert not User.objects.exists()


def test_the_route_does_not_exist_without_debug(client, settings):
    settings.DEBUG = False
    _reload_urls()
    assert client.get("/accounts/fake-login/").status_code == 404
    assert client.post("/accounts/fake-login/", {"email": "x@admin.example.com"}).status_code == 404
    assert not User.objects.exists()
