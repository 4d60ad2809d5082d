"""The one seam owning MCP sessions (the official ``mcp`` 2.x client).

Two transports, chosen by settings:

- streamable HTTP (``MCP_JIRA_URL``): one shared ``mcp-atlassian`` started with
  ``ATLASSIAN_OAUTH_ENABLE=true``. Headers are fixed per HTTP client, so every user token
  gets its own client session carrying ``Authorization: Bearer <token>`` and
  ``X-Atlassian-Cloud-Id``: one user's token never serves another;
- stdio (``MCP_JIRA_COMMAND`` + ``MCP_JIRA_ARGS``): one server process per user token,
  the token in its environment (``ATLASSIAN_OAUTH_ACCESS_TOKEN``).

Sessions are long-lived, so they live on ONE event loop in a thread of its own: an owner
task enters and leaves each session (anyio's cancel scopes must exit in the task that
entered them), and callers in any thread submit coroutines to that loop. The pool is keyed
by (user id, token hash, transport), closes sessions idle longer than
``MCP_IDLE_TIMEOUT``, holds at most ``MCP_POOL_SIZE`` and is closed at exit. A refreshed
token means a new key: the user's older sessions are closed then.

Callers get a small typed, synchronous API: ``mcp_tools_for`` and ``mcp_tool_call``.
Disabled tools (``MCP_JIRA_DISABLED_TOOLS``) are neither listed nor callable. An
unreachable server raises ``McpUnavailable`` (503); a tool's own failure is a
``ToolResult`` with ``is_error=True``, for the model to read.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import hashlib
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx2
from django.conf import settings
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import CONNECTION_CLOSED, PaginatedRequestParams, Tool

from assistant.tool_policy import (
    SERVER_FILE_ARGUMENTS,
    disabled_tools,
    offered_schema,
    read_only,
    reads_server_files,
)
from core.errors import ProviderUnavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")

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


class McpUnavailable(ProviderUnavailable):
    """The MCP server cannot be reached (or died): nothing was done, try again later."""

    code = "mcp_unavailable"
    # True when the server went away during a call: the call may have been done.
    maybe_done = False


def _interrupted(name: str) -> McpUnavailable:
    error = McpUnavailable(
        f"The MCP server stopped answering during {name}: it may have been done. Check in "
        "Jira or Confluence before asking for it again."
    )
    error.maybe_done = True
    return error


def _unavailable() -> McpUnavailable:
    return McpUnavailable(
        "MCP server unreachable: the Jira tools are unavailable for now, try again later.",
        retry_after=5,
    )


@dataclass(frozen=True)
class _Transport:
    """What a session connects to: part of the pool key, so a changed setting means new
    sessions rather than a session opened under the old one."""

    url: str
    command: str
    args: tuple[str, ...]
    site_url: str

    @classmethod
    def from_settings(cls) -> _Transport:
        return cls(
            url=settings.MCP_JIRA_URL,
            command=settings.MCP_JIRA_COMMAND,
            args=tuple(settings.MCP_JIRA_ARGS),
            site_url=settings.MCP_JIRA_SITE_URL,
        )

    def open(
        self, *, access_token: str, cloud_id: str, timeout: float
    ) -> AbstractAsyncContextManager[Any]:
        if self.url:
            return self._http(access_token=access_token, cloud_id=cloud_id, timeout=timeout)
        return self._stdio(access_token=access_token, cloud_id=cloud_id)

    @asynccontextmanager
    async def _http(
        self, *, access_token: str, cloud_id: str, timeout: float
    ) -> AsyncIterator[Any]:
        headers = {"Authorization": f"Bearer {access_token}"}
        if cloud_id:
            headers["X-Atlassian-Cloud-Id"] = cloud_id
        http = create_mcp_http_client(
            headers=headers, timeout=httpx2.Timeout(timeout, read=max(timeout, 300.0))
        )
        async with http, streamable_http_client(self.url, http_client=http) as streams:
            yield streams

    @asynccontextmanager
    async def _stdio(self, *, access_token: str, cloud_id: str) -> AsyncIterator[Any]:
        # Only what the server needs: the stdio client adds PATH and HOME, never Kay's own
        # environment (its secrets).
        env = {
            "ATLASSIAN_OAUTH_ACCESS_TOKEN": access_token,
            "JIRA_URL": self.site_url,
            "CONFLUENCE_URL": f"{self.site_url.rstrip('/')}/wiki",
            "TOOLSETS": "all",
            "FASTMCP_CHECK_FOR_UPDATES": "off",
        }
        if cloud_id:
            env["ATLASSIAN_OAUTH_CLOUD_ID"] = cloud_id
        params = StdioServerParameters(command=self.command, args=list(self.args), env=env)
        async with stdio_client(params) as streams:
            yield streams


_Key = tuple[int, str, _Transport]


@dataclass(eq=False)
class _Session:
    """One MCP client session and the task that owns it (lives on the pool's loop)."""

    key: _Key
    last_used: float = field(default_factory=time.monotonic)
    busy: int = 0
    tools: list[Tool] | None = None
    closed: bool = False
    retired: bool = False  # out of the pool while busy: its last caller closes it

    def __post_init__(self) -> None:
        loop = asyncio.get_running_loop()
        self._ready: asyncio.Future[ClientSession] = loop.create_future()
        # Whoever waited may have given up; the outcome is still consumed here.
        self._ready.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._stop = asyncio.Event()
        self._listing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def start(self, opener: AbstractAsyncContextManager[Any]) -> None:
        self._task = asyncio.get_running_loop().create_task(self._own(opener))

    async def _transport_error(self, message: Any) -> None:
        # A refused connection arrives here, not as the handshake's answer: fail the
        # waiters at once instead of after MCP_TIMEOUT.
        if isinstance(message, Exception) and not self._ready.done():
            self._ready.set_exception(message)
            if self._task is not None:
                self._task.cancel()

    async def _own(self, opener: AbstractAsyncContextManager[Any]) -> None:
        try:
            async with (
                opener as (read, write),
                ClientSession(read, write, message_handler=self._transport_error) as client,
            ):
                await client.initialize()
                if not self._ready.done():
                    self._ready.set_result(client)
                await self._stop.wait()
        except BaseException as exc:  # the waiters learn how it ended; the task just ends
            if not self._ready.done():
                self._ready.set_exception(exc)
            logger.info("MCP session ended: %s", exc.__class__.__name__)
        finally:
            self.closed = True

    async def client(self, timeout: float) -> ClientSession:
        try:
            return await asyncio.wait_for(asyncio.shield(self._ready), timeout)
        except (TimeoutError, Exception):
            raise _unavailable() from None

    async def list_tools(self, timeout: float) -> list[Tool]:
        async with self._listing:  # discovered once per session
            if self.tools is None:
                client = await self.client(timeout)
                tools: list[Tool] = []
                cursor: str | None = None
                while True:
                    params = PaginatedRequestParams(cursor=cursor) if cursor else None
                    page = await asyncio.wait_for(client.list_tools(params=params), timeout)
                    tools.extend(page.tools)
                    cursor = page.next_cursor
                    if not cursor:
                        break
                self.tools = tools
            return self.tools

    async def close(self) -> None:
        self.closed = True
        self._stop.set()
        if self._task is not None:
            with suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._task, 10)


class _Pool:
    """The sessions of this process; touched only from the pool's loop, so no locks."""

    def __init__(self) -> None:
        self.sessions: dict[_Key, _Session] = {}

    @asynccontextmanager
    async def using(
        self, key: _Key, *, access_token: str, cloud_id: str, timeout: float
    ) -> AsyncIterator[_Session]:
        """The key's session, held busy until the caller is done with it: neither the
        reaper nor the cap closes it under a caller that is still starting it, listing its
        tools or calling one."""
        session = await self._checkout(
            key, access_token=access_token, cloud_id=cloud_id, timeout=timeout
        )
        try:
            yield session
        finally:
            session.busy -= 1
            session.last_used = time.monotonic()
            if session.retired and not session.busy:
                await session.close()

    async def _checkout(
        self, key: _Key, *, access_token: str, cloud_id: str, timeout: float
    ) -> _Session:
        session = self.sessions.get(key)
        if session is not None and not session.closed:
            session.busy += 1
            return session
        self.sessions.pop(key, None)
        # A refreshed token is a new key: the user's sessions on older tokens go.
        retired = [s for k, s in self.sessions.items() if k[0] == key[0] and k[2] == key[2]]
        for old in retired:
            del self.sessions[old.key]
        if len(self.sessions) >= settings.MCP_POOL_SIZE:
            idle = [s for s in self.sessions.values() if not s.busy]
            if not idle:
                raise _unavailable()
            oldest = min(idle, key=lambda s: s.last_used)
            del self.sessions[oldest.key]
            retired.append(oldest)
        # Registered (and busy) before any await, so a concurrent caller with this key
        # shares it and the reaper leaves it alone.
        session = _Session(key)
        session.busy = 1
        session.start(key[2].open(access_token=access_token, cloud_id=cloud_id, timeout=timeout))
        self.sessions[key] = session
        for old in retired:
            # Out of the pool, so no new caller gets it; one still using it (another run
            # of this user, on the token it read before the refresh) closes it when done.
            if old.busy:
                old.retired = True
            else:
                await old.close()  # never raises: close() suppresses its own timeout
        return session

    async def _drop(self, session: _Session) -> None:
        if self.sessions.get(session.key) is session:
            del self.sessions[session.key]
        await session.close()

    async def forget(self, session: _Session) -> None:
        """A session whose server died: closed, so the next call starts afresh."""
        await self._drop(session)

    async def reap(self) -> None:
        cutoff = time.monotonic() - settings.MCP_IDLE_TIMEOUT
        for session in list(self.sessions.values()):
            # Checked again at each turn: while a close below is awaited, a caller may
            # check out a session listed as idle, or replace it.
            if session.busy or self.sessions.get(session.key) is not session:
                continue
            if session.closed or session.last_used < cutoff:
                await self._drop(session)

    async def close_all(self) -> None:
        for session in list(self.sessions.values()):
            await self._drop(session)


class _Runner:
    """The loop thread. One per process: a forked worker starts its own."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.pool = _Pool()
        self.thread = threading.Thread(target=self._run, name="mcp-sessions", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.reaper = self.loop.create_task(self._reap_forever())
        self.loop.run_forever()

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(max(1.0, min(settings.MCP_IDLE_TIMEOUT / 2, 30.0)))
            await self.pool.reap()

    def submit(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise _unavailable() from None

    async def _shutdown(self) -> None:
        self.reaper.cancel()
        await self.pool.close_all()

    def stop(self) -> None:
        try:
            self.submit(self._shutdown(), 15)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


_runner: _Runner | None = None
_runner_lock = threading.Lock()


def _get_runner() -> _Runner:
    global _runner
    with _runner_lock:
        if _runner is None or _runner.pid != os.getpid():
            _runner = _Runner()
        return _runner


def mcp_sessions_close() -> None:
    """Close every pooled session of this process (at exit; tests between cases)."""
    with _runner_lock:
        runner = _runner
    if runner is not None and runner.pid == os.getpid():
        runner.submit(runner.pool.close_all(), 30)


def _stop_at_exit() -> None:
    global _runner
    with _runner_lock:
        runner, _runner = _runner, None
    if runner is not None and runner.pid == os.getpid():
        runner.stop()


atexit.register(_stop_at_exit)


def _key(user_id: int, access_token: str, cloud_id: str) -> _Key:
    digest = hashlib.sha256(f"{access_token}\n{cloud_id}".encode()).hexdigest()
    return (user_id, digest, _Transport.from_settings())


async def _tools(key: _Key, access_token: str, cloud_id: str, timeout: float) -> list[Tool]:
    pool = _get_runner().pool
    async with pool.using(
        key, access_token=access_token, cloud_id=cloud_id, timeout=timeout
    ) as session:
        try:
            return await session.list_tools(timeout)
        except McpUnavailable:
            await pool.forget(session)
            raise
        except (TimeoutError, Exception):
            await pool.forget(session)
            raise _unavailable() from None


def mcp_tools_for(*, user_id: int, access_token: str, cloud_id: str) -> list[ToolSpec]:
    """The MCP tools this user may use (disabled ones left out), read vs write classified.

    Discovered once per pooled session. Raises ``McpUnavailable`` when the server cannot
    be reached."""
    if not settings.MCP_JIRA_ENABLED:
        return []
    timeout = settings.MCP_TIMEOUT
    tools = _get_runner().submit(
        _tools(_key(user_id, access_token, cloud_id), access_token, cloud_id, timeout),
        timeout * 2 + 5,
    )
    disabled = disabled_tools()
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
    key: _Key,
    access_token: str,
    cloud_id: str,
    name: str,
    arguments: dict[str, Any],
    timeout: float,
) -> tuple[str, bool]:
    tools = await _tools(key, access_token, cloud_id, timeout)
    if name not in {tool.name for tool in tools}:
        return f"There is no tool named {name}.", True
    pool = _get_runner().pool
    async with pool.using(
        key, access_token=access_token, cloud_id=cloud_id, timeout=timeout
    ) as session:
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
    text, is_error = _get_runner().submit(
        _call(
            _key(user_id, access_token, cloud_id), access_token, cloud_id, name, arguments, limit
        ),
        limit * 3 + 5,
    )
    return done(text, is_error)
