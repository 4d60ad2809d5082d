"""Which MCP tools and arguments Kay lets the model use: read vs write, the operator's
disabled tools, and arguments that would make the server read its own disk. Pure
functions over tool descriptions and arguments; the sessions are in ``mcp_client``."""

from __future__ import annotations

import json
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from django.conf import settings

if TYPE_CHECKING:
    from mcp.types import Tool

# Verbs that only read, for tools that carry neither annotations nor tags.
READ_VERBS = ("get", "search", "list", "read", "download", "batch_get", "fetch")


def read_only(tool: Tool) -> bool:
    """Read vs write: the annotations, then the ``read``/``write`` tags, then the name.
    A tool that says nothing either way counts as a write (it will be confirmed)."""
    annotations = tool.annotations
    if annotations is not None:
        if annotations.read_only_hint is not None:
            return annotations.read_only_hint
        if annotations.destructive_hint is not None:  # only meaningful for writes
            return False
    tags = set(((tool.meta or {}).get("fastmcp") or {}).get("tags") or [])
    if tags & {"read", "write"}:
        return "write" not in tags
    verb = tool.name.split("_", 1)[-1]
    return verb.startswith(READ_VERBS)


class ToolNames(frozenset[str]):
    """Tool names compared without regard to case: ``Jira_Delete_Issue`` in the setting
    disables ``jira_delete_issue`` (a case slip must not leave a tool enabled)."""

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.strip().casefold())


def disabled_tools() -> ToolNames:
    """``MCP_JIRA_DISABLED_TOOLS``: never offered to the model, refused if called."""
    names = (name.strip().casefold() for name in settings.MCP_JIRA_DISABLED_TOOLS)
    return ToolNames(name for name in names if name)


# Arguments that make mcp-atlassian read a file from ITS OWN disk and send it to Atlassian
# (confluence_upload_attachment(s) ``file_path(s)``, confluence_create/update_page
# ``content_file``, jira_update_issue ``attachments``, also inside ``fields`` or
# ``additional_fields``). Over stdio that disk is Kay's worker: a prompt injected into an
# issue could have the model upload .env or /proc/<pid>/environ. Never offered, never sent.
SERVER_FILE_ARGUMENTS = frozenset({"file_path", "file_paths", "content_file", "attachments"})


def offered_schema(schema: dict[str, Any]) -> dict[str, Any] | None:
    """The tool's input schema without the server-file arguments; None when one of them
    is required (the tool cannot be used without reading the server's disk)."""
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return dict(schema)
    names = {name for name in properties if name.strip().lower() in SERVER_FILE_ARGUMENTS}
    if not names:
        return dict(schema)
    if names & set(schema.get("required") or []):
        return None
    kept = {name: value for name, value in properties.items() if name not in names}
    return {**schema, "properties": kept}


def reads_server_files(arguments: Any) -> bool:
    """Whether ``arguments`` name a server-file argument at any depth, JSON text included
    (``additional_fields`` may be a JSON string). Iterative: model output may nest deep."""
    pending: list[Any] = [arguments]
    seen = 0
    while pending:
        seen += 1
        if seen > 10_000:
            return True  # nothing legitimate is this large: refuse rather than walk on
        value = pending.pop()
        if isinstance(value, str):
            text = value.strip()
            if text[:1] in ("{", "["):
                with suppress(ValueError, RecursionError):  # the server cannot read it either
                    pending.append(json.loads(text))
        elif isinstance(value, dict):
            for key, item in value.items():
                if str(key).strip().lower() in SERVER_FILE_ARGUMENTS:
                    return True
                pending.append(item)
        elif isinstance(value, list | tuple):
            pending.extend(value)
    return False
