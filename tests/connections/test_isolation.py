"""bob cannot see, use or disconnect alice's sessions, connections or tokens."""

import pytest

from accounts.models import CliSession
from connections.models import Connection, OAuthState
from tests.connections.factories import AccessibleResourceFactory, ConnectionFactory, cli_tokens_for
from tests.connections.helpers import bearer, connect, consent, finish_callback

pytestmark = pytest.mark.django_db


@pytest.fixture
def alices_cli(oauth, api_client, alice_browser, alice):
    """alice connected Jira from her CLI (her browser finished the callback)."""
    started = connect(api_client)
    assert finish_callback(alice_browser, consent(started["authorization_url"])).status_code == 200
    status = api_client.get(f"/auth/status/{started['state']}").json()
    return started, status


def test_bob_cannot_read_alices_connections_with_her_session_id(alices_cli, api_client, bob):
    started, _ = alices_cli
    bob_token = cli_tokens_for(bob).token
    response = api_client.get(
        f"/connections?session_id={started['session_id']}", **bearer(bob_token)
    )
    assert response.status_code == 404
    assert "jira" not in response.content.decode()


@pytest.mark.parametrize(
    "path",
    ["/connections/disconnect?service=jira", "/connections/connect?service=confluence"],
    ids=["disconnect-her-service", "attach-a-connection"],
)
def test_bob_cannot_change_alices_session(path, alices_cli, api_client, bob, alice):
    started, _ = alices_cli
    bob_token = cli_tokens_for(bob).token
    response = api_client.post(
        path, {"session_id": started["session_id"]}, format="json", **bearer(bob_token)
    )
    assert response.status_code == 404
    connected = Connection.objects.values_list("user", "service")
    assert list(connected) == [(alice.pk, "jira")]
    assert not OAuthState.objects.filter(service="confluence").exists()


def test_bob_cannot_poll_alices_state(oauth, api_client, alice_browser, bob):
    started = connect(api_client)
    finish_callback(alice_browser, consent(started["authorization_url"]))
    bob_token = cli_tokens_for(bob).token
    response = api_client.get(f"/auth/status/{started['state']}", **bearer(bob_token))
    assert response.status_code == 404
    assert "refresh_token" not in response.content.decode()


def test_bobs_me_shows_none_of_alices_sites(api_client, alice, bob):
    AccessibleResourceFactory(connection=ConnectionFactory(user=alice), name="alice-site")
    body = api_client.get("/auth/me", **bearer(cli_tokens_for(bob).token)).json()
    assert body["data"]["email"] == "bob@example.com"
    assert body["data"]["resources"] == []
    assert body["data"]["account_id"] is None


def test_bobs_connections_page_shows_only_his(oauth, alice, bob_browser):
    AccessibleResourceFactory(connection=ConnectionFactory(user=alice), name="alice-site")
    page = bob_browser.get("/dashboard/connections/")
    assert b"alice-site" not in page.content
    assert page.content.count(b"Not connected") == 3


def test_bobs_page_disconnect_never_touches_alice(alice, bob_browser):
    ConnectionFactory(user=alice)
    bob_browser.post("/dashboard/connections/jira/disconnect")
    assert Connection.objects.filter(user=alice).count() == 1


def test_bob_cannot_sign_out_alices_cli(alice, bob_browser):
    cli_tokens_for(alice)
    session = CliSession.objects.get(user=alice)
    response = bob_browser.post(f"/dashboard/tokens/sessions/{session.public_id}/end")
    assert response.status_code == 404
    session.refresh_from_db()
    assert session.revoked_at is None


def test_a_ciphertext_copied_to_bobs_row_does_not_decrypt(alice, bob):
    from core.crypto import DecryptionError
    from core.fields import decrypt_field

    alices = ConnectionFactory(user=alice)
    bobs = ConnectionFactory(user=bob)
    Connection.objects.filter(pk=bobs.pk).update(
        access_token=Connection.objects.get(pk=alices.pk).access_token
    )
    with pytest.raises(DecryptionError):
        decrypt_field(Connection.objects.get(pk=bobs.pk), "access_token")
