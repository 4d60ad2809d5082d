"""Kay's MCP client (the pool in assistant/mcp_client.py) against the MCP test server,
tests/fakes/mcp_jira.py, over real stdio and real streamable HTTP: the tools are listed as
mcp-atlassian lists them, the calls run against its issues, and each user's token reaches
it on its own."""

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from assistant.mcp_client import mcp_tool_call, mcp_tools_for
from assistant.services.mcp import assistant_tool_run
from tests.assistant.mcp.conftest import ALICE_TOKEN, BOB_TOKEN
from tests.fakes.server import load

LISTED = {t["name"]: t for t in load("mcp-atlassian_0.23.1_tools_list.json")["tools"]}
STATIC = {t["name"]: t for t in load("mcp-atlassian_tools_2026-08-21.json")["tools"]}
JIRA_TOOLS = ("jira_search", "jira_get_issue", "jira_create_issue")
CREATE = {"project_key": "KAN", "summary": "Fix login bug", "issue_type": "Task"}


@pytest.fixture(params=["stdio", "streamable-http"])
def transport(request) -> str:
    """Kay's settings pointed at the test server over one real transport or the other."""
    fixture = "over_stdio" if request.param == "stdio" else "over_test_server_http"
    request.getfixturevalue(fixture)
    return str(request.param)


def _call(name: str, arguments: dict, token: str = ALICE_TOKEN, cloud_id: str = "cloud-alice"):
    return mcp_tool_call(
        user_id=1, access_token=token, cloud_id=cloud_id, name=name, arguments=arguments
    )


def test_the_listed_tools_are_mcp_atlassians_own_entries_over_both_transports(transport):
    tools = {t.name: t for t in mcp_tools_for(user_id=1, access_token=ALICE_TOKEN, cloud_id="")}
    assert set(JIRA_TOOLS) <= set(tools)
    for name in JIRA_TOOLS:
        assert tools[name].input_schema == LISTED[name]["inputSchema"], name
        assert tools[name].description == LISTED[name]["description"], name
    assert tools["jira_search"].read_only and tools["jira_get_issue"].read_only
    assert not tools["jira_create_issue"].read_only  # destructiveHint false: still a write


def test_the_recorded_list_agrees_with_mcp_atlassians_source():
    """The 0.23.1 tools/list recording against the tools parsed from mcp-atlassian's source:
    the same arguments (names, types, descriptions), required ones and annotations."""
    for name in JIRA_TOOLS:
        listed, static = LISTED[name], STATIC[name]
        assert listed["annotations"] == static["annotations"]
        assert listed["title"] == static["title"]
        assert listed["inputSchema"]["required"] == static["inputSchema"]["required"]
        properties = static["inputSchema"]["properties"]
        assert {
            key: (value["type"], value["description"])
            for key, value in listed["inputSchema"]["properties"].items()
        } == {key: (value["type"], value["description"]) for key, value in properties.items()}
        assert static["description"].startswith(listed["description"])


def test_a_created_issue_is_found_and_read_back_over_both_transports(transport):
    created = _call("jira_create_issue", CREATE)
    assert not created.is_error, created.text
    issue = json.loads(created.text)["issue"]
    assert issue["key"] == "KAN-2" and issue["token"] == ALICE_TOKEN

    found = json.loads(_call("jira_search", {"jql": "project = KAN"}).text)
    assert [i["key"] for i in found["issues"]] == ["KAN-1", "KAN-2"]
    read = json.loads(_call("jira_get_issue", {"issue_key": "KAN-2"}).text)
    assert (read["summary"], read["token"]) == ("Fix login bug", ALICE_TOKEN)


def test_an_unknown_issue_is_a_tool_error_over_both_transports(transport):
    result = _call("jira_get_issue", {"issue_key": "KAN-404"})
    assert result.is_error and "KAN-404 not found" in result.text


def test_the_token_and_cloud_id_reach_the_server_over_both_transports(transport):
    answer = json.loads(_call("jira_search", {"jql": "project = KAN"}).text)
    assert (answer["token"], answer["cloud_id"]) == (ALICE_TOKEN, "cloud-alice")


def test_over_http_alice_and_bob_at_once_each_reach_the_server_with_their_own_token(
    over_test_server_http,
):
    def create(user_id: int, token: str, n: int):
        return mcp_tool_call(
            user_id=user_id,
            access_token=token,
            cloud_id=f"cloud-{user_id}",
            name="jira_create_issue",
            arguments={**CREATE, "summary": f"{token} {n}"},
        )

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(create, [1, 2] * 4, [ALICE_TOKEN, BOB_TOKEN] * 4, range(8)))
    assert not any(result.is_error for result in results)
    calls = over_test_server_http.calls("jira_create_issue")
    assert len(calls) == 8
    for call in calls:
        # Each create arrived with the token of the user who asked for it, and that
        # user's cloud id: no request went out on another user's session.
        token = call["arguments"]["summary"].split()[0]
        expected_cloud = "cloud-1" if token == ALICE_TOKEN else "cloud-2"
        assert (call["token"], call["cloud_id"]) == (token, expected_cloud)
    assert {call["token"] for call in calls} == {ALICE_TOKEN, BOB_TOKEN}


@pytest.mark.django_db
def test_over_http_each_users_jira_connection_is_the_token_on_the_wire(
    over_test_server_http, alice_jira, bob_jira
):
    assistant_tool_run(user=alice_jira.user, name="jira_create_issue", arguments=CREATE)
    assistant_tool_run(user=bob_jira.user, name="jira_search", arguments={"jql": "project = KAN"})
    calls = over_test_server_http.calls()
    assert [(c["name"], c["token"], c["cloud_id"]) for c in calls] == [
        ("jira_create_issue", ALICE_TOKEN, "cloud-alice"),
        ("jira_search", BOB_TOKEN, "cloud-bob"),
    ]
    assert over_test_server_http.state()["issues"]["KAN-2"]["token"] == ALICE_TOKEN


def test_over_http_a_request_without_a_bearer_token_is_refused_as_mcp_atlassian_does(
    over_test_server_http,
):
    response = httpx.post(
        over_test_server_http.url,
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Accept": "application/json, text/event-stream"},
    )
    assert response.status_code == 401
    assert over_test_server_http.calls() == []
