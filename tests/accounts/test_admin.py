import pytest

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def test_operator_logs_in_and_manages_users(client, staff, alice):
    response = client.post("/admin/login/", {"username": staff.email, "password": PASSWORD})
    assert response.status_code == 302
    page = client.get("/admin/")
    assert "Kay operator console" in page.content.decode()
    listing = client.get("/admin/accounts/user/?q=alice")
    assert alice.email in listing.content.decode()
    response = client.post(
        f"/admin/accounts/user/{alice.pk}/change/",
        {
            "email": alice.email,
            "name": "Alice Renamed",
            "is_active": "on",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
        },
    )
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.name == "Alice Renamed"


def test_operator_creates_a_user(client, staff):
    client.force_login(staff)
    response = client.post(
        "/admin/accounts/user/add/",
        {
            "email": "New@Example.com",
            "password1": "x-strong-pass-123",
            "password2": "x-strong-pass-123",
            "usable_password": "true",
        },
    )
    assert response.status_code == 302
    from accounts.models import User

    assert User.objects.filter(email="new@example.com").exists()


def test_regular_users_cannot_enter_the_console(client, alice):
    client.force_login(alice)
    response = client.get("/admin/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
