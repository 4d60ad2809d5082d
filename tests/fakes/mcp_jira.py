"""An MCP test server (``mcp`` 2.x ``MCPServer``) standing in for mcp-atlassian, over real
stdio or real streamable HTTP::

    python tests/fakes/mcp_jira.py                                         # stdio
    python tests/fakes/mcp_jira.py --transport streamable-http --port N    # 127.0.0.1:N/mcp

``tools/list`` answers exactly what mcp-atlassian 0.23.1 lists for its tools (name, title,
description, input and output schema, annotations, tags), from
``tests/fixtures/mcp-atlassian_0.23.1_tools_list.json``; the calls are backed by a few
issues in memory (KAN-1 to start with): ``jira_create_issue`` adds one, ``jira_search``
finds it, ``jira_get_issue`` returns it or a tool error. Every answer says which process
ran it and with which token and cloud id: over stdio from its environment, over HTTP from
the request's ``Authorization: Bearer`` and ``X-Atlassian-Cloud-Id`` headers (as
mcp-atlassian reads them; ``/mcp`` without a Bearer token is a 401, as there).

Over HTTP, ``GET /state`` shows the issues and every call (with its token), ``POST
/reset`` restores the first state and ``GET /healthz`` says it is up. Test-only probes:
``confluence_upload_attachment(s)`` read the paths they are given from this server's disk
(as mcp-atlassian does) and ``jira_transition_issue`` kills the process mid-call."""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent
from mcp.types import Tool as ListedTool

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "mcp-atlassian_0.23.1_tools_list.json"
LISTED: list[dict[str, Any]] = json.loads(FIXTURE.read_text(encoding="utf-8"))["tools"]

FIRST_ISSUES = {
    "KAN-1": {"key": "KAN-1", "summary": "Existing ticket", "issue_type": "Task", "token": ""}
}


class _State:
    """The issues and the calls seen; tools may run in worker threads, hence the lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.issues: dict[str, dict[str, Any]] = copy.deepcopy(FIRST_ISSUES)
        self.calls: list[dict[str, Any]] = []

    def as_dict(self) -> dict[str, Any]:
        with self.lock:
            return {"issues": copy.deepcopy(self.issues), "calls": copy.deepcopy(self.calls)}


STATE = _State()


def _caller(ctx: Context) -> tuple[str, str]:
    """The token and cloud id this call came with."""
    headers = ctx.headers
    if headers is None:  # stdio: the process's environment, one process per user
        return (
            os.environ.get("ATLASSIAN_OAUTH_ACCESS_TOKEN", ""),
            os.environ.get("ATLASSIAN_OAUTH_CLOUD_ID", ""),
        )
    authorization = headers.get("authorization", "")
    return authorization.removeprefix("Bearer "), headers.get("x-atlassian-cloud-id", "")


def _answer(ctx: Context, name: str, arguments: dict[str, Any], **fields: Any) -> CallToolResult:
    """Record the call; answer as mcp-atlassian does (the JSON text, and the same text as
    the structured ``result`` its output schema promises)."""
    token, cloud_id = _caller(ctx)
    with STATE.lock:
        STATE.calls.append(
            {"name": name, "arguments": arguments, "token": token, "cloud_id": cloud_id}
        )
    text = json.dumps(
        {
            **fields,
            "pid": os.getpid(),
            "token": token,
            "cloud_id": cloud_id,
            "jira_url": os.environ.get("JIRA_URL", ""),
            # Names only: which of Kay's own settings the process was handed (none should be).
            "inherited": sorted(
                k for k in os.environ if k.startswith(("DJANGO", "SECRET", "ENCRYPTION"))
            ),
        }
    )
    return CallToolResult(
        content=[TextContent(type="text", text=text)], structured_content={"result": text}
    )


class _Server(MCPServer):
    async def list_tools(self) -> list[ListedTool]:  # type: ignore[override]
        # The real tools' entries, not schemas derived from the functions below.
        return [ListedTool.model_validate(tool) for tool in LISTED]


def build_server() -> MCPServer:
    server = _Server("mcp-jira-test", log_level="WARNING")

    @server.tool()
    def jira_search(
        ctx: Context,
        jql: str,
        fields: str | None = None,
        limit: int = 10,
        start_at: int = 0,
        projects_filter: str | None = None,
        expand: str | None = None,
        page_token: str | None = None,
        use_display_names: bool = False,
    ) -> CallToolResult:
        project = re.search(r"project\s*=\s*\"?(\w+)", jql, re.IGNORECASE)
        with STATE.lock:
            found = [
                issue
                for key, issue in STATE.issues.items()
                if project is None or key.startswith(f"{project.group(1).upper()}-")
            ]
        issues = found[start_at : start_at + limit]
        return _answer(
            ctx,
            "jira_search",
            {"jql": jql, "limit": limit},
            total=len(found),
            start_at=start_at,
            max_results=limit,
            issues=issues,
        )

    @server.tool()
    def jira_get_issue(
        ctx: Context,
        issue_key: str,
        fields: str | None = None,
        expand: str | None = None,
        comment_limit: int = 10,
        properties: str | None = None,
        update_history: bool = True,
        include: str | None = None,
        use_display_names: bool = False,
    ) -> CallToolResult:
        with STATE.lock:
            issue = copy.deepcopy(STATE.issues.get(issue_key))
        if issue is None:
            raise ToolError(f"Issue {issue_key} not found.")
        return _answer(ctx, "jira_get_issue", {"issue_key": issue_key}, **issue)

    @server.tool()
    def jira_create_issue(
        ctx: Context,
        project_key: str,
        summary: str,
        issue_type: str,
        assignee: str | None = None,
        description: str | None = None,
        components: str | None = None,
        additional_fields: str | None = None,
    ) -> CallToolResult:
        token, _ = _caller(ctx)
        with STATE.lock:
            taken = sum(key.startswith(f"{project_key}-") for key in STATE.issues)
            key = f"{project_key}-{taken + 1}"
            issue = {"key": key, "summary": summary, "issue_type": issue_type, "token": token}
            STATE.issues[key] = issue
        arguments = {"project_key": project_key, "summary": summary, "issue_type": issue_type}
        return _answer(
            ctx,
            "jira_create_issue",
            arguments,
            message="Issue created successfully",
            issue=issue,
        )

    @server.tool()
    def jira_transition_issue(
        ctx: Context,
        issue_key: str,
        transition_id: str,
        fields: str | None = None,
        comment: str | None = None,
    ) -> CallToolResult:
        os._exit(1)  # dies in the middle, as a crashing server would

    @server.tool()
    def confluence_upload_attachment(
        ctx: Context,
        content_id: str,
        file_path: str | None = None,
        content_base64: str | None = None,
        filename: str | None = None,
        comment: str | None = None,
        minor_edit: bool = False,
    ) -> CallToolResult:
        if file_path:  # mcp-atlassian reads it from its own disk
            uploaded = Path(file_path).read_text()
            return _answer(ctx, "confluence_upload_attachment", {}, uploaded=uploaded)
        return _answer(
            ctx, "confluence_upload_attachment", {}, uploaded=content_base64, filename=filename
        )

    @server.tool()
    def confluence_upload_attachments(
        ctx: Context,
        content_id: str,
        file_paths: str,
        comment: str | None = None,
        minor_edit: bool = False,
    ) -> CallToolResult:
        uploaded = [Path(path).read_text() for path in file_paths.split(",")]
        return _answer(ctx, "confluence_upload_attachments", {}, uploaded=uploaded)

    return server


def _http_app(server: MCPServer) -> Any:
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    @server.custom_route("/healthz", methods=["GET"])
    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @server.custom_route("/state", methods=["GET"])
    async def state(request: Request) -> JSONResponse:
        return JSONResponse(STATE.as_dict())

    @server.custom_route("/reset", methods=["POST"])
    async def reset(request: Request) -> JSONResponse:
        with STATE.lock:
            STATE.reset()
        return JSONResponse({"status": "ok"})

    app = server.streamable_http_app(host="127.0.0.1")

    async def bearer_required(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/mcp"):
            authorization = dict(scope["headers"]).get(b"authorization", b"")
            if not authorization.startswith(b"Bearer "):
                refused = JSONResponse({"error": "Authentication required"}, status_code=401)
                await refused(scope, receive, send)
                return
        await app(scope, receive, send)

    return bearer_required


@contextmanager
def serving_http(log: Path) -> Iterator[McpJiraHttp]:
    """This server over streamable HTTP on a free 127.0.0.1 port, until the block ends."""
    from tests.helpers.processes import answers, free_port, running

    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    with running(
        __file__,
        "--transport",
        "streamable-http",
        "--port",
        str(port),
        log=log,
        ready=answers(f"{origin}/healthz"),
    ):
        yield McpJiraHttp(origin)


class McpJiraHttp:
    """The test's handle on a running HTTP server: its MCP URL and its state."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.url = f"{origin}/mcp"

    def state(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.origin}/state", timeout=5).json())

    def calls(self, name: str | None = None) -> list[dict[str, Any]]:
        return [c for c in self.state()["calls"] if name is None or c["name"] == name]

    def reset(self) -> None:
        httpx.post(f"{self.origin}/reset", timeout=5).raise_for_status()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transport", choices=["stdio", "streamable-http"], default="stdio")
    parser.add_argument("--port", type=int, default=8000)
    options = parser.parse_args(argv)
    server = build_server()
    if options.transport == "stdio":
        server.run("stdio")
        return
    import uvicorn

    uvicorn.run(_http_app(server), host="127.0.0.1", port=options.port, log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1:])
