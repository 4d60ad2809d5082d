"""The one seam owning MCP sessions (the official ``mcp`` 2.x client).

Two transports, chosen by settings:

- streamable HTTP (``MCP_JIRA_URL``): one shared ``mcp-atlassian`` started with
  ``ATLASSIAN_OAUTH_ENABLE=true``. Headers are fixed per HTTP client, so every user token
  gets its own client session carrying ``Authorization: Bearer <token>`` and
  ``X-Atlassian-Cloud-Id``: one user's token never serves another;
- stdio (``MCP_JIRA_COMMAND`` + ``MCP_JIRA_ARGS``): one server process per user token,
  the token in its environment (``ATLASSIAN_OAUTH_ACCESS_TOKEN``).

Sessions are long-lived and pooled in :mod:`assistant.mcp_pool` (one event loop in a
thread of its own, keyed by user, token and transport); this module runs what callers ask
of a session there: listing the tools (once per session) and calling one.

Callers get a small typed, synchronous API: ``mcp_tools_for`` and ``mcp_tool_call``.
Disabled tools (``MCP_JIRA_DISABLED_TOOLS``) are neither listed nor callable. An
unreachable server raises ``McpUnavailable`` (503); a tool's own failure is a
``ToolResult`` with ``is_error=True``, for the model to read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from mcp.shared.exceptions import MCPError
from mcp.types import CONNECTION_CLOSED, Tool

from assistant.mcp_pool import (
    McpUnavailable,
    Pool,
    PoolKey,
    Session,
    mcp_unavailable,
    pool_key,
    pool_runner,
)
from assistant.tool_policy import (
    SERVER_FILE_ARGUMENTS,
    disabled_tools,
    offered_schema,
    read_only,
    reads_server_files,
)

logger = logging.getLogger(__name__)


# The longest tool error passed on (errors are stored and shown whole).
ERROR_TEXT_MAX = 2_000


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    input_schema: dict[str, Any]
    read_only: bool  # False means a write: ask before running it in confirm mode


@dataclass(frozen=True)
class ToolResult:
    text: str
    is_error: bool
    duration_ms: float


def _interrupted(name: str) -> McpUnavailable:
    error = McpUnavailable(
        f"The MCP server stopped answering during {name}: it may have been done. Check in "
        "Jira or Confluence before asking for it again."
    )
    error.maybe_done = True
    return error


async def _tools(
    key: PoolKey, access_token: str, cloud_id: str, timeout: float
) -> tuple[Session, list[Tool]]:
    pool = pool_runner().pool
    async with pool.using(
        key, access_token=access_token, cloud_id=cloud_id, timeout=timeout
    ) as session:
        return session, await _listed(pool, session, timeout)


async def _listed(pool: Pool, session: Session, timeout: float) -> list[Tool]:
    """The session's tools (listed once per session); a session that cannot list them is
    dropped, and the server reported unreachable."""
    try:
        return await session.list_tools(timeout)
    except McpUnavailable:
        await pool.forget(session)
        raise
    except (TimeoutError, Exception):
        await pool.forget(session)
        raise mcp_unavailable() from None


def mcp_tools_for(*, user_id: int, access_token: str, cloud_id: str) -> list[ToolSpec]:
    """The MCP tools this user may use (disabled ones left out), read vs write classified.

    Discovered once per pooled session. Raises ``McpUnavailable`` when the server cannot
    be reached."""
    if not settings.MCP_JIRA_ENABLED:
        return []
    key, disabled = pool_key(user_id, access_token, cloud_id), disabled_tools()
    runner = pool_runner()
    offered = _OFFERED.get(key)
    if offered is not None and offered.still_for(runner.pool, disabled):
        return list(offered.specs)
    timeout = settings.MCP_TIMEOUT
    session, tools = runner.submit(_tools(key, access_token, cloud_id, timeout), timeout * 2 + 5)
    specs = _specs(tools, disabled)
    for stale in [k for k, o in list(_OFFERED.items()) if not o.still_for(runner.pool, disabled)]:
        _OFFERED.pop(stale, None)
    _OFFERED[key] = _Offered(session, disabled, specs)
    return list(specs)


@dataclass(frozen=True)
class _Offered:
    """A pooled session's tools as offered: read by the runs' threads without a hop to
    the pool's loop while that session is still the pool's for its key (a dict lookup and
    two flags, safe to read from another thread), under the same disabled tools."""

    session: Session
    disabled: frozenset[str]
    specs: list[ToolSpec]

    def still_for(self, pool: Pool, disabled: frozenset[str]) -> bool:
        session = self.session
        return (
            not session.closed
            and not session.retired
            and pool.sessions.get(session.key) is session
            and disabled == self.disabled
        )


# Keyed like the pool (user, token, transport); entries whose session left go at the
# next listing.
_OFFERED: dict[PoolKey, _Offered] = {}


def _specs(tools: list[Tool], disabled: frozenset[str]) -> list[ToolSpec]:
    specs = []
    for tool in tools:
        schema = offered_schema(dict(tool.input_schema))
        if tool.name in disabled or schema is None:
            continue
        specs.append(
            ToolSpec(
                name=tool.name,
                description=tool.description or "",
                input_schema=schema,
                read_only=read_only(tool),
            )
        )
    return specs


def _text(content: list[Any], structured: Any) -> str:
    parts = [
        block.text if getattr(block, "type", "") == "text" else f"[{block.type} content]"
        for block in content
    ]
    if not parts and structured is not None:
        parts.append(str(structured))
    return "\n".join(parts)


async def _call(
    key: PoolKey,
    access_token: str,
    cloud_id: str,
    name: str,
    arguments: dict[str, Any],
    timeout: float,
) -> tuple[str, bool]:
    pool = pool_runner().pool
    # One checkout for the check and the call: the session that listed the tool runs it.
    async with pool.using(
        key, access_token=access_token, cloud_id=cloud_id, timeout=timeout
    ) as session:
        if name not in {tool.name for tool in await _listed(pool, session, timeout)}:
            return f"There is no tool named {name}.", True
        client = await session.client(timeout)
        try:
            result = await asyncio.wait_for(client.call_tool(name, arguments), timeout)
        except TimeoutError:
            return f"The tool {name} did not answer within {timeout:g} s.", True
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED:
                await pool.forget(session)
                raise _interrupted(name) from None
            return f"The tool {name} failed: {exc.message}", True
        except Exception:  # the transport broke under the call: the server is gone
            await pool.forget(session)
            raise _interrupted(name) from None
    return _text(result.content, result.structured_content), bool(result.is_error)


def mcp_tool_call(
    *,
    user_id: int,
    access_token: str,
    cloud_id: str,
    name: str,
    arguments: dict[str, Any],
    timeout: float | None = None,
) -> ToolResult:
    """Run one tool over the user's pooled session.

    A disabled or unknown tool is refused without reaching the server; a tool's failure
    or timeout comes back as ``is_error=True`` (for the model to explain). Raises
    ``McpUnavailable`` when the server cannot be reached or dies mid-call."""
    started = time.perf_counter()

    def done(text: str, is_error: bool) -> ToolResult:
        if is_error and len(text) > ERROR_TEXT_MAX:
            # An error is kept whole in the run, its events and the page (a result only
            # as a summary): a server echoing a huge input must not bloat them.
            text = text[: ERROR_TEXT_MAX - 1] + "…"
        return ToolResult(text, is_error, round((time.perf_counter() - started) * 1000, 1))

    if not settings.MCP_JIRA_ENABLED:
        return done("The Jira tools are turned off on this server.", True)
    if name in disabled_tools():
        return done(f"The tool {name} is disabled on this server.", True)
    if reads_server_files(arguments):
        return done(
            "Not run: files on the server cannot be attached or read "
            f"({', '.join(sorted(SERVER_FILE_ARGUMENTS))}). Pass the content itself instead.",
            True,
        )
    limit = timeout if timeout is not None else settings.MCP_TIMEOUT
    text, is_error = pool_runner().submit(
        _call(
            pool_key(user_id, access_token, cloud_id),
            access_token,
            cloud_id,
            name,
            arguments,
            limit,
        ),
        limit * 3 + 5,
    )
    return done(text, is_error)
