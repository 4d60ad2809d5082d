"""Attack review 26b of 0bb2340 (prepared statements take JSON values, bound in a copy of
the field's psycopg wrapper; PreparedSave for a run's end).

The first tests fail on the code as reviewed; the rest are guards of what held."""

from __future__ import annotations

import copy
import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, connection, connections
from django.db.models import JSONField, Value
from django.utils import timezone

from assistant.models import AssistantRun
from assistant.services import ask
from core.prepared import PreparedQuery, PreparedSave, PreparedUpdate
from keys.models import KeyAuditEvent
from tests.keys.factories import ApiKeyFactory

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="SQLite gets JSON as text: never prepared"
)


# --- 1. The run's end never uses its compiled statement ------------------------------------


def _finished(run: AssistantRun, n: int) -> None:
    """What ``ask._finish`` sets before ``_RUN_FINISHED.save(run)``."""
    run.status = AssistantRun.Status.COMPLETED
    run.response = f"answer {n}"
    run.tool_calls = [{"n": n}]
    run.finished_at = timezone.now()
    run.calls_unrecorded = None


@postgresql_only
def test_the_runs_end_is_written_by_its_compiled_statement(alice, db, monkeypatch):
    """``_finish`` sets ``run.status = AssistantRun.Status.COMPLETED``: a TextChoices
    member, whose type is not ``str``. The statement was compiled (its stand-in a str),
    but ``_Statement.fits`` wants each value's exact type, so every run's end goes to
    ``queryset.update`` through the ORM (the build and compile 0bb2340 set out to save:
    "1.2 -> 0.55 ms" is not what runs). test_prepared checks the statement compiled,
    never that it is used."""
    run = AssistantRun.objects.create(owner=alice, prompt="p", mode="one_shot")
    _finished(run, 0)
    ask._RUN_FINISHED.save(run)  # compiled by now
    update = ask._RUN_FINISHED._update
    built: list[dict] = []
    build = update._build
    monkeypatch.setattr(update, "_build", lambda **values: built.append(values) or build(**values))
    _finished(run, 1)
    ask._RUN_FINISHED.save(run)
    assert AssistantRun.objects.get(pk=run.pk).response == "answer 1"
    assert built == [], "the run's end was built and compiled by the ORM again"


# --- 2. PreparedSave is not save() for a related object -------------------------------------


def test_a_related_object_saved_after_it_was_set_is_saved_as_save_saves_it(alice, db):
    """``Model.save`` first syncs each foreign key from its object
    (``_prepare_related_fields_for_save``: an object saved after it was assigned gives its
    new pk). PreparedSave reads ``attname`` as it stands (None) and writes NULL over the
    row's key, silently. No caller does this today (the run's session is saved before it
    is set), but PreparedSave is documented as ``save(update_fields=...)``."""
    save = PreparedSave(KeyAuditEvent, ("api_key", "key_label"))
    event = KeyAuditEvent.objects.create(owner=alice, action="used", source="api")
    key = ApiKeyFactory.build(owner=alice)
    event.api_key = key
    key.save()
    event.key_label = "k"
    save.save(event)
    assert KeyAuditEvent.objects.get(pk=event.pk).api_key_id == key.pk  # what save() stores


def test_an_unsaved_related_object_is_refused_as_save_refuses_it(alice, db):
    """``save()`` refuses an unsaved related object (ValueError: "save() prohibited to
    prevent data loss"); PreparedSave writes NULL."""
    key = ApiKeyFactory(owner=alice)
    save = PreparedSave(KeyAuditEvent, ("api_key",))
    event = KeyAuditEvent.objects.create(owner=alice, action="used", source="api", api_key=key)
    event.api_key = ApiKeyFactory.build(owner=alice)
    with pytest.raises(ValueError, match="unsaved related object"):
        save.save(event)


# --- Held -----------------------------------------------------------------------------------


@postgresql_only
def test_json_lookups_read_each_calls_own_value(alice, db):
    a = KeyAuditEvent.objects.create(owner=alice, action="used", detail={"k": [1, 2], "b": True})
    b = KeyAuditEvent.objects.create(owner=alice, action="used", detail={"k": [3], "b": False})
    pks = lambda q: PreparedQuery(lambda d: q(d).order_by("pk").values_list("pk", flat=True))  # noqa: E731
    contains = pks(lambda d: KeyAuditEvent.objects.filter(detail__contains=d))
    exact = pks(lambda d: KeyAuditEvent.objects.filter(detail=d))
    key_contains = pks(lambda d: KeyAuditEvent.objects.filter(detail__k__contains=d))
    for _ in range(2):
        assert contains.all(d={"b": True}) == [a.pk]
        assert contains.all(d={"b": False}) == [b.pk]
        assert contains.all(d={}) == [a.pk, b.pk]
        assert exact.all(d={"k": [3], "b": False}) == [b.pk]
        # Text shaped as a stand-in is a value like any other.
        assert exact.all(d={"Kay-Prepared": "Kay-Prepared-00"}) == []
        assert key_contains.all(d=[2]) == [a.pk]
        assert key_contains.all(d=[3]) == [b.pk]
    assert all(s is not None for s in (*contains._compiled.values(), *exact._compiled.values()))


@postgresql_only
def test_a_json_value_keeps_its_fields_encoder(alice, db):
    event = KeyAuditEvent.objects.create(owner=alice, action="used")
    set_detail = PreparedUpdate(
        lambda pk, d: (
            KeyAuditEvent.objects.filter(pk=pk),
            {"detail": Value(d, output_field=JSONField(encoder=DjangoJSONEncoder))},
        )
    )
    for i in range(2):
        set_detail.run(
            pk=event.pk, d={"at": datetime(2024, 1, 2, tzinfo=UTC), "n": Decimal("1.5"), "i": i}
        )
        event.refresh_from_db()
        assert event.detail == {"at": "2024-01-02T00:00:00Z", "n": "1.5", "i": i}
    assert all(s is not None for s in set_detail._compiled.values())


class _Tags(list):
    """A list subclass: not the stand-in's type, so the ORM takes it."""


def test_json_values_of_every_shape_are_stored_as_given(alice, db):
    event = KeyAuditEvent.objects.create(owner=alice, action="used")
    set_detail = PreparedUpdate(
        lambda pk, detail: (KeyAuditEvent.objects.filter(pk=pk), {"detail": detail})
    )
    given: list = [
        [],
        {},
        [True, False, None, 0, 1.5, "x"],
        {"a": {"b": [{"c": True}]}},
        ["Kay-Prepared-0123"],
        {"Kay-Prepared": "Kay-Prepared-0123"},
        (1, 2),
        _Tags([1]),
        ["x" * 1_000_000],
    ]
    for value in given:
        expected = list(value) if isinstance(value, tuple | _Tags) else value
        expected = copy.deepcopy(expected)
        set_detail.run(pk=event.pk, detail=value)
        if isinstance(value, list):
            value.append("changed after the call")  # the caller's own list, not what was stored
        event.refresh_from_db()
        assert event.detail == expected


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_threads_binding_json_at_once_each_store_their_own(alice):
    events = [KeyAuditEvent.objects.create(owner=alice, action="used") for _ in range(4)]
    set_detail = PreparedUpdate(
        lambda pk, detail: (KeyAuditEvent.objects.filter(pk=pk), {"detail": detail})
    )
    read = PreparedQuery(
        lambda pk: KeyAuditEvent.objects.filter(pk=pk).values_list("detail", flat=True)
    )
    set_detail.run(pk=events[0].pk, detail=[])  # compiled before the threads start
    wrong: list = []
    start = threading.Barrier(len(events))

    def work(t: int) -> None:
        try:
            start.wait()
            for i in range(25):
                value = {"t": t, "i": i, "list": [t] * (i % 3)}
                set_detail.run(pk=events[t].pk, detail=value)
                if read.all(pk=events[t].pk) != [value]:
                    wrong.append((t, i))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(t,)) for t in range(len(events))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
    assert all(s is not None for s in set_detail._compiled.values())


def test_a_run_end_on_a_deleted_row_is_an_error(alice, db):
    run = AssistantRun.objects.create(owner=alice, prompt="p", mode="one_shot")
    _finished(run, 0)
    AssistantRun.objects.filter(pk=run.pk).delete()
    with pytest.raises(DatabaseError, match="did not affect any rows"):
        ask._RUN_FINISHED.save(run)
