"""The Connections page: status, sites, refresh time, connect and disconnect without the CLI."""

from urllib.parse import urlsplit

import pytest

from connections.models import Connection
from tests.connections.factories import AccessibleResourceFactory, ConnectionFactory
from tests.helpers.queries import assert_flat_queries

pytestmark = pytest.mark.django_db


def test_page_lists_every_service_with_its_status(alice_browser, alice, oauth):
    AccessibleResourceFactory(connection=ConnectionFactory(user=alice), name="awesome-jira")
    ConnectionFactory(user=alice, service="confluence", status=Connection.Status.NEEDS_REAUTH)
    page = alice_browser.get("/dashboard/connections/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Connected</span>" in html
    assert "Needs re-authorisation" in html
    assert "Not connected" in html
    assert "awesome-jira" in html
    assert "Tokens refreshed" in html
    assert "Connect Bitbucket" in html and "Disconnect Jira" in html
    # The navigation points at this page.
    assert 'href="/dashboard/connections/" aria-current="page"' in html


def test_page_needs_login(client):
    response = client.get("/dashboard/connections/")
    assert response.status_code == 302


def test_page_query_count_does_not_grow_with_sites(alice_browser, alice):
    connection = ConnectionFactory(user=alice)
    measured = assert_flat_queries(
        alice_browser,
        "/dashboard/connections/",
        lambda: AccessibleResourceFactory(connection=connection),
        at_most=12,
    )
    assert measured.response.content.count(b'class="sites"') == 1


def test_connect_and_disconnect_from_the_page(oauth, alice_browser, alice):
    start = alice_browser.post("/dashboard/connections/jira/connect")
    assert start.status_code == 302
    assert start["Location"].startswith(f"{oauth.atlassian_auth_url}/authorize?")
    import httpx

    back = urlsplit(httpx.get(start["Location"], follow_redirects=False).headers["location"])
    landed = alice_browser.get(f"{back.path}?{back.query}", follow=True)
    assert landed.redirect_chain[-1][0] == "/dashboard/connections/"
    assert b"Connected Jira." in landed.content
    assert b"awesome-jira" in landed.content
    assert Connection.objects.get(user=alice).service == "jira"

    gone = alice_browser.post("/dashboard/connections/jira/disconnect", follow=True)
    assert b"Disconnected Jira" in gone.content
    assert not Connection.objects.filter(user=alice).exists()


def test_a_denied_consent_from_the_page_comes_back_with_a_message(oauth, alice_browser, alice):
    oauth.deny = True
    import httpx

    start = alice_browser.post("/dashboard/connections/confluence/connect")
    back = urlsplit(httpx.get(start["Location"], follow_redirects=False).headers["location"])
    landed = alice_browser.get(f"{back.path}?{back.query}", follow=True)
    assert b"You declined access to Confluence" in landed.content
    assert not Connection.objects.exists()


def test_unknown_service_on_the_page(alice_browser):
    response = alice_browser.post("/dashboard/connections/kyg/connect", follow=True)
    assert b"Unknown service" in response.content


def test_admin_never_shows_tokens(client, staff, alice):
    connection = ConnectionFactory(user=alice, access_token="atlassian-secret-access")
    client.force_login(staff)
    page = client.get(f"/admin/connections/connection/{connection.pk}/change/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "atlassian-secret-access" not in body and "kay:v" not in body


def test_operators_may_change_a_connections_status_and_nothing_else(client, staff, alice):
    connection = ConnectionFactory(user=alice)
    client.force_login(staff)
    body = client.get(f"/admin/connections/connection/{connection.pk}/change/").content.decode()
    assert 'name="status"' in body
    for shown_only in ("user", "service", "external_account_id", "scopes", "last_error"):
        assert f'name="{shown_only}"' not in body


def test_a_site_url_that_is_not_https_is_not_rendered_as_a_link(alice_browser, alice):
    connection = ConnectionFactory(user=alice)
    AccessibleResourceFactory(connection=connection, name="evil-site", url="javascript:alert(1)")
    AccessibleResourceFactory(
        connection=connection, name="plain-site", url="http://plain.atlassian.net"
    )
    AccessibleResourceFactory(
        connection=connection, name="good-site", url="https://good.atlassian.net"
    )
    html = alice_browser.get("/dashboard/connections/").content.decode()
    assert 'href="javascript:' not in html
    assert 'href="http://plain' not in html
    assert "evil-site" in html and "plain-site" in html  # still named, just not a link
    assert '<a href="https://good.atlassian.net"' in html


def test_services_without_server_credentials_are_not_offered(client, alice, settings):
    settings.ATLASSIAN_CLIENT_ID = settings.ATLASSIAN_CLIENT_SECRET = ""
    settings.BITBUCKET_CLIENT_ID = settings.BITBUCKET_CLIENT_SECRET = ""
    client.force_login(alice)
    html = client.get("/dashboard/connections/").content.decode()
    assert html.count("Not available on this server.") == 3
    assert "Connect Jira</button>" not in html
    assert "ATLASSIAN_CLIENT_ID" not in html  # the operator's hint is for operators


def test_operators_see_which_settings_are_missing(client, staff, settings):
    settings.ATLASSIAN_CLIENT_ID = settings.ATLASSIAN_CLIENT_SECRET = ""
    client.force_login(staff)
    assert "ATLASSIAN_CLIENT_ID" in client.get("/dashboard/connections/").content.decode()


def test_an_unconfigured_connect_tells_the_user_plainly_and_logs_a_warning(
    client, api_client, alice, settings, caplog
):
    settings.ATLASSIAN_CLIENT_ID = settings.ATLASSIAN_CLIENT_SECRET = ""
    client.force_login(alice)
    with caplog.at_level("INFO"):
        page = client.post("/dashboard/connections/jira/connect", follow=True)
        api = api_client.post("/connections/connect?service=jira")
    assert "Atlassian connections are not available on this server." in page.content.decode()
    assert "ATLASSIAN_CLIENT_ID" not in page.content.decode()
    assert api.status_code == 503
    assert api.json()["error"] == {
        "code": "provider_not_configured",
        "message": "Atlassian connections are not available on this server.",
    }
    assert "ATLASSIAN_CLIENT_ID" in caplog.text
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
