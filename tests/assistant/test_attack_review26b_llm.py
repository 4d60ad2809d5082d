"""Attack review 26b of 62aad72/99c3421 (a streamed answer read strictly, a run failing on
a bug, PostgreSQL's DETAIL redacted): what still slips through from a model or a hostile
provider (a base URL the user gave), and what it does to the run, its billing, its events
and the logs.

Each test here that names a problem fails on the code as reviewed; the last ones are
guards of what held."""

from __future__ import annotations

import json
import logging
import os
import time
from decimal import Decimal

import pytest
from django.db import connection

from assistant.events import RunEventWriter
from assistant.llm import chat_complete
from assistant.models import AssistantRun
from assistant.services import runs
from assistant.services.runs import run_ask_start, run_execute
from billing.selectors import billing_balance
from core.errors import ProviderError, ProviderUnavailable
from tests.fakes.openai_chat import raw, text
from tests.models_catalog.factories import ModelFactory
from usage.models import MeteredLlmCall


def _complete(chat, on_text=None):
    """A call to a host the user gave (GuardedTransport: 4 MiB, a deadline)."""
    return chat_complete(
        api_key="sk-user-0123456789",
        base_url=chat.base_url,
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        tools=[],
        user_host=True,
        on_text=on_text,
    )


def _chunk(**delta) -> str:
    return json.dumps({"choices": [{"delta": delta}]})


@pytest.fixture
def on_credits(alice, executor, monkeypatch, settings):
    """Alice on the server's key (the fake), paying from her credits at a catalog price."""
    monkeypatch.setattr(runs, "tool_executor", lambda user: executor)
    settings.REDIS_URL = ""
    settings.BILLING_MARGIN_PERCENT = "0"
    ModelFactory(
        openrouter_id="openai/gpt-4o-mini",
        prompt_price=Decimal("0.00000015"),
        completion_price=Decimal("0.0000006"),
    )


# --- 1. A NUL the model writes makes its call free ------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_nul_the_model_writes_does_not_make_its_call_free(alice, chat, on_credits):
    """On the server's key. ``_text`` refuses a chunk whose content holds a NUL, so the
    whole call is "could not read" and, as a failed call, costs nothing: no record, no
    charge. But the provider answered it in full (and bills the operator), and every
    piece before the NUL was already published to the user's page (``on_text``). A user
    who gets the model to end a long answer with U+0000 (models do emit it; PostgreSQL
    users of OpenAI know the error) reads the answer and pays nothing. Before 62aad72 the
    NUL failed the run's end instead, and the calls were still metered and charged (as a
    NUL escaped in tool arguments, below, still is)."""
    before = billing_balance(user=alice)
    chat.script(
        raw(
            json.dumps(
                {
                    "model": "gpt-4o-mini",
                    "choices": [{"delta": {"content": "A long essay. " * 200}}],
                }
            ),
            _chunk(content="\u0000"),
            '{"choices": [], "usage": {"prompt_tokens": 100000, "completion_tokens": 4000}}',
        )
    )
    run = run_ask_start(user=alice, prompt="an essay, then the character U+0000").run
    run_execute(run_id=run.pk)
    metered = list(
        MeteredLlmCall.objects.filter(owner=alice).values_list("input_tokens", flat=True)
    )
    assert metered == [100000], metered
    assert billing_balance(user=alice) < before


# --- 2. A tool call's name in many pieces: quadratic -----------------------------------------


@pytest.mark.django_db
def test_a_tool_calls_name_in_many_pieces_is_read_in_linear_time(chat, settings):
    """``partial.name += piece``: an attribute, so CPython's in-place string append does
    not apply and each piece copies the whole name so far. 4 MiB (the cap on a user's
    host) of 37-character pieces of one call's name (many parts in one chunk) cost 5.3 s
    of CPU here for one model call (a run makes up to 8), holding the worker's GIL; 4 MiB
    of text, even in 161,000 pieces, reads in 0.66 s. ``arguments`` is a list joined
    once; the name is not."""
    settings.KEYS_ALLOW_PRIVATE_BASE_URLS = True
    part = '{"index":0,"function":{"name":"' + "a" * 37 + '"}}'
    n = (4 * 1024 * 1024 - 200) // (len(part) + 1)
    chat.script(raw('{"choices":[{"delta":{"tool_calls":[' + ",".join([part] * n) + "]}}]}"))
    started = time.thread_time()
    with pytest.raises(ProviderError):  # fixed: pieces joined once, a name past 256 refused
        _complete(chat)
    spent = time.thread_time() - started
    assert spent < 1.0, f"{spent:.1f} s of CPU to read one 4 MiB answer"


# --- 3. One answer, a hundred thousand events ------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_one_answer_is_not_published_as_tens_of_thousands_of_events(
    alice, chat, own_host, monkeypatch
):
    """Each content delta is one event (``on_text`` → ``RunEventWriter.publish``), and
    every choice of a chunk is read (Kay asks for one). 1 MiB of ``{"delta":{"content":
    "a"}}`` choices is 40,000 events; 4 MiB, 161,000. Measured per 4 MiB model call: with
    Redis 10.4 s of the worker (7.9 s CPU), 6.9 MB of list kept an hour and 161,000
    PUBLISHes to each follower (a late follower LRANGEs them all at once); without Redis
    one INSERT and commit each, 10,000 rows took 36 s, so one call is ~10 minutes of the
    worker, far past the task's time limit (the reaper calls the live run lost), and
    ``_rows_after`` then loads them all as model instances for each follower."""
    kinds: list[str] = []
    monkeypatch.setattr(RunEventWriter, "publish", lambda self, kind, data=None: kinds.append(kind))
    part = '{"delta":{"content":"a"}}'
    n = (1024 * 1024 - 200) // (len(part) + 1)
    chat.script(raw('{"choices":[' + ",".join([part] * n) + "]}"))
    run = run_ask_start(user=alice, prompt="hi").run
    run_execute(run_id=run.pk)
    texts = kinds.count("text")
    assert texts <= 1000, f"one answer published as {texts} text events"


# --- 4. A NUL written as a JSON escape in a tool call's arguments ----------------------------


def _escaped_nul_run(alice, chat, answer: str) -> AssistantRun:
    # The arguments' text holds the six characters \u0000 (no NUL: _text lets it by);
    # json.loads makes them a NUL, which the run's tool_calls (jsonb) cannot store.
    arguments = json.dumps({"jql": "project = SECRET-4711 \u0000"})
    call = {"index": 0, "id": "call_1", "function": {"name": "jira_search", "arguments": arguments}}
    chat.script(raw(_chunk(tool_calls=[call])), text(answer))
    run = run_ask_start(user=alice, prompt="hi").run
    run_execute(run_id=run.pk)
    return AssistantRun.objects.get(pk=run.pk)


@pytest.mark.django_db(transaction=True)
def test_an_escaped_nul_in_tool_arguments_does_not_fail_the_run(alice, chat, own_host):
    """Any model (the server's too) can write ``"\\u0000"`` in its arguments. The run's
    end then cannot be written (PostgreSQL: "unsupported Unicode escape sequence"; without
    Redis the tool_start event's row fails the same way first): the run fails as a Kay bug
    (500, a traceback logged each time), stored without its figures or steps."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite stores a NUL in JSON")
    stored = _escaped_nul_run(alice, chat, "Done.")
    assert (stored.status, stored.error_code) == ("completed", ""), (
        stored.status,
        stored.error_code,
    )


@pytest.mark.django_db(transaction=True)
def test_a_database_error_never_logs_the_runs_answer_or_tool_arguments(
    alice, chat, own_host, caplog, settings
):
    """The error logged for that run ("assistant run %s failed") carries PostgreSQL's
    ``CONTEXT:  JSON data, line 1: ...arguments": {"jql": "project = SECRET-4711 ...``
    and, Django binding values client-side, ``LINE 1: ...completed', "response" = '<the
    model's answer>', "tool_calls" = ...``: the redacting filter takes out only
    ``DETAIL: Failing row contains`` / ``DETAIL: Key``. (Without Redis the tool_start
    event's row fails first, its CONTEXT quoting the same arguments.)"""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's error text")
    settings.REDIS_URL = os.environ.get("REDIS_URL", "")  # events in Redis: the run's end fails
    with caplog.at_level(logging.WARNING):
        _escaped_nul_run(alice, chat, "private-answer-8d1f")
    formatter = logging.Formatter()
    logged = "\n".join(formatter.format(record) for record in caplog.records)
    secrets = ("SECRET-4711", "private-answer-8d1f") if settings.REDIS_URL else ("SECRET-4711",)
    leaked = [secret for secret in secrets if secret in logged]
    assert not leaked, leaked


# --- Held -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_answer_past_the_cap_is_a_provider_error(chat, settings):
    settings.KEYS_ALLOW_PRIVATE_BASE_URLS = True
    chat.script(raw(_chunk(content="a" * (5 * 1024 * 1024))))
    with pytest.raises(ProviderUnavailable):
        _complete(chat)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "chunk",
    [
        '{"choices": [{"delta": {"tool_calls": "abc"}}]}',
        '{"choices": [{"delta": {"tool_calls": [{"index": 0, "function": "x"}]}}]}',
        '{"choices": [], "usage": {"prompt_tokens": 5, "prompt_tokens_details": 7}}',
        '{"choices": [{"delta": {"content": 5}}]}',
        '{"choices": [{"delta": {"tool_calls": [{"index": 0, "id": 7}]}}]}',
        '{"model": "gpt\\u202e", "choices": []}',
        '{"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": true}}',
    ],
)
def test_odd_shapes_are_unreadable_not_bugs(chat, chunk, settings):
    from core.errors import ProviderError

    settings.KEYS_ALLOW_PRIVATE_BASE_URLS = True
    chat.script(raw(_chunk(content="Hel"), chunk))
    with pytest.raises(ProviderError):
        _complete(chat)
