"""The Assistant page in Chromium: the live server, the fake chat server (real openai SDK,
streaming) and the local tool layer. A question streams its answer with an expandable
tool step; in ask-first mode a write waits for Approve, which runs it once."""

from __future__ import annotations

import json

import pytest

from assistant.models import InteractiveSession
from assistant.services import runs
from tests.assistant.chat import LocalResult
from tests.browser_helpers import login
from tests.fakes.openai_chat import text, tool_calls

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SEARCH = {"jql": "project = KAN"}
ISSUES = json.dumps({"issues": [{"key": "KAN-1"}, {"key": "KAN-2"}]})
CREATE = {"project_key": "KAN", "summary": "Fix login bug", "issue_type": "Task"}


@pytest.fixture
def signed_in(page, alice, chat, executor, monkeypatch):
    # The page's stream and /ask/confirm (which the Approve button calls) both run in
    # the worker's service, through the local tool layer instead of MCP.
    monkeypatch.setattr(runs, "tool_executor", lambda user: executor)
    login(page, alice.email)
    page.goto("/dashboard/assistant/")
    return page


def _ask(page, question: str) -> None:
    page.get_by_label("Your question").fill(question)
    page.get_by_role("button", name="Send").click()


def test_a_question_streams_its_answer_with_an_expandable_tool_step(
    signed_in, chat, executor, screenshot
):
    page = signed_in
    screenshot(page, "assistant-empty")
    executor.answers["jira_search"] = lambda args: LocalResult(ISSUES, duration_ms=42)
    chat.script(
        tool_calls(("jira_search", SEARCH)),
        text("There are **two** open tickets in KAN:\n\n- KAN-1 Login fails\n- KAN-2 Slow search"),
    )

    _ask(page, "List all tickets in project KAN")

    answer = page.locator(".turn-assistant .answer")
    answer.locator("strong", has_text="two").wait_for()
    assert answer.locator("li").all_inner_texts() == ["KAN-1 Login fails", "KAN-2 Slow search"]
    step = page.locator("details.step")
    assert step.locator(".step-name").inner_text() == "jira_search"
    assert step.locator(".step-meta").inner_text() == "42 ms"
    assert not step.locator("pre").first.is_visible()
    step.locator("summary").click()
    assert '"jql": "project = KAN"' in step.locator("pre").first.inner_text()
    assert "KAN-2" in step.locator("pre").nth(1).inner_text()
    assert executor.calls == [("jira_search", SEARCH)]
    screenshot(page, "assistant-answer")


def test_ask_first_mode_waits_for_approve_then_finishes(signed_in, chat, executor, screenshot):
    page = signed_in
    executor.answers["jira_create_issue"] = lambda args: LocalResult('{"key": "KAN-3"}')
    chat.script(
        tool_calls(("jira_create_issue", CREATE)),
        text("Created KAN-3: Fix login bug."),
    )
    page.get_by_role("radio", name="Ask first").check()

    _ask(page, "Create a ticket in project KAN with title 'Fix login bug'")

    pending = page.locator(".pending")
    pending.wait_for()
    assert "create issue in Jira" in pending.locator(".pending-what").inner_text()
    assert executor.calls == []  # nothing written before approval
    assert pending.get_by_role("button", name="Cancel").is_visible()
    screenshot(page, "assistant-pending")

    pending.get_by_role("button", name="Approve").click()

    page.locator(".turn-assistant .answer:not(.streaming)", has_text="Created KAN-3").wait_for()
    assert not pending.is_visible()
    assert executor.calls == [("jira_create_issue", CREATE)]
    assert page.locator("details.step .step-name").all_inner_texts() == ["jira_create_issue"]


def test_a_conversation_is_listed_reopened_and_shown_on_a_phone(
    signed_in, alice, chat, executor, screenshot
):
    page = signed_in
    chat.script(text("Hello Alice, what shall we look at?"))
    page.get_by_role("radio", name="Conversation").check()

    _ask(page, "Hi, I work on KAN")

    page.locator(".answer:not(.streaming)", has_text="Hello Alice").wait_for()
    session = InteractiveSession.objects.get(owner=alice)
    assert page.url.endswith(f"/dashboard/assistant/sessions/{session.pk}/")
    assert page.locator(".session-list .session-title").all_inner_texts() == ["Hi, I work on KAN"]

    page.goto(f"/dashboard/assistant/sessions/{session.pk}/")
    assert page.locator(".turn-user .bubble").inner_text() == "Hi, I work on KAN"
    assert page.get_by_role("radio", name="Conversation").is_checked()
    screenshot(page, "assistant-session")

    page.set_viewport_size({"width": 390, "height": 844})
    drawer = page.locator("#assistant-sessions")
    assert not drawer.is_visible()
    page.get_by_role("button", name="Conversations").click()
    assert drawer.is_visible()
    page.screenshot(path="artifacts/screenshots/assistant-drawer-phone.png", full_page=True)


def test_the_page_streams_under_the_content_security_policy(
    chromium, live_server, alice, chat, executor, monkeypatch
):
    """The shared ``page`` fixture bypasses the policy: this one obeys it."""
    monkeypatch.setattr(runs, "tool_executor", lambda user: executor)
    context = chromium.new_context(base_url=live_server.url)
    context.set_default_timeout(10_000)
    page = context.new_page()
    refused: list[str] = []
    page.on("console", lambda message: message.type == "error" and refused.append(message.text))
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
