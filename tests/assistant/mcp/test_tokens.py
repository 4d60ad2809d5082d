"""The user's Atlassian token is refreshed through Connections before the MCP server gets
it; a refresh Atlassian refuses asks the user to reconnect, and no server is started."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from assistant import mcp_pool
from assistant.services.mcp import assistant_tool_run
from core.errors import ConnectionNeedsReauth
from tests.connections.factories import AccessibleResourceFactory, ConnectionFactory
from tests.fakes.atlassian import CLIENT_ID, CLIENT_SECRET, FakeAtlassian

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("over_stdio")]


@pytest.fixture
def atlassian(settings):
    fake = FakeAtlassian().start()
    settings.ATLASSIAN_CLIENT_ID = CLIENT_ID
    settings.ATLASSIAN_CLIENT_SECRET = CLIENT_SECRET
    settings.ATLASSIAN_AUTH_URL = fake.atlassian_auth_url
    settings.ATLASSIAN_API_URL = fake.atlassian_api_url
    yield fake
    fake.stop()


def _expiring_connection(user, refresh_token: str):
    connection = ConnectionFactory(
        user=user,
        access_token="alice-old-access-token",
        refresh_token=refresh_token,
        expires_at=timezone.now() + timedelta(minutes=1),
    )
    AccessibleResourceFactory(connection=connection, resource_id="cloud-alice")
    return connection


def _search(user) -> dict:
    result = assistant_tool_run(user=user, name="jira_search", arguments={"jql": "project = KAN"})
    assert not result.is_error, result.text
    return json.loads(result.text)


def test_a_token_about_to_expire_is_refreshed_before_the_server_gets_it(atlassian, alice):
    _expiring_connection(alice, atlassian.issue_tokens()["refresh_token"])
    answer = _search(alice)
    assert answer["token"] != "alice-old-access-token"
    assert answer["token"].startswith("atlassian-access-")
    assert (answer["cloud_id"], atlassian.refresh_calls) == ("cloud-alice", 1)
    assert _search(alice)["pid"] == answer["pid"]  # the fresh token's session is reused


def test_a_refused_refresh_asks_to_reconnect_and_starts_no_server(atlassian, alice):
    _expiring_connection(alice, atlassian.issue_tokens()["refresh_token"])
    atlassian.revoke_refresh_tokens()
    with pytest.raises(ConnectionNeedsReauth) as caught:
        _search(alice)
    assert caught.value.status == 409 and "kay connect jira" in caught.value.message
    runner = mcp_pool._runner
    assert runner is None or runner.pool.sessions == {}
