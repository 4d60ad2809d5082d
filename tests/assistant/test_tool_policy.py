"""The operator's disabled tools: matched without regard to case, and the attachment
downloads of mcp-atlassian (names from its real tool list) disabled by default."""

import json
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from assistant.mcp_client import mcp_tool_call
from assistant.tool_policy import disabled_tools

TOOLS = Path(__file__).resolve().parents[1] / "fixtures" / "mcp-atlassian_tools_2026-08-21.json"
DOWNLOADS = {
    "jira_download_attachments",
    "jira_get_issue_images",
    "confluence_download_attachment",
    "confluence_download_content_attachments",
    "confluence_get_page_images",
}


def test_the_attachment_downloads_of_the_real_tool_list_are_disabled_by_default():
    real = {tool["name"] for tool in json.loads(TOOLS.read_text())["tools"]}
    assert real >= DOWNLOADS  # the names are mcp-atlassian's own
    default = set(django_settings.MCP_JIRA_DISABLED_TOOLS)
    assert DOWNLOADS | {"jira_delete_issue", "confluence_delete_page"} == default


def test_a_disabled_tool_is_matched_whatever_the_case_on_either_side(settings):
    settings.MCP_JIRA_DISABLED_TOOLS = [" Jira_Delete_Issue ", "", "CONFLUENCE_DELETE_PAGE"]
    disabled = disabled_tools()
    assert "jira_delete_issue" in disabled and "JIRA_DELETE_ISSUE" in disabled
    assert "confluence_delete_page" in disabled
    assert "jira_create_issue" not in disabled and "" not in disabled and None not in disabled


@pytest.mark.parametrize("name", ["jira_delete_issue", "JIRA_Delete_Issue"])
def test_a_disabled_tool_in_another_case_is_refused_without_reaching_the_server(settings, name):
    settings.MCP_JIRA_ENABLED = True
    settings.MCP_JIRA_DISABLED_TOOLS = ["Jira_Delete_Issue"]
    # No server is configured at this address: a call that got past the policy would fail
    # with McpUnavailable, not return this result.
    settings.MCP_JIRA_URL = "http://127.0.0.1:9/mcp"
    result = mcp_tool_call(
        user_id=1, access_token="t", cloud_id="c", name=name, arguments={"issue_key": "KAN-1"}
    )
    assert result.is_error and "disabled" in result.text
