"""A run's model calls share one client and, against a server that keeps connections as
OpenAI does (HTTP/1.1, streams chunked), one connection: the SDK stops reading a stream at
``[DONE]``, and ``assistant.llm`` reads the body's end so the connection can be kept."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from assistant.llm import ChatClient, chat_complete
from assistant.services import runs
from assistant.services.runs import run_ask_start, run_execute
from tests.assistant.chat import SERVER_KEY, chat_serving
from tests.fakes.openai_chat import FakeOpenAIChat, error, text, tool_calls
from tests.keys.factories import ApiKeyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def kept(settings) -> Iterator[FakeOpenAIChat]:
    with chat_serving(settings, keep_alive=True) as fake:
        yield fake


def _complete(client: ChatClient) -> str:
    messages = [{"role": "user", "content": "hi"}]
    return client.complete(model="gpt-4o-mini", messages=messages, tools=[]).content


def test_a_clients_calls_share_one_connection(kept):
    kept.script(text("One."), text("Two."), text("Three."))
    client = ChatClient(api_key=SERVER_KEY, base_url=kept.base_url)
    try:
        assert [_complete(client) for _ in range(3)] == ["One.", "Two.", "Three."]
    finally:
        client.close()
    assert len(kept.connections) == 1


def test_a_call_refused_midway_does_not_keep_the_client_from_the_next(kept):
    kept.script(error(503), text("Back."))
    client = ChatClient(api_key=SERVER_KEY, base_url=kept.base_url)
    try:
        with pytest.raises(Exception, match="failed"):
            _complete(client)
        assert _complete(client) == "Back."
    finally:
        client.close()


def _two_separate_calls(kept: FakeOpenAIChat, *, user_host: bool = False) -> None:
    kept.script(text("One."), text("Two."))
    for _ in range(2):
        chat_complete(
            api_key=SERVER_KEY,
            base_url=kept.base_url,
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            tools=[],
            user_host=user_host,
        )


def test_separate_calls_and_runs_share_the_processes_kept_connection(kept):
    """A provider at its configured URL is reached over the process's kept connections: a
    run's first call needs no new connection (a TLS handshake against a real provider)."""
    _two_separate_calls(kept)
    assert len(kept.connections) == 1
    assert [request.authorization for request in kept.requests] == [f"Bearer {SERVER_KEY}"] * 2


def test_each_call_carries_its_own_key_over_the_shared_connection(kept):
    kept.script(text("One."), text("Two."))
    for key in ("sk-alice-key", "sk-bob-key"):
        client = ChatClient(api_key=key, base_url=kept.base_url)
        try:
            _complete(client)
        finally:
            client.close()
    assert len(kept.connections) == 1
    assert [r.authorization for r in kept.requests] == [
        "Bearer sk-alice-key",
        "Bearer sk-bob-key",
    ]


def test_a_cookie_a_provider_sets_never_goes_out_with_the_next_users_call(kept):
    kept.script(
        text("One.", headers={"Set-Cookie": "__cf_bm=alice-visit; Path=/; HttpOnly"}),
        text("Two."),
    )
    for key in ("sk-alice-key", "sk-bob-key"):
        client = ChatClient(api_key=key, base_url=kept.base_url)
        try:
            _complete(client)
        finally:
            client.close()
    assert [r.cookie for r in kept.requests] == ["", ""]


def test_a_host_the_user_gave_gets_a_guarded_connection_of_its_own(kept, settings):
    settings.KEYS_ALLOW_PRIVATE_BASE_URLS = True  # the fake listens on 127.0.0.1
    _two_separate_calls(kept, user_host=True)
    assert len(kept.connections) == 2


@pytest.mark.parametrize("own_key", [False, True], ids=["server key", "own key"])
def test_a_runs_two_model_calls_share_one_connection(alice, kept, executor, monkeypatch, own_key):
    monkeypatch.setattr(runs, "tool_executor", lambda user: executor)
    if own_key:
        ApiKeyFactory(owner=alice, provider="openai")
    kept.script(tool_calls(("jira_search", {"jql": "project = KAN"})), text("KAN has one."))
    run = run_ask_start(user=alice, prompt="List KAN").run
    assert run_execute(run_id=run.pk) == "completed"
    run.refresh_from_db()
    assert run.llm_calls == 2 and (run.api_key_id is not None) == own_key
    assert len(kept.connections) == 1


def test_a_connection_reset_after_done_still_answers_and_the_next_call_reconnects(kept):
    """Reading the body's end after ``[DONE]`` is a courtesy: a server that drops the
    connection there must not turn a whole answer into an error."""
    kept.reset_after_done = True
    kept.script(text("first"), text("second"))
    client = ChatClient(api_key=SERVER_KEY, base_url=kept.base_url)
    try:
        assert _complete(client) == "first"
        assert _complete(client) == "second"
    finally:
        client.close()
    assert len(kept.connections) == 2
