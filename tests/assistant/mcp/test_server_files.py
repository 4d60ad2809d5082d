"""Security review (issue 11): mcp-atlassian reads files from its own disk for some
arguments; over stdio that disk is Kay's worker, so those arguments are never offered to
the model nor sent to the server."""

import json

import pytest

from assistant import mcp_client
from assistant.mcp_client import McpUnavailable, mcp_tool_call, mcp_tools_for
from tests.assistant.mcp.conftest import ALICE_TOKEN


@pytest.fixture
def secret_file(tmp_path):
    path = tmp_path / ".env"
    path.write_text("DJANGO_SECRET_KEY=kay-server-secret\n")
    return path


@pytest.mark.usefixtures("over_stdio")
def test_tools_are_offered_without_arguments_that_read_the_servers_disk():
    tools = {t.name: t for t in mcp_tools_for(user_id=1, access_token=ALICE_TOKEN, cloud_id="")}
    upload = tools["confluence_upload_attachment"]
    assert set(upload.input_schema["properties"]) == {
        "content_id",
        "content_base64",
        "filename",
        "comment",
        "minor_edit",
    }
    # It needs a path on the server's disk: not offered at all.
    assert "confluence_upload_attachments" not in tools


@pytest.mark.usefixtures("over_stdio")
@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("confluence_upload_attachment", {"content_id": "1", "file_path": "{path}"}),
        ("confluence_upload_attachments", {"content_id": "1", "file_paths": "{path}"}),
        ("jira_update_issue", {"issue_key": "KAN-1", "attachments": ["{path}"]}),
        ("jira_update_issue", {"issue_key": "KAN-1", "fields": {"Attachments ": "{path}"}}),
        (
            "jira_update_issue",
            {"issue_key": "KAN-1", "additional_fields": '{"attachments": ["{path}"]}'},
        ),
        ("confluence_create_page", {"space_key": "KAN", "title": "t", "content_file": "{path}"}),
    ],
)
def test_a_call_that_would_read_a_file_on_the_server_is_refused(secret_file, name, arguments):
    """A prompt injected into an issue must not get Kay's own files (its .env, a worker's
    /proc/<pid>/environ) uploaded to Atlassian by the stdio server on Kay's host."""
    filled = json.loads(json.dumps(arguments).replace("{path}", str(secret_file)))
    result = mcp_tool_call(
        user_id=1, access_token=ALICE_TOKEN, cloud_id="", name=name, arguments=filled
    )
    assert result.is_error
    assert "kay-server-secret" not in result.text
    assert "files on the server cannot be attached" in result.text


@pytest.mark.usefixtures("over_stdio")
def test_an_upload_of_content_itself_still_runs():
    result = mcp_tool_call(
        user_id=1,
        access_token=ALICE_TOKEN,
        cloud_id="",
        name="confluence_upload_attachment",
        arguments={"content_id": "1", "content_base64": "aGk=", "filename": "hi.txt"},
    )
    assert not result.is_error, result.text
    assert json.loads(result.text)["uploaded"] == "aGk="


@pytest.mark.usefixtures("over_stdio")
def test_a_huge_tool_error_is_cut_before_it_is_stored_and_shown():
    """A tool error is kept whole in the run's tool calls, its events and the page: a
    server echoing a 200 kB argument back must not bloat them."""
    result = mcp_tool_call(
        user_id=1,
        access_token=ALICE_TOKEN,
        cloud_id="",
        name="jira_get_issue",
        arguments={"issue_key": "K" * 200_000},
    )
    assert result.is_error and "not found" not in result.text[-20:]
    assert len(result.text) <= mcp_client.ERROR_TEXT_MAX


@pytest.mark.usefixtures("over_stdio")
def test_a_server_that_dies_during_a_call_says_the_call_may_have_been_done():
    with pytest.raises(McpUnavailable) as caught:
        mcp_tool_call(
            user_id=1,
            access_token=ALICE_TOKEN,
            cloud_id="",
            name="jira_transition_issue",
            arguments={"issue_key": "KAN-1", "transition_id": "31"},
        )
    assert caught.value.maybe_done
    assert "may have been done" in caught.value.message
    assert caught.value.as_dict()["error"]["code"] == "mcp_unavailable"


@pytest.mark.usefixtures("over_stdio", "settings")
def test_a_server_that_cannot_start_did_nothing(settings):
    settings.MCP_JIRA_COMMAND = "/nonexistent/mcp-atlassian"
    with pytest.raises(McpUnavailable) as caught:
        mcp_tool_call(
            user_id=1, access_token=ALICE_TOKEN, cloud_id="", name="jira_search", arguments={}
        )
    assert not caught.value.maybe_done
