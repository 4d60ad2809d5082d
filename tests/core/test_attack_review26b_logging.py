"""Attack review 26b of 62aad72's redaction of PostgreSQL's DETAIL lines (core/logging.py):
the pattern stops at the first newline, and PostgreSQL quotes other values elsewhere.

Each test here fails on the code as reviewed."""

from __future__ import annotations

import logging

import pytest
from django.db import DatabaseError, connection, transaction

from assistant.models import AssistantRun
from core.logging import RedactSecretsFilter


def _logged(exc: BaseException) -> str:
    """The record ``logger.exception`` writes for ``exc``, through the redacting filter."""
    record = logging.LogRecord("kay", logging.ERROR, __file__, 1, "run failed", None, None)
    record.exc_info = (type(exc), exc, exc.__traceback__)
    RedactSecretsFilter().filter(record)
    return logging.Formatter().format(record)


@pytest.mark.django_db
def test_a_failing_row_with_several_lines_is_redacted_whole(alice):
    """A prompt (or a model's answer) is usually several lines, and PostgreSQL quotes a
    refused row's text as it is: ``DETAIL:  Failing row contains (…, what is in KAN-7``
    is redacted, the prompt's next lines (and every column after them) are not."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite's CHECK error names the column only")
    prompt = "what is in KAN-7\nand the salary of private-line-9c2e\nthanks"
    with pytest.raises(DatabaseError) as caught, transaction.atomic():
        AssistantRun.objects.create(owner=alice, prompt=prompt, mode="one_shot", input_tokens=-1)
    logged = _logged(caught.value)
    assert "Failing row contains" in str(caught.value)  # PostgreSQL's detail is there
    assert "private-line-9c2e" not in logged, logged[-400:]


@pytest.mark.django_db
def test_a_json_value_postgresql_refuses_is_not_quoted_in_the_log(alice):
    """``CONTEXT:  JSON data, line 1: …`` quotes the JSON up to the refused spot (a run's
    tool calls: the user's JQL, results' summaries), and with Django's client-side
    binding ``LINE 1: …`` shows the statement with its values inlined (the model's
    answer beside it)."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's error text")
    run = AssistantRun.objects.create(owner=alice, prompt="p", mode="one_shot")
    with pytest.raises(DatabaseError) as caught, transaction.atomic():
        AssistantRun.objects.filter(pk=run.pk).update(
            response="private-answer-8d1f",
            tool_calls=[{"arguments": {"jql": "project = SECRET-4711 \x00"}}],
        )
    logged = _logged(caught.value)
    leaked = [s for s in ("SECRET-4711", "private-answer-8d1f") if s in logged]
    assert not leaked, logged[-600:]
