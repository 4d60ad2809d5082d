"""A small MCP server over stdio for the process-per-user tests: the three Jira tools the
assistant uses most, with mcp-atlassian's names, required arguments and annotations, each
answering which process ran it and with which token (from its environment, as
mcp-atlassian reads it)."""

import json
import os

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

server = MCPServer("fake-atlassian")


def _answer(**fields: object) -> str:
    return json.dumps(
        {
            "pid": os.getpid(),
            "token": os.environ.get("ATLASSIAN_OAUTH_ACCESS_TOKEN", ""),
            "cloud_id": os.environ.get("ATLASSIAN_OAUTH_CLOUD_ID", ""),
            "jira_url": os.environ.get("JIRA_URL", ""),
            "inherited": sorted(
                k for k in os.environ if k.startswith(("DJANGO", "SECRET", "ENCRYPTION"))
            ),
            **fields,
        }
    )


@server.tool(annotations=ToolAnnotations(title="Search Issues", read_only_hint=True))
def jira_search(jql: str, limit: int = 10) -> str:
    """Search Jira issues using JQL (Jira Query Language)."""
    return _answer(jql=jql)


@server.tool(annotations=ToolAnnotations(title="Get Issue", read_only_hint=True))
def jira_get_issue(issue_key: str) -> str:
    """Get details of a specific Jira issue."""
    raise ToolError(f"Issue {issue_key} not found.")


@server.tool(annotations=ToolAnnotations(title="Create Issue", destructive_hint=False))
def jira_create_issue(project_key: str, summary: str, issue_type: str) -> str:
    """Create a new Jira issue."""
    return _answer(created=f"{project_key}-1", summary=summary)


@server.tool(annotations=ToolAnnotations(title="Upload Attachment", destructive_hint=True))
def confluence_upload_attachment(
    content_id: str,
    file_path: str | None = None,
    content_base64: str | None = None,
    filename: str | None = None,
) -> str:
    """Upload an attachment: from a path on this server's disk (as mcp-atlassian reads
    it) or as base64 content."""
    if file_path:
        with open(file_path) as file:
            return _answer(uploaded=file.read())
    return _answer(uploaded=content_base64, filename=filename)


@server.tool(annotations=ToolAnnotations(title="Upload Attachments", destructive_hint=True))
def confluence_upload_attachments(content_id: str, file_paths: str) -> str:
    """Upload files from this server's disk."""
    return _answer(uploaded=[open(path).read() for path in file_paths.split(",")])


@server.tool(annotations=ToolAnnotations(title="Transition Issue", destructive_hint=True))
def jira_transition_issue(issue_key: str, transition_id: str) -> str:
    """Transition an issue; this fake dies in the middle, as a crashing server would."""
    os._exit(1)


if __name__ == "__main__":
    server.run("stdio")
