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


def test_the_console_is_branded_with_one_accounts_section(client, staff):
    client.force_login(staff)
    html = client.get("/admin/").content.decode()
    assert "<title>Kay operator console | Kay operator console</title>" in html
    assert html.count('class="app-accounts module') == 1
    for name in ("API tokens", "CLI sessions", "Device logins", "Email addresses", "Groups"):
        assert f">{name}</a>" in html, name
    for section in ("app-account ", "app-auth ", "app-socialaccount "):
        assert section not in html
    assert "Operations" not in html


def test_a_signed_in_non_operator_gets_a_plain_operators_only_page(alice_browser):
    response = alice_browser.get("/admin/", follow=True)
    assert response.status_code == 403
    html = response.content.decode()
    assert "Operators only" in html and "alice@example.com" in html
    assert 'name="password"' not in html


def _staff_with(*codenames):
    from django.contrib.auth.models import Permission

    from tests.accounts.factories import UserFactory

    user = UserFactory(email="limited@example.com", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


def test_the_merged_accounts_section_lists_only_models_the_operator_may_see(client):
    client.force_login(_staff_with("view_emailaddress", "view_group"))
    html = client.get("/admin/").content.decode()
    assert ">Email addresses</a>" in html and ">Groups</a>" in html
    for hidden in ("Users", "API tokens", "CLI sessions", "Device logins", "API keys"):
        assert f">{hidden}</a>" not in html, hidden


def test_an_operator_without_account_permissions_gets_no_accounts_section(client):
    client.force_login(_staff_with("view_apikey"))
    html = client.get("/admin/").content.decode()
    assert ">API keys</a>" in html
    assert 'class="app-accounts module' not in html and ">Users</a>" not in html
    assert client.get("/admin/accounts/user/").status_code == 403
