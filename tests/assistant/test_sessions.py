"""Interactive mode keeps the conversation; users list, read, rename and delete theirs."""

from __future__ import annotations

import pytest

from assistant.models import AssistantRun, InteractiveSession
from assistant.services.ask import ask_run
from assistant.services.history import tokens_estimate
from core.errors import NotFound
from models_catalog.models import CatalogPreference
from tests.fakes.openai_chat import text, tool_calls
from tests.models_catalog.factories import ModelFactory

pytestmark = pytest.mark.django_db


def test_the_history_is_used_on_the_next_turn(alice, chat, executor):
    chat.script(tool_calls(("jira_get_issue", {"issue_key": "KAN-7"})), text("KAN-7 is open."))
    first = ask_run(user=alice, prompt="What is KAN-7?", executor=executor, interactive=True)
    assert first.session_id is not None
    session = InteractiveSession.objects.get(pk=first.session_id)
    assert session.owner == alice and session.title == "What is KAN-7?"
    assert [m["role"] for m in session.messages] == ["user", "assistant", "tool", "assistant"]

    chat.script(text("It was created by Alice."))
    second = ask_run(
        user=alice,
        prompt="Who created it?",
        executor=executor,
        interactive=True,
        session_id=first.session_id,
    )
    assert second.session_id == first.session_id
    sent = chat.requests[-1].messages
    assert "ongoing conversation" in sent[0]["content"]  # interactive.md
    assert [m.get("content") for m in sent[1:2]] == ["What is KAN-7?"]
    assert sent[-1] == {"role": "user", "content": "Who created it?"}
    assert len(InteractiveSession.objects.get().messages) == 6
    assert AssistantRun.objects.filter(session=session).count() == 2


def test_one_shot_stores_no_session(alice, chat, executor):
    chat.script(text("Hi"))
    outcome = ask_run(user=alice, prompt="hi", executor=executor)
    assert outcome.session_id is None and not InteractiveSession.objects.exists()
    assert "single request" in chat.requests[0].messages[0]["content"]  # system.md


def test_bob_cannot_continue_alices_session(alice, bob, chat, executor):
    chat.script(text("Hi"))
    first = ask_run(user=alice, prompt="hi", executor=executor, interactive=True)
    with pytest.raises(NotFound):
        ask_run(
            user=bob, prompt="what did she say?", executor=executor, session_id=first.session_id
        )
    assert len(chat.requests) == 1  # bob's question never reached the model


def test_a_long_history_is_trimmed_oldest_turns_first(alice, chat, executor, settings):
    old = [
        {"role": "user", "content": "old question " + "x" * 4000},
        {"role": "assistant", "content": None, "tool_calls": [_call("c1")]},
        {"role": "tool", "tool_call_id": "c1", "content": "y" * 4000},
        {"role": "assistant", "content": "old answer"},
        {"role": "user", "content": "recent question"},
        {"role": "assistant", "content": "recent answer"},
    ]
    session = InteractiveSession.objects.create(owner=alice, title="long", messages=old)
    settings.ASSISTANT_HISTORY_TOKENS = 500
    chat.script(text("ok"))
    ask_run(user=alice, prompt="next", executor=executor, session_id=session.pk)
    sent = chat.requests[0].messages[1:]
    assert [m.get("content") for m in sent] == ["recent question", "recent answer", "next"]
    # The stored conversation keeps everything; only what is sent is trimmed.
    assert len(InteractiveSession.objects.get().messages) == 8


def _call(call_id):
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": "jira_search", "arguments": "{}"},
    }


def test_a_small_context_window_trims_further(alice, chat, executor, settings):
    # The preferred model's context window (from the catalog) must hold the prompt, the
    # tools and the answer besides the history.
    settings.OPENAI_MAX_TOKENS = 500
    chat.script(text("ok"))
    ask_run(user=alice, prompt="warm up", executor=executor, interactive=True)
    body = chat.requests[0].body
    fixed = tokens_estimate([body["messages"][0], *body["tools"]]) + 500
    model = ModelFactory(openrouter_id="openai/gpt-4o-mini", context_length=fixed + 300)
    CatalogPreference.objects.create(user=alice, preferred_model=model)
    old = [
        {"role": "user", "content": "old question " + "x" * 2000},
        {"role": "assistant", "content": "old answer"},
        {"role": "user", "content": "recent question"},
        {"role": "assistant", "content": "recent answer"},
    ]
    session = InteractiveSession.objects.create(owner=alice, title="long", messages=old)
    chat.script(text("ok"))
    ask_run(user=alice, prompt="next", executor=executor, session_id=session.pk)
    sent = chat.requests[1].messages[1:]
    assert [m["content"] for m in sent] == ["recent question", "recent answer", "next"]
