"""The real ``mcp-atlassian`` (its own venv, ``make mcp-atlassian``) in streamable-HTTP mode,
started once per test session on 127.0.0.1 against the fake Jira; the MCP test server
(``tests/fakes/mcp_jira.py``) over stdio or streamable HTTP; alice and bob with their own
Jira connections and tokens; the MCP session pool emptied after each test."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from assistant.mcp_pool import mcp_sessions_close
from tests.connections.factories import AccessibleResourceFactory, ConnectionFactory
from tests.fakes.jira import FakeJira
from tests.fakes.mcp_jira import McpJiraHttp, serving_http
from tests.helpers.processes import free_port

ROOT = Path(__file__).resolve().parents[3]
MCP_ATLASSIAN = ROOT / "var" / "mcp-atlassian" / "bin" / "mcp-atlassian"
STDIO_SERVER = [sys.executable, str(ROOT / "tests" / "fakes" / "mcp_jira.py")]

ALICE_TOKEN = "alice-atlassian-access-token"
BOB_TOKEN = "bob-atlassian-access-token"


@pytest.fixture(scope="session")
def mcp_atlassian_bin() -> Path:
    if not MCP_ATLASSIAN.exists():
        message = f"mcp-atlassian is not installed at {MCP_ATLASSIAN}: run `make mcp-atlassian`"
        if os.environ.get("KAY_REQUIRE_MCP_ATLASSIAN"):  # CI: it must run
            pytest.fail(message)
        pytest.skip(message)
    return MCP_ATLASSIAN


@pytest.fixture(scope="session")
def fake_jira_server():
    server = FakeJira().start()
    yield server
    server.stop()


@pytest.fixture
def jira(fake_jira_server):
    """The fake Jira, emptied, knowing alice's and bob's tokens, with one KAN issue."""
    fake_jira_server.reset()
    fake_jira_server.grant(ALICE_TOKEN, "alice")
    fake_jira_server.grant(BOB_TOKEN, "bob")
    fake_jira_server.add_issue("KAN", "Existing ticket")
    return fake_jira_server


@pytest.fixture(scope="session")
def mcp_atlassian_url(mcp_atlassian_bin, fake_jira_server, tmp_path_factory):
    """One shared mcp-atlassian over streamable HTTP, per-user tokens on (as in production)."""
    folder = tmp_path_factory.mktemp("mcp-atlassian")
    empty_env = folder / "empty.env"  # else it loads any .env above its folder
    empty_env.write_text("")
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(folder),
        "ATLASSIAN_OAUTH_ENABLE": "true",
        "JIRA_URL": fake_jira_server.origin,
        "TOOLSETS": "all",
        "FASTMCP_CHECK_FOR_UPDATES": "off",
    }
    log = folder / "server.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(mcp_atlassian_bin), "--transport", "streamable-http", "--host", "127.0.0.1"]
            + ["--port", str(port), "--path", "/mcp", "--env-file", str(empty_env)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mcp-atlassian did not start:\n{log.read_text()}")
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(autouse=True)
def _mcp_settings(settings):
    settings.MCP_JIRA_ENABLED = True
    settings.MCP_TIMEOUT = 20
    settings.MCP_JIRA_DISABLED_TOOLS = ["jira_delete_issue", "confluence_delete_page"]
    yield
    mcp_sessions_close()


@pytest.fixture
def over_http(settings, mcp_atlassian_url, jira):
    settings.MCP_JIRA_URL = mcp_atlassian_url
    return jira


@pytest.fixture
def over_stdio(settings):
    """The MCP test server (tests/fakes/mcp_jira.py) over stdio: one process per user token."""
    settings.MCP_JIRA_URL = ""
    settings.MCP_JIRA_COMMAND = STDIO_SERVER[0]
    settings.MCP_JIRA_ARGS = STDIO_SERVER[1:]
    settings.MCP_JIRA_SITE_URL = "https://example.atlassian.net"


@pytest.fixture(scope="session")
def mcp_jira_http_server(tmp_path_factory):
    """The MCP test server (tests/fakes/mcp_jira.py) over streamable HTTP, once a session."""
    with serving_http(tmp_path_factory.mktemp("mcp-jira") / "server.log") as server:
        yield server


@pytest.fixture
def over_test_server_http(settings, mcp_jira_http_server) -> McpJiraHttp:
    """The MCP test server over streamable HTTP, back to its first issues."""
    mcp_jira_http_server.reset()
    settings.MCP_JIRA_URL = mcp_jira_http_server.url
    return mcp_jira_http_server


def connect_jira(user, token: str, cloud_id: str):
    connection = ConnectionFactory(user=user, service="jira", access_token=token)
    AccessibleResourceFactory(connection=connection, resource_id=cloud_id)
    return connection


@pytest.fixture
def alice_jira(alice):
    return connect_jira(alice, ALICE_TOKEN, "cloud-alice")


@pytest.fixture
def bob_jira(bob):
    return connect_jira(bob, BOB_TOKEN, "cloud-bob")
