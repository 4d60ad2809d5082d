"""Attack review 26 of bd14693 (PreparedInsert.create_many: Django's UNNEST bulk INSERT
compiled once, used for a run's metered calls). Nothing here failed on the code as
reviewed: these stay as cheap guards of what was tried."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from django.db import connection, connections

from core.prepared_insert import PreparedInsert
from tests.accounts.factories import UserFactory
from tests.keys.factories import ApiKeyFactory
from usage.models import MeteredLlmCall, UsageBucket
from usage.services import LlmCall, usage_record_llm_calls


def _row(owner, call_id, **fields):
    row = dict(
        owner=owner,
        api_key=None,
        provider="openai",
        model="gpt-4o-mini",
        input_tokens=1,
        output_tokens=2,
        cached_tokens=0,
        cost_micros=3,
        priced=True,
        call_id=call_id,
        bucket_id=None,
    )
    row.update(fields)
    return row


# Text that an array literal would misread if it were not quoted: NULL, braces, commas,
# quotes, backslashes, blanks, the empty string.
AWKWARD = [
    "NULL",
    "null",
    "",
    '"',
    "\\",
    "{}",
    "{a,b}",
    ",",
    "a b",
    "o'clock",
    "ü€😀",
    "\t",
    "{NULL}",
]


def test_awkward_text_is_stored_as_given_and_rows_come_back_in_order(alice, db):
    insert = PreparedInsert(MeteredLlmCall)
    rows = [
        _row(alice, f"w{i}", provider=text, model=text or "x") for i, text in enumerate(AWKWARD)
    ]
    made = insert.create_many(rows)
    stored = {m.pk: (m.call_id, m.provider, m.model) for m in MeteredLlmCall.objects.all()}
    assert [stored[m.pk] for m in made] == [(r["call_id"], r["provider"], r["model"]) for r in rows]


def test_null_and_set_relations_and_bigint_counts_mix_across_calls(alice, db):
    insert = PreparedInsert(MeteredLlmCall)
    key = ApiKeyFactory(owner=alice)
    insert.create_many([_row(alice, "a1"), _row(alice, "a2")])  # compiled: api_key all NULL
    insert.create_many(
        [_row(alice, "b1", api_key=key), _row(alice, "b2"), _row(alice, "b3", api_key=key)]
    )
    sizes = [1, 40_000, 3 * 10**9, 2**62, 2**63 - 1]
    insert.create_many([_row(alice, f"c{i}", cost_micros=n) for i, n in enumerate(sizes)])
    got = dict(MeteredLlmCall.objects.values_list("call_id", "api_key_id"))
    assert (got["a1"], got["b1"], got["b2"], got["b3"]) == (None, key.pk, None, key.pk)
    costs = dict(
        MeteredLlmCall.objects.filter(call_id__startswith="c").values_list("call_id", "cost_micros")
    )
    assert [costs[f"c{i}"] for i in range(len(sizes))] == sizes


@pytest.mark.django_db(transaction=True)
def test_an_owner_id_past_the_prepared_statements_integer_type_is_stored(alice):
    """psycopg binds a list of small ints as smallint[]: the statement prepared for a
    small owner id must not be reused for a larger one (it prepares another)."""
    insert = PreparedInsert(MeteredLlmCall)
    for n in range(6):  # past any prepare threshold
        insert.create_many([_row(alice, f"s{n}-{i}") for i in range(2)])
    for pk in (40_000, 3_000_000_000):
        owner = UserFactory(pk=pk)
        insert.create_many([_row(owner, f"o{pk}-{i}") for i in range(2)])
        assert MeteredLlmCall.objects.filter(owner_id=pk).count() == 2


@pytest.mark.django_db(transaction=True)
def test_metering_is_first_wins_again_and_again_on_the_prepared_statement(alice):
    at = datetime(2026, 3, 2, 14, 25, tzinfo=UTC)

    def call(call_id):
        return LlmCall(
            call_id=call_id,
            provider="openai",
            model="gpt-4o-mini",
            input_tokens=10,
            output_tokens=5,
            at=at,
        )

    for n in range(7):  # the batch's IntegrityError, then each alone, on a prepared INSERT
        first = usage_record_llm_calls(owner=alice, calls=[call(f"a{n}"), call(f"b{n}")])
        again = usage_record_llm_calls(
            owner=alice, calls=[call(f"a{n}"), call(f"c{n}"), call(f"b{n}")]
        )
        assert [m.record_id for m in again][0::2] == [m.record_id for m in first]
    bucket = UsageBucket.objects.get()
    assert MeteredLlmCall.objects.count() == bucket.requests == 21
    assert bucket.input_tokens == 210


@pytest.mark.django_db(transaction=True)
def test_threads_sharing_the_compiled_insert_each_get_their_own_rows(alice):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite's test database locks a table written from several threads")
    insert = PreparedInsert(MeteredLlmCall)
    errors: list[str] = []
    made: list[MeteredLlmCall] = []
    start = threading.Barrier(6)

    def work(t):
        try:
            start.wait()
            for r in range(20):
                rows = [_row(alice, f"t{t}-{r}-{i}") for i in range(2 + (t + r) % 4)]
                made.extend(insert.create_many(rows))
        except Exception as exc:  # noqa: BLE001
            errors.append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]
    stored = dict(MeteredLlmCall.objects.values_list("pk", "call_id"))
    assert len(stored) == len(made)
    assert all(stored[m.pk] == m.call_id for m in made)
