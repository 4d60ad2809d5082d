"""core.prepared_insert: a model's INSERT compiled once stores what the ORM's ``create``
and ``bulk_create`` store, falls back to them where it cannot, and refuses what they
refuse."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.prepared_insert import PreparedInsert
from keys.models import ApiKey, KeyAuditEvent, Project
from tests.keys.factories import ApiKeyFactory


def test_an_insert_stores_what_the_orm_stores(alice, db):
    events = PreparedInsert(KeyAuditEvent)
    key = ApiKeyFactory(owner=alice)
    made = [
        events.create(owner_id=alice.pk, api_key=key, action="used", detail={"n": n})
        for n in range(3)
    ]
    with CaptureQueriesContext(connection) as ctx:
        last = events.create(owner_id=alice.pk, api_key=key, action="used", detail={"n": 3})
    assert len(ctx.captured_queries) == 1
    orm = KeyAuditEvent.objects.create(owner_id=alice.pk, api_key=key, action="used")
    stored = list(KeyAuditEvent.objects.order_by("pk"))
    assert [e.pk for e in stored] == [*(e.pk for e in made), last.pk, orm.pk]
    assert [e.detail for e in stored[:4]] == [{"n": n} for n in range(4)]
    assert stored[3].created_at == last.created_at and last.created_at is not None
    assert {e.count for e in stored} == {orm.count}  # the field's default, as the ORM sets it
    assert not last._state.adding and stored[3].api_key_id == key.pk


def test_several_rows_are_stored_as_bulk_create_stores_them_in_one_statement(alice, bob, db):
    events = PreparedInsert(KeyAuditEvent)
    key = ApiKeyFactory(owner=alice)
    batches = [
        [
            dict(owner_id=alice.pk, api_key=key, action="used", detail={"n": 9}, key_label="k"),
            dict(owner_id=bob.pk, action="fetched", detail={"text": "o'clock\n"}, source="api"),
        ],
        [dict(owner_id=bob.pk, action="used", detail={"n": n}) for n in range(5)],
    ] * 2
    made = []
    for batch in batches:
        with CaptureQueriesContext(connection) as ctx:
            made.append(events.create_many(batch))
        assert len(ctx.captured_queries) == 1
    if connection.vendor == "postgresql":  # compiled once, from UNNEST: any number of rows
        assert events._compiled_many is not None and "UNNEST(" in events._compiled_many.sql
    orm = KeyAuditEvent.objects.bulk_create([KeyAuditEvent(owner_id=alice.pk, action="used")])
    stored = list(KeyAuditEvent.objects.order_by("pk"))
    flat = [event for batch in made for event in batch]
    assert [e.pk for e in stored] == [*(e.pk for e in flat), orm[0].pk]
    for given, kept in zip([row for batch in batches for row in batch], stored, strict=False):
        assert kept.owner_id == given["owner_id"] and kept.detail == given["detail"]
        assert (kept.action, kept.api_key_id) == (
            given["action"],
            getattr(given.get("api_key"), "pk", None),
        )
        assert kept.source == given.get("source", orm[0].source)
    assert {e.count for e in stored} == {orm[0].count}  # defaults, as the ORM sets them
    assert all(e.created_at is not None and not e._state.adding for e in flat)


def test_several_rows_refuse_a_deleted_relation_and_one_row_is_a_create(alice, db):
    events = PreparedInsert(KeyAuditEvent)
    key = ApiKeyFactory(owner=alice)
    key.delete()
    with pytest.raises(ValueError, match="unsaved related object"):
        events.create_many(
            [dict(owner_id=alice.pk, action="used"), dict(owner_id=alice.pk, api_key=key)]
        )
    assert not KeyAuditEvent.objects.exists()
    (one,) = events.create_many([dict(owner_id=alice.pk, action="used")])
    assert KeyAuditEvent.objects.get().pk == one.pk
    assert events.create_many([]) == []


def test_an_insert_with_save_receivers_goes_through_the_orm(alice, db):
    from django.db.models.signals import post_save

    seen = []

    def receiver(sender, instance, created, **kwargs):
        seen.append((instance.pk, created))

    post_save.connect(receiver, sender=Project)
    try:
        project = PreparedInsert(Project).create(owner=alice, name="signalled")
    finally:
        post_save.disconnect(receiver, sender=Project)
    assert seen == [(project.pk, True)]


def test_a_model_with_its_own_save_is_created_through_it(alice, db):
    key = PreparedInsert(ApiKey).create(
        owner=alice, provider="openai", name="k", secret="sk-admin-" + "x" * 40
    )
    key.refresh_from_db()
    assert key.kind == ApiKey.Kind.ADMIN  # set by ApiKey.save()


def test_an_expression_in_the_first_row_is_not_kept_for_the_next(alice, db):
    """Attack review 20b: the first row's expression was compiled into the statement."""
    from django.db.models import Value
    from django.db.models.functions import Concat

    events = PreparedInsert(KeyAuditEvent)
    events.create(owner_id=alice.pk, action="used", key_label=Concat(Value("a"), Value("b")))
    later = events.create(owner_id=alice.pk, action="fetched", key_label="MiXeD", source="api")
    row = KeyAuditEvent.objects.values("key_label", "action", "source").get(pk=later.pk)
    assert row == {"key_label": "MiXeD", "action": "fetched", "source": "api"}


def test_an_insert_keeps_a_given_primary_key_and_refuses_a_deleted_relation(alice, db):
    """Attack review 20b: a given id was replaced; a deleted key was stored as NULL."""
    events = PreparedInsert(KeyAuditEvent)
    events.create(owner_id=alice.pk, action="used")
    assert events.create(id=987654, owner_id=alice.pk, action="used").pk == 987654
    assert KeyAuditEvent.objects.filter(pk=987654).exists()
    key = ApiKeyFactory(owner=alice)
    key.delete()
    with pytest.raises(ValueError, match="unsaved related object"):
        events.create(owner_id=alice.pk, action="used", api_key=key)
