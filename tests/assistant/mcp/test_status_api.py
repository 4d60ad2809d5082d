"""``GET /mcp/status`` (seed 003's body, per user) and the ``mcp_jira`` block of
``GET /health``, with the real mcp-atlassian over streamable HTTP."""

import pytest

from assistant.services.mcp import JiraNotConnected, assistant_tools_for_user
from connections.models import Connection
from core.errors import ConnectionNeedsReauth
from tests.assistant.mcp.conftest import connect_jira
from tests.fakes.server import load
from tests.helpers.processes import free_port

pytestmark = pytest.mark.django_db

REAL_TOOLS = {tool["name"] for tool in load("mcp-atlassian_tools_2026-08-21.json")["tools"]}


def _mcp_jira(client) -> dict:
    block = client.get("/health").json()["services"]["mcp_jira"]
    block.pop("latencyMs")
    return block


@pytest.fixture(autouse=True)
def _quick_health(settings):
    settings.HEALTH_WORKER_TIMEOUT = 0.2  # no worker runs here


def test_status_lists_the_tools_this_user_may_use_in_the_seeds_shape(
    over_http, alice_jira, alice_api, settings
):
    settings.MCP_JIRA_DISABLED_TOOLS = ["jira_delete_issue", "jira_create_issue"]
    response = alice_api.get("/mcp/status")
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["enabled", "connected", "initialized", "toolCount", "tools"]
    assert (body["enabled"], body["connected"], body["initialized"]) == (True, True, True)
    names = [tool["name"] for tool in body["tools"]]
    # confluence_upload_attachments only uploads files from the server's disk: never offered.
    unusable = {"jira_delete_issue", "jira_create_issue", "confluence_upload_attachments"}
    assert set(names) == REAL_TOOLS - unusable
    assert body["toolCount"] == len(names)
    search = next(tool for tool in body["tools"] if tool["name"] == "jira_search")
    assert set(search) == {"name", "description"} and "JQL" in search["description"]


def test_status_without_a_jira_connection_says_to_connect_it(over_http, alice_jira, bob_api):
    # alice is connected (and may have a pooled session); bob is not, and gets no tools.
    response = bob_api.get("/mcp/status")
    assert response.status_code == 409
    assert response.json() == {
        "error": {"code": "jira_not_connected", "message": "Connect Jira first: kay connect jira"}
    }
    assert over_http.seen == []


def test_a_connection_needing_reauthorisation_says_so(over_http, alice):
    connect_jira(alice, "stale-token", "cloud-alice")
    Connection.objects.filter(user=alice).update(status=Connection.Status.NEEDS_REAUTH)
    with pytest.raises(ConnectionNeedsReauth) as caught:
        assistant_tools_for_user(user=alice)
    assert caught.value.status == 409 and "kay connect jira" in caught.value.message
    assert over_http.seen == []


def test_tools_for_a_user_without_jira_raise_connect_first(bob):
    with pytest.raises(JiraNotConnected) as caught:
        assistant_tools_for_user(user=bob)
    assert caught.value.status == 409


def test_status_needs_authentication(api_client):
    assert api_client.get("/mcp/status").status_code == 401


def test_an_unreachable_server_is_reported_not_connected(settings, alice_jira, alice_api):
    settings.MCP_JIRA_URL = f"http://127.0.0.1:{free_port()}/mcp"
    settings.MCP_TIMEOUT = 2
    body = alice_api.get("/mcp/status").json()
    assert body == {
        "enabled": True,
        "connected": False,
        "initialized": False,
        "toolCount": 0,
        "tools": [],
    }
    assert _mcp_jira(alice_api) == {
        "status": "unhealthy",
        "enabled": True,
        "connected": False,
        "toolCount": 0,
    }


def test_with_mcp_turned_off_status_and_health_say_so(settings, alice_jira, alice_api):
    settings.MCP_JIRA_ENABLED = False
    assert alice_api.get("/mcp/status").json()["enabled"] is False
    assert _mcp_jira(alice_api)["status"] == "not_configured"


def test_health_reports_each_users_last_mcp_status_without_a_round_trip(
    over_http, alice_jira, alice_api, bob_api
):
    unknown = {"status": "unknown", "enabled": True, "connected": False, "toolCount": 0}
    assert _mcp_jira(alice_api) == unknown
    count = alice_api.get("/mcp/status").json()["toolCount"]
    seen = len(over_http.seen)
    assert _mcp_jira(alice_api) == {
        "status": "healthy",
        "enabled": True,
        "connected": True,
        "toolCount": count,
    }
    assert _mcp_jira(bob_api) == unknown  # alice's state is not bob's
    assert len(over_http.seen) == seen
