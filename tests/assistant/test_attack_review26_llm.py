"""Attack review 26 of df4d129 (streamed chunks read as plain JSON): the figures and the
shape of an answer from a provider that is hostile (a base URL the user gave) or buggy,
and what they do once past ``_read_stream``: the run, its metering, the reaper.

Each test here that names a problem fails on the code as reviewed."""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from assistant.llm import chat_complete
from assistant.models import AssistantRun
from assistant.services.reaper import runs_reap
from assistant.services.runs import run_ask_start, run_execute
from core.errors import ProviderError
from tests.fakes.openai_chat import raw
from tests.keys.factories import ApiKeyFactory
from usage.models import MeteredLlmCall

UNREADABLE = "The model provider sent an answer Kay could not read."


def _complete(chat):
    return chat_complete(
        api_key="sk-user-0123456789",
        base_url=chat.base_url,
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        tools=[],
    )


def _answer_with_usage(usage: str, *, model: str = "gpt-4o-mini") -> tuple[str, ...]:
    return (
        '{"model": "' + model + '", "choices": [{"delta": {"content": "Fine."}}]}',
        '{"choices": [], "usage": ' + usage + "}",
    )


# --- 1. Non-finite numbers escape as OverflowError, not as "could not read" --------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "chunk",
    [
        '{"choices": [], "usage": {"prompt_tokens": Infinity}}',
        '{"choices": [], "usage": {"completion_tokens": -Infinity}}',
        '{"choices": [], "usage": {"prompt_tokens": 5,'
        ' "prompt_tokens_details": {"cached_tokens": Infinity}}}',
        '{"choices": [{"delta": {"tool_calls": [{"index": Infinity,'
        ' "function": {"name": "jira_search"}}]}}]}',
        # Added with the fixes: figures no answer can have.
        '{"choices": [{"delta": {"tool_calls": [{"index": true}]}}]}',
        '{"choices": [{"delta": {"tool_calls": [{"index": 2147483649}]}}]}',
        '{"choices": [], "usage": {"prompt_tokens": 10000001}}',
        '{"choices": [], "usage": {"prompt_tokens": 1.5}}',
    ],
    ids=[
        "prompt inf",
        "completion -inf",
        "cached inf",
        "index inf",
        "bool index",
        "index past 2**31",
        "10M+1",
        "float",
    ],
)
def test_a_non_finite_number_in_a_chunk_is_a_provider_error(chat, chunk):
    """Python's json (the SDK's ``sse.json()``) reads ``Infinity``; ``int(inf)`` raises
    OverflowError, which ``ChatClient.complete`` does not turn into a provider error: the
    run fails as a Kay bug (500, a traceback logged) instead of "could not read"."""
    chat.script(raw('{"choices": [{"delta": {"content": "Hel"}}]}', chunk))
    with pytest.raises(ProviderError) as caught:
        _complete(chat)
    assert caught.value.message == UNREADABLE


@pytest.mark.django_db
def test_a_deeply_nested_chunk_is_a_provider_error(chat):
    """The SDK's ``json.loads`` of 100,000 nested arrays (200 kB) raises RecursionError,
    which escapes ``ChatClient.complete`` as it did before df4d129 (Conversation.execute
    catches it for a tool call's arguments, not here)."""
    chat.script(raw('{"choices": [{"delta": {"content": "Hel"}}]}', "[" * 100_000 + "]" * 100_000))
    with pytest.raises(ProviderError) as caught:
        _complete(chat)
    assert caught.value.message == UNREADABLE


# --- 2. Figures no record can hold are read as if they were counts -----------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "usage",
    [
        '{"prompt_tokens": -5000, "completion_tokens": 7}',
        '{"prompt_tokens": 10, "completion_tokens": -7}',
        '{"prompt_tokens": 10, "completion_tokens": 2,'
        ' "prompt_tokens_details": {"cached_tokens": 99}}',
        '{"prompt_tokens": 10, "completion_tokens": 2,'
        ' "prompt_tokens_details": {"cached_tokens": -99}}',
        '{"prompt_tokens": 1e300, "completion_tokens": 2}',
        '{"prompt_tokens": 99999999999999999999999, "completion_tokens": 2}',
    ],
    ids=[
        "negative prompt",
        "negative completion",
        "cached > prompt",
        "negative cached",
        "1e300 prompt",
        "1e23 prompt",
    ],
)
def test_usage_figures_that_cannot_be_a_count_are_a_provider_error(chat, usage):
    """``int(...)`` takes any number: negative counts, cached above input and counts past
    ``usage.records.MAX_COUNT`` come back as the call's usage, to be refused only when
    the run is recorded (a ValueError or a database error in the run's end, see below)."""
    chat.script(raw(*_answer_with_usage(usage)))
    with pytest.raises(ProviderError) as caught:
        _complete(chat)
    assert caught.value.message == UNREADABLE


# --- 3. A flood of tool-call indices --------------------------------------------------------


@pytest.mark.django_db
def test_a_flood_of_tool_calls_in_one_answer_keeps_the_first_128(chat):
    """Each distinct ``index`` is a tool call: 4 MiB (GuardedTransport's cap on a user's
    host) of ``{"index": n}`` was ~247,000 calls, each answered with an error message in
    the history and sent back in the next request, for up to 8 rounds (three rounds of
    50,000 calls took 11.5 s and +680 MB). Fixed: the first 128 are kept, the rest dropped,
    the answer (and its usage, so its cost) still read."""
    n = 10_000
    flood = ",".join(f'{{"index": {i}, "function": {{"name": "t{i}"}}}}' for i in range(n))
    chat.script(
        raw(
            '{"choices": [{"delta": {"tool_calls": [' + flood + "]}}]}",
            '{"choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 5}}',
        )
    )
    completion = _complete(chat)
    assert [call.name for call in completion.tool_calls] == [f"t{i}" for i in range(128)]
    assert (completion.input_tokens, completion.output_tokens) == (50, 5)


# --- 4. Downstream: a user's key whose host answers such figures --------------------------


def _reap_later(run: AssistantRun) -> None:
    AssistantRun.objects.filter(pk=run.pk).update(
        finished_at=timezone.now() - timedelta(minutes=10)
    )
    runs_reap()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "answer",
    [
        _answer_with_usage(
            '{"prompt_tokens": 10, "completion_tokens": 2,'
            ' "prompt_tokens_details": {"cached_tokens": 99}}'
        ),
        _answer_with_usage('{"prompt_tokens": 10, "completion_tokens": 2}', model="m" * 201),
        _answer_with_usage('{"prompt_tokens": 10, "completion_tokens": 2}', model="gpt\\u001b[2J"),
    ],
    ids=["cached > prompt", "model of 201 characters", "model with an escape"],
)
def test_a_hostile_hosts_figures_never_poison_the_reaper(alice, chat, own_host, answer, caplog):
    """The run completes with its calls kept unrecorded; recording them raises a
    ValueError (usage.records.BucketRow) after the answer, and then again in every reaper
    pass, every minute, for ever: ``_calls_record_left`` has no limit and never gives up,
    so each such run (as many as the user cares to ask) is one more failing transaction
    and one more logged traceback per minute."""
    chat.script(raw(*answer))
    run = run_ask_start(user=alice, prompt="hi").run
    run_execute(run_id=run.pk)
    for _ in range(2):
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            _reap_later(run)
    left = AssistantRun.objects.get(pk=run.pk).calls_unrecorded
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert left is None and not errors, (left, errors)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "usage",
    [
        '{"prompt_tokens": -1000, "completion_tokens": 2}',
        '{"prompt_tokens": 3000000000, "completion_tokens": 2}',
    ],
    ids=["negative prompt (CHECK >= 0)", "past int4 (AssistantRun.input_tokens)"],
)
def test_figures_the_run_cannot_store_fail_the_run_not_leave_it_running(
    alice, chat, own_host, usage
):
    """The run's end cannot be saved (IntegrityError / DataError on AssistantRun's
    PositiveIntegerField counts); ``_run_drive``'s bug path then calls ``run_fail``, whose
    ``run.save()`` fails the same way, so the error escapes ``run_execute``: the run stays
    ``running`` with no ``done`` published (the page waits until the reaper calls it
    lost, past the task's hard time limit)."""
    if usage.find("3000000000") >= 0 and connection.vendor != "postgresql":
        pytest.skip("SQLite does not bound an integer column")
    chat.script(raw(*_answer_with_usage(usage)))
    run = run_ask_start(user=alice, prompt="hi").run
    try:
        status = run_execute(run_id=run.pk)
    except Exception as exc:  # noqa: BLE001 - what escapes is the finding
        status = f"raised {type(exc).__name__}"
    stored = AssistantRun.objects.get(pk=run.pk)
    assert (status, stored.status) == ("failed", "failed")
    assert not MeteredLlmCall.objects.filter(input_tokens__gte=2**31).exists()


@pytest.mark.django_db(transaction=True)
def test_a_run_that_cannot_be_stored_never_logs_its_prompt_and_answer(
    alice, chat, own_host, caplog
):
    """The database's error for the run's row (negative tokens: its CHECK) carries
    ``DETAIL: Failing row contains (...)``: the whole row, the user's prompt, the model's
    answer and the start of its kept calls, logged by ``logger.exception`` ("assistant
    run %s failed"); the redacting filter only takes secrets out."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite's CHECK error names the column only")
    chat.script(raw(*_answer_with_usage('{"prompt_tokens": -1000, "completion_tokens": 2}')))
    run = run_ask_start(user=alice, prompt="what is in KAN-7 private-prompt-4f1c").run
    with caplog.at_level(logging.ERROR), contextlib.suppress(Exception):
        run_execute(run_id=run.pk)  # that it escapes is the test above's finding
    formatter = logging.Formatter()
    logged = "\n".join(formatter.format(record) for record in caplog.records)
    assert "private-prompt-4f1c" not in logged


# --- Added with the fixes -----------------------------------------------------------------


@pytest.mark.django_db
def test_text_a_run_could_not_store_is_kept_with_u_fffd(chat):
    """A NUL or a lone surrogate (PostgreSQL stores neither) becomes U+FFFD: the answer,
    which the provider finished (and bills), is kept, and its call recorded."""
    chat.script(
        raw(
            '{"choices": [{"delta": {"content": "a\\u0000b \\ud800c"}}]}',
            '{"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "x\\u0000",'
            ' "function": {"name": "jira_search", "arguments": "{\\"a\\": \\"\\u0000\\"}"}}]}}]}',
            '{"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3}}',
        )
    )
    completion = _complete(chat)
    assert completion.content == "a\ufffdb \ufffdc"
    (call,) = completion.tool_calls
    assert call.id == "x\ufffd" and "\x00" not in call.arguments
    assert completion.input_tokens == 9


@pytest.mark.django_db
def test_the_largest_answer_kay_reads_is_read(chat):
    calls = ",".join(
        f'{{"index": {i}, "id": "c{i}", "function": {{"name": "jira_search", "arguments": "1"}}}}'
        for i in range(128)
    )
    chat.script(
        raw(
            '{"model": "'
            + "m" * 200
            + '", "choices": [{"delta": {"tool_calls": ['
            + calls
            + "]}}]}",
            '{"choices": [], "usage": {"prompt_tokens": 10000000, "completion_tokens": 10000000,'
            ' "prompt_tokens_details": {"cached_tokens": 10000000}}}',
        )
    )
    completion = _complete(chat)
    assert len(completion.tool_calls) == 128 and completion.model == "m" * 200
    assert completion.cached_tokens == completion.input_tokens == 10_000_000


@pytest.mark.django_db
def test_left_calls_no_record_can_hold_are_set_aside_once_with_a_warning(alice, caplog):
    """Calls a run kept before its figures were read strictly (cached above input here):
    the reaper gives up on them at once, with one warning and no traceback."""
    key = ApiKeyFactory(owner=alice, provider="openai")
    bad = {
        "call_id": "old-1",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "input_tokens": 10,
        "output_tokens": 2,
        "cached_tokens": 99,
        "at": None,
    }
    run = AssistantRun.objects.create(
        owner=alice,
        prompt="p",
        mode="oneshot",
        status="completed",
        api_key=key,
        finished_at=timezone.now() - timedelta(minutes=10),
        calls_unrecorded=[bad],
    )
    with caplog.at_level(logging.WARNING):
        runs_reap()
        runs_reap()
    assert AssistantRun.objects.get(pk=run.pk).calls_unrecorded is None
    assert not MeteredLlmCall.objects.exists()
    said = [r for r in caplog.records if "left calls" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.WARNING and not said[0].exc_info


@pytest.mark.django_db(transaction=True)
def test_a_run_whose_end_cannot_be_written_fails_and_says_so(
    alice, chat, own_host, monkeypatch, caplog
):
    from django.db import DataError

    from assistant.services import ask

    def refused(run):
        raise DataError("value out of range")

    chat.script(raw('{"choices": [{"delta": {"content": "Fine."}}]}'))
    run = run_ask_start(user=alice, prompt="hi").run
    # The run in hand cannot be written (as when it held what its columns refuse): its
    # failure must still be, by its own columns only.
    monkeypatch.setattr(ask._RUN_FINISHED, "save", refused)
    monkeypatch.setattr(AssistantRun, "save", lambda self, *a, **k: refused(self))
    with caplog.at_level(logging.ERROR):
        assert run_execute(run_id=run.pk) == "failed"
    stored = AssistantRun.objects.get(pk=run.pk)
    assert (stored.status, stored.error_code, stored.error_status) == (
        "failed",
        "server_error",
        500,
    )
    assert stored.finished_at is not None


def test_postgresql_details_of_a_refused_row_are_redacted():
    from core.logging import redact

    text = (
        'psycopg.errors.CheckViolation: new row violates check constraint "x"\n'
        "DETAIL:  Failing row contains (7, my private prompt, an answer).\n"
        "psycopg.errors.UniqueViolation: duplicate key value\n"
        "DETAIL:  Key (email)=(ann@example.com) already exists.\n"
        "next line stays"
    )
    redacted = redact(text)
    assert "private prompt" not in redacted and "ann@example.com" not in redacted
    # From the first DETAIL to the end: a refused row's values may span lines.
    assert redacted.endswith('violates check constraint "x"\nDETAIL: [REDACTED]')
