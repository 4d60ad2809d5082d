"""The MCP session pool: one event loop in a thread of its own per process, owning every
session (anyio's cancel scopes must exit in the task that entered them); callers in any
thread submit coroutines to it (``pool_runner().submit``).

Sessions are keyed by (user id, hash of token and cloud id, transport): one user's token
never serves another. A session is busy from its checkout to its caller's end; idle ones
are closed after ``MCP_IDLE_TIMEOUT``, at most ``MCP_POOL_SIZE`` are open, a refreshed
token retires the user's sessions on older tokens, and all are closed at exit. What runs
on a session (listing tools, calling one) is :mod:`assistant.mcp_client`'s.
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
from mcp.types import PaginatedRequestParams, Tool

from core.errors import ProviderUnavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")


class McpUnavailable(ProviderUnavailable):
    """The MCP server cannot be reached (or died): nothing was done, try again later."""

    code = "mcp_unavailable"
    # True when the server went away during a call: the call may have been done.
    maybe_done = False


def mcp_unavailable() -> McpUnavailable:
    return McpUnavailable(
        "MCP server unreachable: the Jira tools are unavailable for now, try again later.",
        retry_after=5,
    )


@dataclass(frozen=True)
class Transport:
    """What a session connects to: part of the pool key, so a changed setting means new
    sessions rather than a session opened under the old one."""

    url: str
    command: str
    args: tuple[str, ...]
    site_url: str

    @classmethod
    def from_settings(cls) -> Transport:
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


PoolKey = tuple[int, str, Transport]


@dataclass(eq=False)
class Session:
    """One MCP client session and the task that owns it (lives on the pool's loop)."""

    key: PoolKey
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
            raise mcp_unavailable() from None

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


class Pool:
    """The sessions of this process; touched only from the pool's loop, so no locks."""

    def __init__(self) -> None:
        self.sessions: dict[PoolKey, Session] = {}

    @asynccontextmanager
    async def using(
        self, key: PoolKey, *, access_token: str, cloud_id: str, timeout: float
    ) -> AsyncIterator[Session]:
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
        self, key: PoolKey, *, access_token: str, cloud_id: str, timeout: float
    ) -> Session:
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
                raise mcp_unavailable()
            oldest = min(idle, key=lambda s: s.last_used)
            del self.sessions[oldest.key]
            retired.append(oldest)
        # Registered (and busy) before any await, so a concurrent caller with this key
        # shares it and the reaper leaves it alone.
        session = Session(key)
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

    async def _drop(self, session: Session) -> None:
        if self.sessions.get(session.key) is session:
            del self.sessions[session.key]
        await session.close()

    async def forget(self, session: Session) -> None:
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


class Runner:
    """The loop thread. One per process: a forked worker starts its own."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.pool = Pool()
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
            raise mcp_unavailable() from None

    async def _shutdown(self) -> None:
        self.reaper.cancel()
        await self.pool.close_all()

    def stop(self) -> None:
        try:
            self.submit(self._shutdown(), 15)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


_runner: Runner | None = None
_runner_lock = threading.Lock()


def pool_runner() -> Runner:
    global _runner
    with _runner_lock:
        if _runner is None or _runner.pid != os.getpid():
            _runner = Runner()
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


def pool_key(user_id: int, access_token: str, cloud_id: str) -> PoolKey:
    digest = hashlib.sha256(f"{access_token}\n{cloud_id}".encode()).hexdigest()
    return (user_id, digest, Transport.from_settings())
