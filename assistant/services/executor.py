"""The production tool layer for the loop: the user's Jira tools over MCP."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.utils import timezone

from accounts.models import User
from assistant.mcp_client import ToolResult, ToolSpec
from assistant.services.mcp import AtlassianAccess, assistant_tool_run, assistant_tools_for_user
from connections.selectors import ConnectionStamp, connection_stamp
from connections.services.tokens import REFRESH_MARGIN

# How long the access read for a user is reused (by the run that read it and the runs
# after it in this process): well inside the Connections service's refresh margin (a
# token handed out is good for five minutes more), and only while the connection's stamp
# (its token's refresh, a reconnection) is the one it was read under.
ACCESS_REUSE_SECONDS = 60.0


@dataclass(frozen=True)
class _Read:
    access: AtlassianAccess = field(repr=False)
    stamp: ConnectionStamp
    at: float


# user id → the access last read for them in this process.
_recent: dict[int, _Read] = {}


def access_memo_forget() -> None:
    _recent.clear()


os.register_at_fork(after_in_child=access_memo_forget)


def _reusable(read: _Read | None, stamp: ConnectionStamp) -> bool:
    if read is None or read.stamp != stamp:
        return False
    if time.monotonic() - read.at > ACCESS_REUSE_SECONDS:
        return False
    # A token near its expiry is read again (the read refreshes it).
    return (
        stamp.expires_at is None
        or stamp.expires_at
        > timezone.now() + timedelta(seconds=ACCESS_REUSE_SECONDS) + REFRESH_MARGIN
    )


@dataclass
class McpToolExecutor:
    """``ToolExecutor`` over MCP, acting with ``user``'s own Atlassian access. Each step
    checks the connection still stands as it was (one query) and reuses the access read
    under it, for a minute, by this run or an earlier one in this process: a user who
    disconnects Jira, reconnects it or has its token refreshed is read afresh at once."""

    user: User
    _access: AtlassianAccess | None = field(default=None, repr=False)

    def access(self) -> AtlassianAccess:
        stamp = connection_stamp(user=self.user, service="jira")
        read = _recent.get(self.user.pk)
        if stamp is None or not _reusable(read, stamp):
            _recent.pop(self.user.pk, None)
            self._access = None  # a refusal below leaves nothing to reuse
            access = AtlassianAccess.read(user=self.user)  # raises without a connection
            if stamp is not None:
                if len(_recent) > 10_000:
                    _recent.clear()
                _recent[self.user.pk] = _Read(access, stamp, time.monotonic())
        else:
            assert read is not None
            access = read.access
        self._access = access
        return access

    def sites(self) -> list[dict[str, Any]] | None:
        """The user's Atlassian sites, when the tools' access read them (None: not read,
        as when MCP is turned off)."""
        return self._access.sites if self._access is not None else None

    def tools(self) -> list[ToolSpec]:
        return assistant_tools_for_user(user=self.user, access=self.access)

    def call(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        return assistant_tool_run(
            user=self.user, name=name, arguments=arguments, access=self.access
        )
