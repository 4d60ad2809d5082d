"""The production tool layer of a run (``McpToolExecutor``): the user's own Atlassian
access, reused within the run but never past the user taking it away."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from assistant.services import mcp
from assistant.services.executor import McpToolExecutor
from assistant.services.mcp import JiraNotConnected
from connections.models import Connection
from connections.services.cli import connection_disconnect
from core.errors import ConnectionNeedsReauth
from tests.assistant.chat import LocalExecutor, LocalResult
from tests.connections.factories import AccessibleResourceFactory, ConnectionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def calls(monkeypatch):
    """The tokens tool calls went out with (the MCP layer faked)."""
    sent: list[str] = []

    def call(**kwargs):
        sent.append(kwargs["access_token"])
        return LocalResult("ok")

    monkeypatch.setattr(mcp, "mcp_tools_for", lambda **kwargs: LocalExecutor().tools())
    monkeypatch.setattr(mcp, "mcp_tool_call", call)
    return sent


def test_a_run_stops_using_jira_once_the_user_disconnects_it(alice, calls):
    AccessibleResourceFactory(connection=ConnectionFactory(user=alice))
    tools = McpToolExecutor(alice)
    tools.call("jira_search", {"jql": "project = KAN"})
    assert len(calls) == 1
    connection_disconnect(user=alice, service="jira")
    with pytest.raises(JiraNotConnected):
        tools.call("jira_create_issue", {"project_key": "KAN", "summary": "x"})
    assert len(calls) == 1  # the forgotten token was not used again


def test_a_run_stops_using_jira_once_its_connection_needs_reauthorisation(alice, calls):
    ConnectionFactory(user=alice)
    tools = McpToolExecutor(alice)
    tools.call("jira_search", {"jql": "project = KAN"})
    Connection.objects.filter(user=alice).update(status=Connection.Status.NEEDS_REAUTH)
    with pytest.raises(ConnectionNeedsReauth):
        tools.call("jira_search", {"jql": "project = KAN"})
    assert len(calls) == 1


@pytest.fixture
def reads(monkeypatch):
    """The users whose Atlassian access was read (token and sites from the database)."""
    seen: list[int] = []
    read = mcp.AtlassianAccess.read

    def counting(cls, *, user):
        seen.append(user.pk)
        return read(user=user)

    monkeypatch.setattr(mcp.AtlassianAccess, "read", classmethod(counting))
    return seen


def test_a_run_reuses_its_jira_access_while_the_connection_stands(alice, calls, reads):
    ConnectionFactory(user=alice)
    tools = McpToolExecutor(alice)
    tools.call("jira_search", {"jql": "project = KAN"})
    tools.call("jira_search", {"jql": "project = KAN"})
    assert reads == [alice.pk] and len(calls) == 2 and calls[0] == calls[1]


def test_the_next_run_reuses_it_too_but_never_for_another_user(alice, bob, calls, reads):
    ConnectionFactory(user=alice, access_token="alice-token")
    ConnectionFactory(user=bob, access_token="bob-token")
    McpToolExecutor(alice).call("jira_search", {"jql": "project = KAN"})
    McpToolExecutor(alice).call("jira_search", {"jql": "project = KAN"})
    McpToolExecutor(bob).call("jira_search", {"jql": "project = KAN"})
    assert reads == [alice.pk, bob.pk]
    assert calls == ["alice-token", "alice-token", "bob-token"]


def test_a_refreshed_or_reconnected_connection_is_read_afresh(alice, calls, reads):
    connection = ConnectionFactory(user=alice, access_token="first")
    McpToolExecutor(alice).call("jira_search", {"jql": "project = KAN"})
    connection.access_token = "refreshed"
    connection.last_refreshed_at = timezone.now()
    connection.save()
    McpToolExecutor(alice).call("jira_search", {"jql": "project = KAN"})
    connection_disconnect(user=alice, service="jira")
    connection = ConnectionFactory(user=alice, access_token="reconnected")
    McpToolExecutor(alice).call("jira_search", {"jql": "project = KAN"})
    assert calls == ["first", "refreshed", "reconnected"] and len(reads) == 3


def test_a_token_near_its_expiry_is_read_again(alice, calls, reads):
    ConnectionFactory(user=alice, expires_at=timezone.now() + timedelta(minutes=5, seconds=30))
    McpToolExecutor(alice).call("jira_search", {"jql": "project = KAN"})
    McpToolExecutor(alice).call("jira_search", {"jql": "project = KAN"})
    assert len(reads) == 2


def test_reused_access_is_dropped_after_a_minute(alice, calls, reads, monkeypatch):
    from assistant.services import executor

    ConnectionFactory(user=alice)
    McpToolExecutor(alice).call("jira_search", {"jql": "project = KAN"})
    monkeypatch.setattr(executor, "ACCESS_REUSE_SECONDS", 0.0)
    McpToolExecutor(alice).call("jira_search", {"jql": "project = KAN"})
    assert len(reads) == 2


def test_the_health_block_follows_a_change_of_mcp_status_at_once(alice, settings):
    """The same status is not written again for a minute (a cache round trip per run),
    but a change is written at once."""
    from django.core.cache import cache

    settings.MCP_JIRA_ENABLED = True
    mcp._remember(user=alice, connected=True, tool_count=3)
    assert mcp.assistant_mcp_health(user=alice)["status"] == "healthy"
    mcp._remember(user=alice, connected=False, tool_count=0)
    assert mcp.assistant_mcp_health(user=alice)["status"] == "unhealthy"
    mcp._remember(user=alice, connected=True, tool_count=3)
    assert mcp.assistant_mcp_health(user=alice)["toolCount"] == 3
    cache.delete(mcp._STATUS_KEY.format(user_id=alice.pk))
    mcp._remember(user=alice, connected=True, tool_count=3)  # unchanged: not rewritten
    assert mcp.assistant_mcp_health(user=alice)["status"] == "unknown"


def test_a_change_to_another_atlassian_connection_reads_the_sites_afresh(alice, calls, reads):
    """Attack review 20: the sites come from every connection, not only Jira's."""
    jira = ConnectionFactory(user=alice, service="jira")
    AccessibleResourceFactory(connection=jira, resource_id="jira-site", name="B Jira")
    confluence = ConnectionFactory(user=alice, service="confluence")
    AccessibleResourceFactory(connection=confluence, resource_id="conf-site", name="A Wiki")
    assert McpToolExecutor(alice).access().cloud_id == "conf-site"
    connection_disconnect(user=alice, service="confluence")
    access = McpToolExecutor(alice).access()
    assert [site["id"] for site in access.sites] == ["jira-site"]
    assert access.cloud_id == "jira-site" and len(reads) == 2
