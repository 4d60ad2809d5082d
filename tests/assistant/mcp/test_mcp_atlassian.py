"""Kay's mcp 2.x client against the real mcp-atlassian (mcp 1.x, its own venv) over
streamable HTTP and stdio, pointed at the fake Jira: each user's own token on the wire."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from assistant.mcp_client import McpUnavailable, mcp_tool_call, mcp_tools_for
from assistant.services.mcp import assistant_tool_run, assistant_tools_for_user
from tests.assistant.mcp.conftest import ALICE_TOKEN, BOB_TOKEN
from tests.fakes.server import load
from tests.helpers.processes import free_port

pytestmark = pytest.mark.django_db

REAL_TOOLS = {tool["name"]: tool for tool in load("mcp-atlassian_tools_2026-08-21.json")["tools"]}


def test_tools_are_listed_with_read_and_write_as_the_real_annotations_say(over_http, alice_jira):
    tools = {tool.name: tool for tool in assistant_tools_for_user(user=alice_jira.user)}
    # Every tool mcp-atlassian has, less the two disabled by default and the one that can
    # only upload files from the server's own disk (assistant.mcp_client).
    assert set(tools) == set(REAL_TOOLS) - {
        "jira_delete_issue",
        "confluence_delete_page",
        "confluence_upload_attachments",
    }
    for name in ("jira_update_issue", "confluence_create_page", "confluence_upload_attachment"):
        offered = set(tools[name].input_schema["properties"])
        assert not offered & {"attachments", "content_file", "file_path"}, name
    for name, tool in tools.items():
        assert tool.read_only is bool(REAL_TOOLS[name]["annotations"].get("readOnlyHint")), name
    assert tools["jira_search"].read_only and not tools["jira_create_issue"].read_only
    assert tools["jira_create_issue"].input_schema["required"] == [
        "project_key",
        "summary",
        "issue_type",
    ]


def test_a_create_reaches_jira_with_alices_token(over_http, alice_jira):
    result = assistant_tool_run(
        user=alice_jira.user,
        name="jira_create_issue",
        arguments={"project_key": "KAN", "summary": "Fix login bug", "issue_type": "Task"},
    )
    assert not result.is_error, result.text
    assert "KAN-2" in result.text
    assert over_http.issues["KAN-2"]["summary"] == "Fix login bug"
    assert over_http.issues["KAN-2"]["reporter"] == "alice"
    assert over_http.tokens_for(lambda seen: seen.method == "POST") == {ALICE_TOKEN}


def test_two_users_at_once_each_reach_jira_with_their_own_token_only(over_http):
    # From threads, as web requests and workers call it: the seam alone (no database).
    def create_as_alice(n: int):
        return mcp_tool_call(
            user_id=1,
            access_token=ALICE_TOKEN,
            cloud_id="cloud-alice",
            name="jira_create_issue",
            arguments={"project_key": "KAN", "summary": f"alice {n}", "issue_type": "Task"},
        )

    def search_as_bob(n: int):
        return mcp_tool_call(
            user_id=2,
            access_token=BOB_TOKEN,
            cloud_id="cloud-bob",
            name="jira_search",
            arguments={"jql": "project = KAN"},
        )

    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(create_as_alice, n) for n in range(3)]
        futures += [pool.submit(search_as_bob, n) for n in range(3)]
        results = [future.result() for future in futures]

    assert not any(result.is_error for result in results)
    assert over_http.tokens_for(lambda seen: seen.method == "POST") == {ALICE_TOKEN}
    assert over_http.tokens_for(lambda seen: seen.path.endswith("/search")) == {BOB_TOKEN}
    assert {
        issue["reporter"]
        for issue in over_http.issues.values()
        if issue["summary"] != "Existing ticket"
    } == {"alice"}
    assert over_http.tokens_for(lambda seen: True) == {ALICE_TOKEN, BOB_TOKEN}


def test_a_disabled_tool_is_not_listed_and_cannot_be_called(over_http, alice_jira, settings):
    settings.MCP_JIRA_DISABLED_TOOLS = ["jira_create_issue"]
    names = {tool.name for tool in assistant_tools_for_user(user=alice_jira.user)}
    assert "jira_create_issue" not in names and "jira_delete_issue" in names
    result = assistant_tool_run(
        user=alice_jira.user,
        name="jira_create_issue",
        arguments={"project_key": "KAN", "summary": "Sneaky", "issue_type": "Task"},
    )
    assert result.is_error and "disabled" in result.text
    assert over_http.tokens_for(lambda seen: seen.method == "POST") == set()
    assert "KAN-2" not in over_http.issues


def test_a_tool_error_is_returned_for_the_model_not_raised(over_http, alice_jira):
    result = assistant_tool_run(
        user=alice_jira.user, name="jira_get_issue", arguments={"issue_key": "KAN-404"}
    )
    assert result.is_error
    assert "KAN-404" in result.text


def test_a_token_jira_refuses_makes_the_tool_fail_not_another_users_token(over_http):
    result = mcp_tool_call(
        user_id=3,
        access_token="charlie-token-jira-does-not-know",
        cloud_id="",
        name="jira_search",
        arguments={"jql": "project = KAN"},
    )
    assert result.is_error
    assert over_http.tokens_for(lambda seen: True) == {"charlie-token-jira-does-not-know"}


def test_an_unreachable_server_is_a_clear_503(settings):
    settings.MCP_JIRA_URL = f"http://127.0.0.1:{free_port()}/mcp"
    settings.MCP_TIMEOUT = 3
    with pytest.raises(McpUnavailable) as caught:
        mcp_tools_for(user_id=1, access_token=ALICE_TOKEN, cloud_id="cloud-alice")
    assert caught.value.status == 503
    assert caught.value.as_dict()["error"]["code"] == "mcp_unavailable"
    assert "MCP server unreachable" in caught.value.message


def test_the_real_server_over_stdio_creates_with_alices_token(
    settings, mcp_atlassian_bin, jira, alice_jira
):
    settings.MCP_JIRA_URL = ""
    settings.MCP_JIRA_COMMAND = str(mcp_atlassian_bin)
    settings.MCP_JIRA_ARGS = ["--env-file", "/dev/null"]
    settings.MCP_JIRA_SITE_URL = jira.origin  # a local URL: Data Center, the token forwarded
    result = assistant_tool_run(
        user=alice_jira.user,
        name="jira_create_issue",
        arguments={"project_key": "KAN", "summary": "From stdio", "issue_type": "Task"},
    )
    assert not result.is_error, result.text
    assert jira.issues["KAN-2"]["reporter"] == "alice"
    assert jira.tokens_for(lambda seen: True) == {ALICE_TOKEN}


def test_a_transition_moves_the_issue_with_alices_token(over_http, alice_jira):
    transitions = assistant_tool_run(
        user=alice_jira.user, name="jira_get_transitions", arguments={"issue_key": "KAN-1"}
    )
    assert not transitions.is_error and "In Progress" in transitions.text
    result = assistant_tool_run(
        user=alice_jira.user,
        name="jira_transition_issue",
        arguments={"issue_key": "KAN-1", "transition_id": "21"},
    )
    assert not result.is_error, result.text
    assert over_http.issues["KAN-1"]["status"] == "In Progress"
    assert over_http.tokens_for(lambda seen: seen.path.endswith("/transitions")) == {ALICE_TOKEN}
