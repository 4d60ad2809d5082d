"""The Assistant page: conversations (owner only), and the stream that drives the same
service as /ask (login, CSRF, events for a scripted conversation, errors with links)."""

from __future__ import annotations

import json

import pytest
from django.core.signals import request_finished
from django.test import Client

from assistant.models import AssistantRun, InteractiveSession, PendingConfirmation
from assistant.services import runs
from tests.assistant.chat import LocalResult
from tests.assistant.closing import connections_kept_on_close
from tests.fakes.openai_chat import text, tool_calls

PAGE = "/dashboard/assistant/"
STREAM = "/dashboard/assistant/stream"
SEARCH = {"jql": "project = KAN"}
ISSUES = json.dumps({"issues": [{"key": "KAN-1"}, {"key": "KAN-2"}]})
HISTORY = [
    {"role": "user", "content": "List all tickets in project KAN"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "jira_search", "arguments": json.dumps(SEARCH)},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": ISSUES},
    {"role": "assistant", "content": "Two tickets: **KAN-1** and KAN-2."},
]


def _session(owner, title="Sprint review", messages=HISTORY):
    return InteractiveSession.objects.create(owner=owner, title=title, messages=messages)


def _events(response) -> list[tuple[str, dict]]:
    """The SSE stream as (event, data) pairs."""
    raw = b"".join(response.streaming_content).decode()
    events = []
    for block in raw.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def _stream(client, **body):
    return client.post(STREAM, json.dumps(body), content_type="application/json")


@pytest.fixture
def local_tools(monkeypatch, executor):
    """The page's runs use the local tool layer instead of MCP (as A2's tests do)."""
    monkeypatch.setattr(runs, "tool_executor", lambda user: executor)
    return executor


# --- The page ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_empty_page_explains_the_assistant_with_example_prompts(alice_browser):
    html = alice_browser.get(PAGE).content.decode()
    assert "Ask Kay about your Jira work" in html
    assert "List all tickets in project KAN" in html
    for mode in ("One-shot", "Conversation", "Ask first"):
        assert mode in html
    assert "Conversations you start in" in html  # no sessions yet: says how they appear


@pytest.mark.django_db
def test_the_sidebar_lists_only_the_owners_sessions(alice_browser, alice, bob):
    _session(alice, "Alice's sprint")
    _session(bob, "Bob's secret plan")
    html = alice_browser.get(PAGE).content.decode()
    assert "Alice&#x27;s sprint" in html
    assert "secret plan" not in html


@pytest.mark.django_db
def test_the_page_queries_do_not_grow_with_sessions(
    alice_browser, alice, django_assert_max_num_queries
):
    _session(alice)
    with django_assert_max_num_queries(12) as one:
        alice_browser.get(PAGE)
    for n in range(50):
        _session(alice, f"Session {n}")
    with django_assert_max_num_queries(len(one.captured_queries)):
        alice_browser.get(PAGE)


@pytest.mark.django_db
def test_reopening_a_session_shows_its_history_with_tool_steps(alice_browser, alice):
    session = _session(alice)
    html = alice_browser.get(f"/dashboard/assistant/sessions/{session.pk}/").content.decode()
    assert "List all tickets in project KAN" in html
    assert "<strong>KAN-1</strong>" in html  # the answer's Markdown, rendered
    assert '<span class="step-name">jira_search</span>' in html
    assert "project = KAN" in html and "KAN-2" in html
    assert f'data-session-id="{session.pk}"' in html


@pytest.mark.django_db
def test_model_markup_in_a_stored_answer_is_shown_as_text(alice_browser, alice):
    session = _session(
        alice,
        messages=[
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "<script>alert(1)</script> [x](javascript:alert(1))"},
        ],
    )
    html = alice_browser.get(f"/dashboard/assistant/sessions/{session.pk}/").content.decode()
    assert "<script>alert(1)" not in html and "&lt;script&gt;" in html
    assert 'href="javascript' not in html  # left as plain text, never a link


@pytest.mark.django_db
def test_bob_cannot_open_alices_session(bob_browser, alice):
    session = _session(alice)
    assert bob_browser.get(f"/dashboard/assistant/sessions/{session.pk}/").status_code == 404


@pytest.mark.django_db
def test_bob_cannot_delete_alices_session(bob_browser, alice):
    session = _session(alice)
    url = f"/dashboard/assistant/sessions/{session.pk}/delete/"
    assert bob_browser.get(url).status_code == 404
    assert bob_browser.post(url).status_code == 404
    assert InteractiveSession.objects.filter(pk=session.pk).exists()


@pytest.mark.django_db
def test_deleting_a_session_asks_first_then_deletes_it(alice_browser, alice):
    session = _session(alice)
    url = f"/dashboard/assistant/sessions/{session.pk}/delete/"
    page = alice_browser.get(url).content.decode()
    assert "Delete “Sprint review”?" in page
    assert InteractiveSession.objects.filter(pk=session.pk).exists()
    response = alice_browser.post(url)
    assert response.status_code == 302 and response["Location"] == PAGE
    assert not InteractiveSession.objects.filter(pk=session.pk).exists()


# --- The stream -------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_stream_requires_login(client, chat, local_tools):
    response = _stream(client, prompt="hi", mode="one_shot")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert not AssistantRun.objects.exists() and chat.requests == []


@pytest.mark.django_db
def test_the_stream_requires_the_csrf_token(alice, chat, local_tools):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    assert _stream(browser, prompt="hi", mode="one_shot").status_code == 403
    assert not AssistantRun.objects.exists() and chat.requests == []


@pytest.mark.django_db
def test_the_stream_refuses_a_get(alice_browser):
    assert alice_browser.get(STREAM).status_code == 405


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": "", "mode": "one_shot"}, "prompt"),
        ({"mode": "one_shot"}, "prompt"),
        ({"prompt": "hi", "mode": "loud"}, "mode"),
        ({"prompt": "hi", "mode": "interactive", "session_id": "x"}, "session_id"),
    ],
)
def test_the_stream_refuses_bad_input_with_the_field(alice_browser, chat, local_tools, body, field):
    response = _stream(alice_browser, **body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error" and field in error["fields"]
    assert chat.requests == []


@pytest.mark.django_db
def test_the_stream_refuses_a_body_that_is_not_json(alice_browser, chat):
    response = alice_browser.post(STREAM, "{nope", content_type="application/json")
    assert response.status_code == 400 and chat.requests == []


@pytest.mark.django_db(transaction=True)
def test_the_stream_sends_text_tool_steps_and_the_answer(alice_browser, chat, local_tools):
    local_tools.answers["jira_search"] = lambda args: LocalResult(ISSUES, duration_ms=42)
    chat.script(tool_calls(("jira_search", SEARCH)), text("Two tickets: **KAN-1** and KAN-2."))

    response = _stream(alice_browser, prompt="List all tickets in project KAN", mode="one_shot")

    assert response["Content-Type"] == "text/event-stream"
    events = _events(response)
    names = [name for name, _ in events]
    assert names[0] == "start" and names[-1] == "done"
    assert names.index("tool_start") < names.index("tool_end") < names.index("text")
    start = dict(events)["tool_start"]
    assert start == {"name": "jira_search", "arguments": SEARCH}
    end = dict(events)["tool_end"]
    assert end["result"] == ISSUES and end["durationMs"] == 42 and end["error"] is None
    streamed = "".join(data["delta"] for name, data in events if name == "text")
    assert streamed == "Two tickets: **KAN-1** and KAN-2."
    done = events[-1][1]
    assert done["status"] == "completed" and done["data"]["response"] == streamed
    assert done["html"] == "<p>Two tickets: <strong>KAN-1</strong> and KAN-2.</p>\n"
    assert [call["name"] for call in done["data"]["toolCalls"]] == ["jira_search"]
    assert "session" not in done  # one-shot: nothing remembered
    assert AssistantRun.objects.get().status == "completed"


@pytest.mark.django_db(transaction=True)
def test_the_answers_html_is_sanitised(alice_browser, chat, local_tools):
    chat.script(text("<img src=x onerror=alert(1)> [x](javascript:alert(1)) <b>b</b>"))
    done = _events(_stream(alice_browser, prompt="hi", mode="one_shot"))[-1][1]
    assert "<img" not in done["html"] and 'href="javascript' not in done["html"]
    assert "&lt;b&gt;" in done["html"]


@pytest.mark.django_db(transaction=True)
def test_an_interactive_stream_saves_and_continues_the_session(
    alice_browser, alice, chat, local_tools
):
    chat.script(text("Hello Alice."), text("You said hi."))
    done = _events(_stream(alice_browser, prompt="hi", mode="interactive"))[-1][1]
    session = InteractiveSession.objects.get(owner=alice)
    assert done["session"]["id"] == session.pk == done["session_id"]
    assert done["session"]["url"] == f"/dashboard/assistant/sessions/{session.pk}/"

    _events(
        _stream(alice_browser, prompt="what did I say?", mode="interactive", session_id=session.pk)
    )

    second = chat.requests[-1].messages
    assert [m["content"] for m in second if m["role"] == "user"] == ["hi", "what did I say?"]
    assert InteractiveSession.objects.count() == 1


@pytest.mark.django_db
def test_bob_cannot_continue_alices_session_through_the_stream(
    bob_browser, alice, chat, local_tools
):
    session = _session(alice)
    response = _stream(bob_browser, prompt="hi", mode="interactive", session_id=session.pk)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert chat.requests == [] and not AssistantRun.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_confirm_mode_stops_before_a_write_with_the_action(alice_browser, chat, local_tools):
    create = {"project_key": "KAN", "summary": "Fix login bug", "issue_type": "Task"}
    chat.script(tool_calls(("jira_create_issue", create)))

    events = _events(_stream(alice_browser, prompt="Create a ticket in KAN", mode="confirm"))

    done = events[-1][1]
    assert done["status"] == "pending_confirmation"
    assert done["data"]["action"] == {"tool": "jira_create_issue", "arguments": create}
    assert done["confirmation_token"].startswith("confirm_")
    assert "create issue in Jira" in done["message"]
    assert local_tools.calls == []  # the write did not run
    assert "tool_start" not in [name for name, _ in events]
    assert PendingConfirmation.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_pages_token_survives_reads_of_the_run_and_approves_once(
    alice_browser, chat, local_tools
):
    create = {"project_key": "KAN", "summary": "Fix login bug", "issue_type": "Task"}
    chat.script(tool_calls(("jira_create_issue", create)))
    done = _events(_stream(alice_browser, prompt="Create a ticket in KAN", mode="confirm"))[-1][1]
    # A cross-site navigation to the run (cookies sent) or a poll: it changes nothing.
    read = alice_browser.get(f"/ask/runs/{done['data']['runId']}")
    assert read.status_code == 200 and "confirmation_token" not in read.json()

    chat.script(text("Created KAN-2."))
    approved = alice_browser.post(
        "/ask/confirm",
        json.dumps({"confirmation_token": done["confirmation_token"], "approved": True}),
        content_type="application/json",
    )
    assert approved.status_code == 200, approved.content
    assert local_tools.calls == [("jira_create_issue", create)]


@pytest.mark.django_db
def test_the_stream_is_refused_with_429_past_8_open_streams(alice, alice_browser, chat):
    from assistant.events import stream_slot_take

    slots = [stream_slot_take(user_id=alice.pk) for _ in range(8)]  # e.g. 8 open tabs
    response = _stream(alice_browser, prompt="hi", mode="one_shot")
    assert response.status_code == 429 and response["Retry-After"]
    assert response.json()["error"]["code"] == "rate_limited"
    assert not AssistantRun.objects.exists() and chat.requests == []
    slots[0].release()
    allowed = _stream(alice_browser, prompt="hi", mode="one_shot")
    assert allowed.status_code == 200
    # Not read (nothing was asked): closed as the test client closes what it read.
    with connections_kept_on_close():
        allowed.close()  # its slot is given back
    for slot in slots[1:]:
        slot.release()


def test_a_stream_gives_its_slot_back_before_the_request_finishes():
    """Closing fires request_finished, which gives the thread's database connections
    back: the slot's count (in the database without Redis) is given back before."""
    from assistant.events import SlotStreamingResponse, StreamSlot

    seen = []

    class Slot(StreamSlot):
        def release(self) -> None:
            seen.append("released")

    def finished(**kwargs):
        seen.append("request_finished")

    request_finished.connect(finished)
    try:
        with connections_kept_on_close():  # no database in this test
            SlotStreamingResponse(iter([b""]), slot=Slot("k")).close()
    finally:
        request_finished.disconnect(finished)
    assert seen == ["released", "request_finished"]


@pytest.mark.django_db(transaction=True)
def test_no_key_of_ones_own_and_no_server_key_links_to_keys_only(
    alice_browser, chat, local_tools, settings
):
    settings.OPENAI_API_KEY = ""
    events = _events(_stream(alice_browser, prompt="hi", mode="one_shot"))
    name, error = events[-1]
    assert name == "error" and error["code"] == "no_llm_key" and error["status"] == 402
    # Credits pay only for the server's key, which this server does not have.
    assert [link["url"] for link in error["links"]] == ["/dashboard/keys/new/"]
    assert chat.requests == []


@pytest.mark.django_db(transaction=True)
def test_no_jira_connection_links_to_connections(alice_browser, chat, monkeypatch):
    from core.errors import Conflict

    class NotConnected:
        def tools(self):
            raise Conflict("Connect Jira first: kay connect jira", code="jira_not_connected")

    monkeypatch.setattr(runs, "tool_executor", lambda user: NotConnected())
    name, error = _events(_stream(alice_browser, prompt="hi", mode="one_shot"))[-1]
    assert name == "error" and error["code"] == "jira_not_connected"
    assert error["links"] == [{"label": "Connect Jira", "url": "/dashboard/connections/"}]
    assert chat.requests == []


@pytest.mark.django_db(transaction=True)
def test_a_provider_failure_is_reported_in_the_stream(alice_browser, chat, local_tools):
    from tests.fakes.openai_chat import error as failure

    chat.script(failure(503))
    name, error = _events(_stream(alice_browser, prompt="hi", mode="one_shot"))[-1]
    assert name == "error" and error["code"] == "provider_unavailable"
    assert "try again" in error["message"]


@pytest.mark.django_db(transaction=True)
def test_under_asgi_the_stream_is_sent_event_by_event(alice, chat, local_tools):
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    chat.script(text("Hello from ASGI."))
    browser = AsyncClient()
    browser.force_login(alice)

    async def ask():
        response = await browser.post(
            STREAM, {"prompt": "hi", "mode": "one_shot"}, content_type="application/json"
        )
        assert response.is_async  # not read to its end before the first byte is sent
        return [chunk async for chunk in response.streaming_content]

    chunks = async_to_sync(ask)()
    assert chunks[0].startswith(b"event: start") and b"event: done" in chunks[-1]
    assert b"Hello from ASGI." in b"".join(chunks)
    assert AssistantRun.objects.get().status == "completed"
