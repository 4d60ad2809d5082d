"""The operators' console shows sign-in records but never a token or its hash."""

import pytest

from accounts.devices import device_authorization_start
from accounts.models import ApiToken, CliSession, DeviceAuthorization, RefreshToken
from accounts.tokens import api_token_create
from tests.connections.factories import cli_tokens_for

pytestmark = pytest.mark.django_db


def test_admin_pages_show_no_secrets(client, staff, alice):
    pair = cli_tokens_for(alice)
    row, jwt = api_token_create(user=alice, name="laptop")
    device, device_code, user_code = device_authorization_start(client_name="build box")
    client.force_login(staff)
    pages = [
        "/admin/accounts/clisession/",
        f"/admin/accounts/clisession/{CliSession.objects.get().pk}/change/",
        "/admin/accounts/apitoken/",
        f"/admin/accounts/apitoken/{row.pk}/change/",
        "/admin/accounts/deviceauthorization/",
        f"/admin/accounts/deviceauthorization/{device.pk}/change/",
    ]
    secrets = [
        pair.token,
        pair.refresh_token,
        RefreshToken.objects.get().token_hash,
        jwt,
        ApiToken.objects.get().jti_hash,
        device_code,
        user_code,
        DeviceAuthorization.objects.get().device_code_hash,
        DeviceAuthorization.objects.get().user_code_hash,
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        for secret in secrets:
            assert secret not in body, (url, secret[:8])
    assert "laptop" in client.get("/admin/accounts/apitoken/").content.decode()


def test_operators_can_revoke_cli_sessions(client, staff, alice):
    pair = cli_tokens_for(alice)
    client.force_login(staff)
    session = CliSession.objects.get()
    response = client.post(
        "/admin/accounts/clisession/",
        {"action": "revoke", "_selected_action": [session.pk]},
        follow=True,
    )
    assert response.status_code == 200
    session.refresh_from_db()
    assert session.revoked_reason == "revoked_by_operator"
    assert (
        client.post(
            "/auth/refresh", {"refresh_token": pair.refresh_token}, content_type="application/json"
        ).status_code
        == 401
    )
