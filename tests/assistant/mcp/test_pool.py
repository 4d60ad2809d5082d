"""The session pool over stdio (a small MCP server script, one process per user token):
reuse, isolation, token refresh, idle expiry, the cap, a dead server, and what reaches
the server process."""

import asyncio
import json
import os
import secrets

import pytest

from assistant import mcp_client, mcp_pool
from assistant.mcp_client import McpUnavailable, mcp_tool_call, mcp_tools_for
from tests.assistant.mcp.conftest import ALICE_TOKEN, BOB_TOKEN

pytestmark = pytest.mark.usefixtures("over_stdio")


def _search(user_id: int, token: str, cloud_id: str = "cloud-1") -> dict:
    result = mcp_tool_call(
        user_id=user_id,
        access_token=token,
        cloud_id=cloud_id,
        name="jira_search",
        arguments={"jql": "project = KAN"},
    )
    assert not result.is_error, result.text
    return json.loads(result.text)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _run(coro):
    runner = mcp_pool.pool_runner()
    return runner.submit(coro, 30)


def test_a_users_calls_reuse_one_server_process():
    first, second = _search(1, ALICE_TOKEN), _search(1, ALICE_TOKEN)
    assert first["pid"] == second["pid"]


def test_each_user_has_their_own_process_with_their_own_token_only():
    alice, bob = _search(1, ALICE_TOKEN, "cloud-alice"), _search(2, BOB_TOKEN, "cloud-bob")
    assert alice["pid"] != bob["pid"]
    assert (alice["token"], alice["cloud_id"]) == (ALICE_TOKEN, "cloud-alice")
    assert (bob["token"], bob["cloud_id"]) == (BOB_TOKEN, "cloud-bob")


def test_the_server_gets_its_settings_and_none_of_kays_environment(settings):
    answer = _search(1, ALICE_TOKEN)
    assert answer["jira_url"] == settings.MCP_JIRA_SITE_URL
    assert answer["inherited"] == []


def test_a_refreshed_token_starts_a_new_process_and_closes_the_old():
    old = _search(1, ALICE_TOKEN)
    new = _search(1, "alice-refreshed-token")
    assert new["pid"] != old["pid"] and new["token"] == "alice-refreshed-token"
    assert not _alive(old["pid"])


def test_idle_sessions_are_closed(settings):
    pid = _search(1, ALICE_TOKEN)["pid"]
    settings.MCP_IDLE_TIMEOUT = 0
    _run(mcp_pool.pool_runner().pool.reap())
    assert not _alive(pid)
    assert _search(1, ALICE_TOKEN)["pid"] != pid


def test_a_session_still_starting_is_not_reaped_under_its_caller(settings):
    """CI once failed test_idle_sessions_are_closed this way: the reaper's tick landed
    while the next call was still spawning its server, and closed it under the call."""
    settings.MCP_IDLE_TIMEOUT = 0
    pool = mcp_pool.pool_runner().pool
    cloud_id = f"cloud-{secrets.token_hex(4)}"  # a key no earlier test left in the pool
    key = mcp_pool.pool_key(1, ALICE_TOKEN, cloud_id)

    async def reap_while_it_starts():
        listing = asyncio.ensure_future(mcp_client._tools(key, ALICE_TOKEN, cloud_id, 20))
        await asyncio.sleep(0)  # the call has its session and awaits the server's start
        assert key in pool.sessions and not pool.sessions[key].tools
        await pool.reap()
        return await listing

    _, tools = _run(reap_while_it_starts())
    assert "jira_search" in {tool.name for tool in tools}
    # Once its caller is done, the idle session goes as before.
    _run(pool.reap())
    assert key not in pool.sessions


def test_at_the_cap_a_session_still_starting_is_not_closed_for_another_user(settings):
    settings.MCP_POOL_SIZE = 1
    cloud_id = f"cloud-{secrets.token_hex(4)}"  # keys no earlier test left in the pool
    alice = mcp_pool.pool_key(1, ALICE_TOKEN, cloud_id)
    bob = mcp_pool.pool_key(2, BOB_TOKEN, cloud_id)

    async def bob_arrives_while_alice_starts():
        listing = asyncio.ensure_future(mcp_client._tools(alice, ALICE_TOKEN, cloud_id, 20))
        await asyncio.sleep(0)
        assert not mcp_pool.pool_runner().pool.sessions[alice].tools  # still starting
        with pytest.raises(McpUnavailable):  # every session is in use: try again later
            await mcp_client._tools(bob, BOB_TOKEN, cloud_id, 20)
        return await listing

    _, tools = _run(bob_arrives_while_alice_starts())
    assert "jira_search" in {tool.name for tool in tools}


def test_beyond_the_cap_the_least_recently_used_session_is_closed(settings):
    settings.MCP_POOL_SIZE = 1
    alice = _search(1, ALICE_TOKEN)["pid"]
    _search(2, BOB_TOKEN)
    assert not _alive(alice)


def test_a_server_that_died_is_unavailable_once_then_restarted():
    pid = _search(1, ALICE_TOKEN)["pid"]
    os.kill(pid, 9)
    with pytest.raises(McpUnavailable):
        _search(1, ALICE_TOKEN)
    assert _search(1, ALICE_TOKEN)["pid"] != pid


def test_a_command_that_cannot_start_is_unavailable(settings):
    settings.MCP_JIRA_COMMAND = "/nonexistent/mcp-atlassian"
    with pytest.raises(McpUnavailable) as caught:
        mcp_tools_for(user_id=1, access_token=ALICE_TOKEN, cloud_id="")
    assert caught.value.status == 503


def test_tools_are_classified_by_annotations_and_a_failing_tool_is_an_error_result():
    tools = {t.name: t for t in mcp_tools_for(user_id=1, access_token=ALICE_TOKEN, cloud_id="")}
    assert tools["jira_search"].read_only and tools["jira_get_issue"].read_only
    assert not tools["jira_create_issue"].read_only
    result = mcp_tool_call(
        user_id=1,
        access_token=ALICE_TOKEN,
        cloud_id="",
        name="jira_get_issue",
        arguments={"issue_key": "KAN-9"},
    )
    assert result.is_error and "KAN-9 not found" in result.text


def test_an_unknown_tool_is_refused_without_a_call():
    result = mcp_tool_call(
        user_id=1, access_token=ALICE_TOKEN, cloud_id="", name="jira_drop_all", arguments={}
    )
    assert result.is_error and "no tool named jira_drop_all" in result.text


def test_with_mcp_turned_off_there_are_no_tools_and_calls_are_refused(settings):
    settings.MCP_JIRA_ENABLED = False
    assert mcp_tools_for(user_id=1, access_token=ALICE_TOKEN, cloud_id="") == []
    result = mcp_tool_call(
        user_id=1, access_token=ALICE_TOKEN, cloud_id="", name="jira_search", arguments={}
    )
    assert result.is_error and "turned off" in result.text


def _listings(monkeypatch) -> list[int]:
    """Counts the tool listings that go to the pool's loop."""
    counted: list[int] = []
    real = mcp_client._tools

    def counting(*args, **kwargs):
        counted.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(mcp_client, "_tools", counting)
    return counted


def test_a_sessions_tools_are_listed_once_then_read_without_a_hop(monkeypatch, settings):
    listings = _listings(monkeypatch)
    first = mcp_tools_for(user_id=1, access_token=ALICE_TOKEN, cloud_id="cloud-1")
    again = mcp_tools_for(user_id=1, access_token=ALICE_TOKEN, cloud_id="cloud-1")
    assert [t.name for t in again] == [t.name for t in first] and len(listings) == 1
    # Another user (or token) never reads this one's list: their own session lists theirs.
    mcp_tools_for(user_id=2, access_token=BOB_TOKEN, cloud_id="cloud-1")
    assert len(listings) == 2
    # A tool disabled meanwhile is no longer offered.
    settings.MCP_JIRA_DISABLED_TOOLS = ["jira_create_issue"]
    names = [t.name for t in mcp_tools_for(user_id=1, access_token=ALICE_TOKEN, cloud_id="cloud-1")]
    assert "jira_create_issue" not in names and len(listings) == 3


def test_tools_are_listed_again_once_their_session_is_gone(monkeypatch, settings):
    listings = _listings(monkeypatch)
    mcp_tools_for(user_id=1, access_token=ALICE_TOKEN, cloud_id="cloud-1")
    settings.MCP_IDLE_TIMEOUT = 0
    _run(mcp_pool.pool_runner().pool.reap())  # the session (and its server) is closed
    tools = mcp_tools_for(user_id=1, access_token=ALICE_TOKEN, cloud_id="cloud-1")
    assert tools and len(listings) == 2
    assert _search(1, ALICE_TOKEN)["token"] == ALICE_TOKEN
