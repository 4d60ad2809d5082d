"""The Assistant page in Chromium, with nothing stubbed inside Kay: the live server, the
fake chat server (real openai SDK, streaming), and the worker service's real MCP client
talking streamable HTTP to the MCP test server (tests/fakes/mcp_jira.py, a subprocess on
127.0.0.1) with alice's own token. A question streams its answer with an expandable tool
step; in ask-first mode a write waits for Approve in the page, which runs it once."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from assistant.mcp_pool import mcp_sessions_close
from assistant.models import InteractiveSession
from assistant.services.conversation import DECLINED
from tests.assistant.mcp.conftest import ALICE_TOKEN, connect_jira
from tests.browser_helpers import login
from tests.fakes.mcp_jira import McpJiraHttp, serving_http
from tests.fakes.openai_chat import text, tool_calls

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SEARCH = {"jql": "project = KAN"}
CREATE = {"project_key": "KAN", "summary": "Fix login bug", "issue_type": "Task"}


@pytest.fixture(scope="module")
def mcp_jira_server(tmp_path_factory):
    with serving_http(tmp_path_factory.mktemp("mcp-jira") / "server.log") as server:
        yield server


@pytest.fixture
def mcp_jira(settings, mcp_jira_server, alice) -> Iterator[McpJiraHttp]:
    """Alice's Jira connection, and Kay's MCP client pointed at the test server (back to
    its first issue, KAN-1) over streamable HTTP."""
    mcp_jira_server.reset()
    settings.MCP_JIRA_ENABLED = True
    settings.MCP_JIRA_URL = mcp_jira_server.url
    settings.MCP_TIMEOUT = 20
    connect_jira(alice, ALICE_TOKEN, "cloud-alice")
    yield mcp_jira_server
    mcp_sessions_close()


@pytest.fixture
def signed_in(page, alice, chat, mcp_jira):
    login(page, alice.email)
    page.goto("/dashboard/assistant/")
    return page


def _ask(page, question: str) -> None:
    page.get_by_label("Your question").fill(question)
    page.get_by_role("button", name="Send").click()


def _text_deltas(stream_body: str) -> list[str]:
    """The ``text`` events of the page's event stream, in order."""
    deltas = []
    for block in stream_body.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if lines.get("event") == "text":
            deltas.append(json.loads(lines["data"])["delta"])
    return deltas


def test_a_question_streams_its_answer_with_an_expandable_tool_step(
    signed_in, chat, mcp_jira, screenshot
):
    page = signed_in
    screenshot(page, "assistant-empty")
    chat.script(
        tool_calls(("jira_search", SEARCH)),
        text("There is **one** open ticket in KAN:\n\n- KAN-1 Existing ticket"),
    )

    _ask(page, "List all tickets in project KAN")

    answer = page.locator(".turn-assistant .answer")
    answer.locator("strong", has_text="one").wait_for()
    assert answer.locator("li").all_inner_texts() == ["KAN-1 Existing ticket"]
    step = page.locator("details.step")
    assert step.locator(".step-name").inner_text() == "jira_search"
    assert re.fullmatch(r"\d+ ms", step.locator(".step-meta").inner_text())
    expect(step.locator("pre").first).to_be_hidden()
    step.locator("summary").click()
    assert '"jql": "project = KAN"' in step.locator("pre").first.inner_text()
    assert "Existing ticket" in step.locator("pre").nth(1).inner_text()
    # The search ran on the MCP server, once, with alice's token; its answer reached the model.
    assert [(c["name"], c["token"]) for c in mcp_jira.calls()] == [("jira_search", ALICE_TOKEN)]
    assert "Existing ticket" in chat.requests[1].messages[-1]["content"]
    screenshot(page, "assistant-answer")


def test_ask_first_mode_streams_then_waits_for_approve_in_the_page_and_creates_once(
    signed_in, chat, mcp_jira, screenshot
):
    page = signed_in
    chat.script(
        text(
            "I will create the ticket in KAN once you approve.",
            tool_calls=(("jira_create_issue", CREATE),),
        ),
        text("Created KAN-2: Fix login bug."),
    )
    page.get_by_role("radio", name="Ask first").check()
    stream_url = page.locator("[data-ask-form]").get_attribute("data-stream-url")

    with page.expect_response(lambda r: r.url.endswith(stream_url or "?")) as streamed:
        _ask(page, "Create a ticket in project KAN with title 'Fix login bug'")
    pending = page.locator(".pending")
    pending.wait_for()

    # The first answer arrived in pieces on the page's event stream, and stays shown.
    deltas = _text_deltas(streamed.value.text())
    assert len(deltas) > 1
    assert "".join(deltas) == "I will create the ticket in KAN once you approve."
    assert page.locator(".turn-assistant .answer").inner_text() == "".join(deltas)
    assert "create issue in Jira" in pending.locator(".pending-what").inner_text()
    expect(pending.get_by_role("button", name="Cancel")).to_be_visible()
    assert mcp_jira.calls("jira_create_issue") == []  # nothing written before approval
    assert list(mcp_jira.state()["issues"]) == ["KAN-1"]
    screenshot(page, "assistant-pending")

    pending.get_by_role("button", name="Approve").click()

    page.locator(".turn-assistant .answer:not(.streaming)", has_text="Created KAN-2").wait_for()
    expect(pending).to_be_hidden()
    assert page.locator("details.step .step-name").all_inner_texts() == ["jira_create_issue"]
    # Exactly that action ran, once, on the MCP server, with alice's token.
    created = mcp_jira.calls("jira_create_issue")
    assert [(c["arguments"], c["token"]) for c in created] == [(CREATE, ALICE_TOKEN)]
    issue = mcp_jira.state()["issues"]["KAN-2"]
    assert (issue["summary"], issue["token"]) == ("Fix login bug", ALICE_TOKEN)
    assert '"key": "KAN-2"' in chat.requests[-1].messages[-1]["content"]
    # Ask first is a conversation on the page: saved, listed, and the address follows it.
    session = InteractiveSession.objects.get(owner__email="alice@example.com")
    listed = page.locator("[data-session-list] li.current a").first
    assert listed.inner_text().startswith("Create a ticket in project KAN")
    assert page.url.endswith(f"/dashboard/assistant/sessions/{session.pk}/")
    screenshot(page, "assistant-approved")


def test_cancel_in_the_page_creates_nothing_and_the_model_says_so(signed_in, chat, mcp_jira):
    page = signed_in
    chat.script(
        tool_calls(("jira_create_issue", CREATE)),
        text("All right, I did not create the ticket."),
    )
    page.get_by_role("radio", name="Ask first").check()
    _ask(page, "Create a ticket in project KAN with title 'Fix login bug'")

    page.locator(".pending").get_by_role("button", name="Cancel").click()

    page.locator(".turn-assistant .answer", has_text="did not create").wait_for()
    assert page.locator(".turn-note").inner_text() == "Cancelled."
    assert mcp_jira.calls("jira_create_issue") == []
    assert list(mcp_jira.state()["issues"]) == ["KAN-1"]
    assert chat.requests[-1].messages[-1]["content"] == DECLINED


def test_a_conversation_is_listed_reopened_and_shown_on_a_phone(signed_in, alice, chat, screenshot):
    page = signed_in
    chat.script(text("Hello Alice, what shall we look at?"))
    page.get_by_role("radio", name="Conversation").check()

    _ask(page, "Hi, I work on KAN")

    page.locator(".answer:not(.streaming)", has_text="Hello Alice").wait_for()
    session = InteractiveSession.objects.get(owner=alice)
    assert page.url.endswith(f"/dashboard/assistant/sessions/{session.pk}/")
    assert page.locator(".session-list .session-title").all_inner_texts() == ["Hi, I work on KAN"]
    # The model was offered the MCP server's tools.
    assert {"jira_search", "jira_create_issue"} <= set(chat.requests[0].tool_names)

    page.goto(f"/dashboard/assistant/sessions/{session.pk}/")
    assert page.locator(".turn-user .bubble").inner_text() == "Hi, I work on KAN"
    assert page.get_by_role("radio", name="Conversation").is_checked()
    screenshot(page, "assistant-session")

    page.set_viewport_size({"width": 390, "height": 844})
    drawer = page.locator("#assistant-sessions")
    expect(drawer).to_be_hidden()
    page.get_by_role("button", name="Conversations").click()
    expect(drawer).to_be_visible()
    page.screenshot(path="artifacts/screenshots/assistant-drawer-phone.png", full_page=True)


def test_the_page_streams_under_the_content_security_policy(
    chromium, live_server, alice, chat, mcp_jira
):
    """The shared ``page`` fixture bypasses the policy: this one obeys it."""
    context = chromium.new_context(base_url=live_server.url)
    context.set_default_timeout(10_000)
    page = context.new_page()
    refused: list[str] = []

    def on_console(message) -> None:
        if message.type == "error":
            refused.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: refused.append(str(error)))
    try:
        login(page, alice.email)
        page.goto("/dashboard/assistant/")
        chat.script(text("All **fine**."))
        page.get_by_role("button", name="List all tickets in project KAN").click()
        assert page.get_by_label("Your question").input_value() == "List all tickets in project KAN"
        page.get_by_label("Your question").press("Enter")
        page.locator(".answer:not(.streaming) strong", has_text="fine").wait_for()
    finally:
        context.close()
    assert refused == []
