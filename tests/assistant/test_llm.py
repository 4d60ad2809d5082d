"""assistant/llm.py against the fake chat server, through the real openai SDK."""

from __future__ import annotations

import socket

import pytest

from assistant.llm import LLMKeyRefused, chat_complete
from core.errors import ProviderError, ProviderUnavailable
from tests.fakes.openai_chat import error, raw, text, tool_calls

pytestmark = pytest.mark.django_db


def _complete(chat, **kwargs):
    return chat_complete(
        api_key="sk-test",
        base_url=chat.base_url,
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        tools=kwargs.pop("tools", []),
        **kwargs,
    )


def test_streamed_text_arrives_in_pieces_and_whole_with_usage(chat):
    chat.script(text("Here are the tickets: KAN-1 and KAN-2.", input_tokens=321, output_tokens=12))
    pieces: list[str] = []
    completion = _complete(chat, on_text=pieces.append)
    assert completion.content == "Here are the tickets: KAN-1 and KAN-2."
    assert len(pieces) > 1 and "".join(pieces) == completion.content
    assert (completion.input_tokens, completion.output_tokens) == (321, 12)
    assert completion.model == "gpt-4o-mini-2024-07-18"
    body = chat.requests[0].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert chat.requests[0].authorization == "Bearer sk-test"


def test_parallel_tool_calls_are_joined_by_index(chat):
    chat.script(
        tool_calls(
            ("jira_search", {"jql": "project = KAN"}),
            ("jira_get_issue", {"issue_key": "KAN-7"}),
        )
    )
    completion = _complete(chat)
    assert [(c.name, c.arguments) for c in completion.tool_calls] == [
        ("jira_search", '{"jql": "project = KAN"}'),
        ("jira_get_issue", '{"issue_key": "KAN-7"}'),
    ]
    assert len({c.id for c in completion.tool_calls}) == 2
    message = completion.as_message()
    assert [c["function"]["name"] for c in message["tool_calls"]] == [
        "jira_search",
        "jira_get_issue",
    ]


def test_cached_tokens_are_read_from_the_usage_chunk(chat):
    chat.script(text("ok", input_tokens=900, output_tokens=3, cached_tokens=512))
    completion = _complete(chat)
    assert (completion.input_tokens, completion.cached_tokens) == (900, 512)


def test_chunks_are_read_as_a_provider_may_send_them(chat):
    """Chunks come back as plain JSON (no SDK models are built): fields a provider leaves
    out or sends as null are read as absent, a call's pieces join by index."""
    chat.script(
        raw(
            '{"choices": [{"index": 0, "delta": {"role": "assistant", "content": null}}]}',
            '{"model": "m-1", "choices": [{"delta": {"content": "Hi"}}], "usage": null}',
            '{"choices": [{"delta": {"tool_calls": [{"index": 1, "id": "c1",'
            ' "function": {"name": "jira_", "arguments": "{\\"a\\""}}]}}]}',
            '{"choices": [{"delta": {"tool_calls": [{"index": 1,'
            ' "function": {"name": "search", "arguments": ": 1}"}}]}}]}',
            '{"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2,'
            ' "prompt_tokens_details": null}}',
        )
    )
    completion = _complete(chat)
    assert (completion.content, completion.model) == ("Hi", "m-1")
    assert [(c.id, c.name, c.arguments) for c in completion.tool_calls] == [
        ("c1", "jira_search", '{"a": 1}')
    ]
    assert (completion.input_tokens, completion.output_tokens, completion.cached_tokens) == (
        7,
        2,
        0,
    )


@pytest.mark.parametrize(
    "chunk",
    [
        '"just a string"',
        "[1, 2]",
        '{"choices": {"delta": "not a list"}}',
        '{"choices": [{"delta": {"content": 42}}]}',
        '{"model": 5, "choices": []}',
        '{"choices": [{"delta": {"tool_calls": [{"index": 0, "id": 7}]}}]}',
        '{"choices": [{"delta": {"tool_calls": [{"index": "first"}]}}]}',
        '{"choices": [], "usage": {"prompt_tokens": "many"}}',
        "{not json",
    ],
)
def test_a_chunk_kay_cannot_read_is_a_provider_error(chat, chunk):
    chat.script(raw('{"choices": [{"delta": {"content": "Hel"}}]}', chunk))
    with pytest.raises(ProviderError) as caught:
        _complete(chat)
    assert not isinstance(caught.value, ProviderUnavailable)
    assert caught.value.message == "The model provider sent an answer Kay could not read."


def test_an_error_event_mid_stream_is_a_provider_error_without_its_text(chat):
    chat.script(raw('{"error": {"message": "fake vendor error text", "type": "server_error"}}'))
    with pytest.raises(ProviderError) as caught:
        _complete(chat)
    assert "fake vendor error text" not in caught.value.message


def test_tools_and_settings_are_sent(chat, settings):
    settings.OPENAI_MAX_TOKENS = 1234
    settings.OPENAI_TEMPERATURE = 0.2
    chat.script(text("ok"))
    tool = {"type": "function", "function": {"name": "jira_search", "parameters": {}}}
    _complete(chat, tools=[tool])
    body = chat.requests[0].body
    assert body["tools"] == [tool] and body["parallel_tool_calls"] is True
    assert (body["max_tokens"], body["temperature"], body["model"]) == (1234, 0.2, "gpt-4o-mini")


def test_a_refused_key_says_so_without_the_vendors_text(chat):
    chat.script(error(401))
    with pytest.raises(LLMKeyRefused) as caught:
        _complete(chat)
    assert "key was refused" in caught.value.message
    assert "fake vendor error text" not in caught.value.message


@pytest.mark.parametrize("status", [500, 503, 429])
def test_server_errors_and_rate_limits_are_unavailable(chat, status):
    chat.script(error(status, headers={"Retry-After": "7"}))
    with pytest.raises(ProviderUnavailable) as caught:
        _complete(chat)
    assert "fake vendor error text" not in caught.value.message
    if status == 429:
        assert caught.value.headers == {"Retry-After": "7"}


def test_a_bad_request_is_a_provider_error(chat):
    chat.script(error(400))
    with pytest.raises(ProviderError) as caught:
        _complete(chat)
    assert not isinstance(caught.value, ProviderUnavailable)
    assert "HTTP 400" in caught.value.message


def test_an_unreachable_server_is_unavailable(chat):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    with pytest.raises(ProviderUnavailable):
        chat_complete(
            api_key="sk-test",
            base_url=f"http://127.0.0.1:{port}/v1",
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            tools=[],
        )


def test_a_model_that_does_not_answer_in_time_is_unavailable(chat, settings):
    settings.OPENAI_TIMEOUT = 0.2
    chat.script(text("too late", delay=1))
    with pytest.raises(ProviderUnavailable) as caught:
        _complete(chat)
    assert "did not answer in time" in caught.value.message
