"""core.prepared: a queryset compiled once and run with new values gives exactly the rows
the ORM gives for those values, never another user's, and falls back to the ORM where
its SQL depends on more than where the values go."""

from datetime import timedelta

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.models import Count, F, Q
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.prepared import PreparedQuery, PreparedSave, PreparedUpdate
from keys.models import ApiKey, KeyAuditEvent, Project
from tests.keys.factories import ApiKeyFactory, ProjectFactory


class Counted:
    """A build function that counts how often the queryset is built."""

    def __init__(self, build):
        self.build, self.calls = build, 0

    def __call__(self, **values):
        self.calls += 1
        return self.build(**values)


def keys_of(owner_id, provider):
    return ApiKey.objects.filter(owner_id=owner_id, provider=provider).order_by("pk")


def rows(objects):
    return [(o.pk, o.owner_id, o.provider, o.name, o.masked_key, str(o.secret)) for o in objects]


def test_each_call_gets_the_rows_of_its_own_values_and_no_one_elses(alice, bob, db):
    mine = [ApiKeyFactory(owner=alice, provider="openai") for _ in range(2)]
    ApiKeyFactory(owner=alice, provider="anthropic")
    theirs = ApiKeyFactory(owner=bob, provider="openai")
    query = PreparedQuery(lambda owner_id, provider: keys_of(owner_id, provider))
    assert rows(query.all(owner_id=alice.pk, provider="openai")) == rows(mine)
    assert rows(query.all(owner_id=bob.pk, provider="openai")) == rows([theirs])
    assert query.all(owner_id=bob.pk, provider="anthropic") == []
    assert rows(query.all(owner_id=alice.pk, provider="anthropic")) == rows(
        keys_of(alice.pk, "anthropic")
    )


def test_it_is_built_and_compiled_once_then_runs_one_query_per_call(alice, bob, db):
    ApiKeyFactory(owner=alice)
    build = Counted(keys_of)
    query = PreparedQuery(lambda owner_id, provider: build(owner_id=owner_id, provider=provider))
    query.all(owner_id=alice.pk, provider="openai")
    built = build.calls
    with CaptureQueriesContext(connection) as ctx:
        for user in (alice, bob, alice):
            query.all(owner_id=user.pk, provider="openai")
    assert build.calls == built  # not built again
    assert len(ctx.captured_queries) == 3
    assert str(bob.pk) in ctx.captured_queries[1]["sql"]


def test_select_related_and_annotations_come_back_as_the_orm_makes_them(alice, db):
    project = ProjectFactory(owner=alice)
    key = ApiKeyFactory(owner=alice, project=project)

    def build(owner_id):
        return (
            ApiKey.objects.select_related("owner", "project")
            .filter(owner_id=owner_id)
            .annotate(siblings=Count("project__api_keys"))
        )

    query = PreparedQuery(build)
    (got,) = query.all(owner_id=alice.pk)
    with CaptureQueriesContext(connection) as ctx:
        assert got.pk == key.pk and got.owner.email == alice.email
        assert got.project.name == project.name and got.siblings == 1
    assert ctx.captured_queries == []  # related rows came with it
    assert got.created_at == ApiKey.objects.get(pk=key.pk).created_at  # converters applied


def test_values_lists_and_first(alice, bob, db):
    key = ApiKeyFactory(owner=alice, name="mine")
    flat = PreparedQuery(
        lambda owner_id: ApiKey.objects.filter(owner_id=owner_id).values_list("name", flat=True)
    )
    pairs = PreparedQuery(
        lambda owner_id: ApiKey.objects.filter(owner_id=owner_id).values_list("pk", "name")
    )
    first = PreparedQuery(lambda owner_id: ApiKey.objects.filter(owner_id=owner_id)[:1])
    assert flat.all(owner_id=alice.pk) == ["mine"]
    assert pairs.all(owner_id=alice.pk) == [(key.pk, "mine")]
    assert first.first(owner_id=alice.pk).pk == key.pk
    assert first.first(owner_id=bob.pk) is None


def locked(pk):
    return ApiKey.objects.select_for_update(of=("self",)).filter(pk=pk)


def test_select_for_update_locks_inside_a_transaction(alice, db):
    key = ApiKeyFactory(owner=alice)
    query = PreparedQuery(locked)
    with transaction.atomic(), CaptureQueriesContext(connection) as ctx:
        assert [k.pk for k in query.all(pk=key.pk)] == [key.pk]
    if connection.features.has_select_for_update:
        assert "FOR UPDATE" in ctx.captured_queries[-1]["sql"]


@pytest.mark.skipif(not connection.features.has_select_for_update, reason="SQLite has no row locks")
@pytest.mark.django_db(transaction=True)
def test_select_for_update_outside_a_transaction_is_refused_as_the_orm_refuses_it(alice):
    key = ApiKeyFactory(owner=alice)
    query = PreparedQuery(locked)
    with transaction.atomic():
        query.all(pk=key.pk)  # compiled
    with pytest.raises(TransactionManagementError):
        list(locked(pk=key.pk))
    with pytest.raises(TransactionManagementError):
        query.all(pk=key.pk)


@pytest.mark.parametrize(
    "build",
    [
        # Django wraps the value (%value%): it does not reach the SQL as given.
        lambda owner_id, name: ApiKey.objects.filter(owner_id=owner_id, name__contains=name),
        # The build changes the value before the query sees it.
        lambda owner_id, name: ApiKey.objects.filter(owner_id=owner_id, name=name.lower()),
    ],
    ids=["value wrapped by django", "value changed by the build"],
)
def test_what_cannot_be_prepared_runs_through_the_orm_and_stays_right(alice, bob, db, build):
    ApiKeyFactory(owner=alice, name="alpha")
    ApiKeyFactory(owner=bob, name="beta")
    counted = Counted(build)
    query = PreparedQuery(lambda owner_id, name: counted(owner_id=owner_id, name=name))
    for user, name in ((alice, "ALPHA"), (bob, "beta"), (alice, "alp")):
        expected = rows(build(owner_id=user.pk, name=name))
        assert rows(query.all(owner_id=user.pk, name=name)) == expected
    before = counted.calls
    query.all(owner_id=alice.pk, name="alp")
    assert counted.calls == before + 1  # the ORM, every time


def test_none_compiles_a_statement_of_its_own_and_other_types_run_through_the_orm(alice, db):
    ApiKeyFactory(owner=alice, project=None)
    project = ProjectFactory(owner=alice)
    in_project = ApiKeyFactory(owner=alice, project=project)
    build = Counted(
        lambda owner_id, project_id: ApiKey.objects.filter(owner_id=owner_id, project_id=project_id)
    )
    query = PreparedQuery(
        lambda owner_id, project_id: build(owner_id=owner_id, project_id=project_id)
    )
    assert [k.pk for k in query.all(owner_id=alice.pk, project_id=project.pk)] == [in_project.pk]
    # None turns "= %s" into "IS NULL": compiled for it, never run with the "= %s" SQL.
    assert len(query.all(owner_id=alice.pk, project_id=None)) == 1
    built = build.calls
    with CaptureQueriesContext(connection) as ctx:
        assert len(query.all(owner_id=alice.pk, project_id=None)) == 1
        assert [k.pk for k in query.all(owner_id=alice.pk, project_id=project.pk)] == [
            in_project.pk
        ]
    assert build.calls == built and len(ctx.captured_queries) == 2
    assert "IS NULL" in ctx.captured_queries[0]["sql"]
    assert len(query.all(owner_id=str(alice.pk), project_id=None)) == 1  # a str: the ORM
    assert build.calls == built + 1


def test_a_settings_change_forgets_what_was_compiled(alice, db, settings):
    ApiKeyFactory(owner=alice)
    build = Counted(lambda owner_id: ApiKey.objects.filter(owner_id=owner_id))
    query = PreparedQuery(lambda owner_id: build(owner_id=owner_id))
    query.all(owner_id=alice.pk)
    built = build.calls
    settings.API_TOKEN_VERSION = 99
    query.all(owner_id=alice.pk)
    assert build.calls > built


def test_it_refuses_missing_or_unknown_values(db):
    query = PreparedQuery(lambda owner_id: Project.objects.filter(owner_id=owner_id))
    with pytest.raises(TypeError):
        query.all()
    with pytest.raises(TypeError):
        query.all(owner_id=1, other=2)


# --- Updates ----------------------------------------------------------------------------


def renamed(pk, owner_id, name):
    return ApiKey.objects.filter(pk=pk, owner_id=owner_id), {"name": name}


def test_an_update_changes_only_the_rows_of_its_own_values(alice, bob, db):
    mine, theirs = ApiKeyFactory(owner=alice, name="a"), ApiKeyFactory(owner=bob, name="b")
    build = Counted(renamed)
    update = PreparedUpdate(lambda pk, owner_id, name: build(pk=pk, owner_id=owner_id, name=name))
    assert update.run(pk=mine.pk, owner_id=alice.pk, name="first") == 1
    built = build.calls
    with CaptureQueriesContext(connection) as ctx:
        assert update.run(pk=theirs.pk, owner_id=alice.pk, name="stolen") == 0  # not hers
        assert update.run(pk=mine.pk, owner_id=alice.pk, name="second") == 1
    assert build.calls == built and len(ctx.captured_queries) == 2
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert (mine.name, theirs.name) == ("second", "b")


def test_an_update_setting_a_time_reaches_the_row_as_given(alice, db):
    key = ApiKeyFactory(owner=alice)
    update = PreparedUpdate(
        lambda pk, at: (ApiKey.objects.filter(pk=pk), {"last_validated_at": at})
    )
    for at in (timezone.now(), timezone.now() - timedelta(days=3)):
        assert update.run(pk=key.pk, at=at) == 1
        key.refresh_from_db()
        assert key.last_validated_at == at


def test_an_update_with_none_sets_null_and_across_tables_runs_through_the_orm(alice, bob, db):
    key = ApiKeyFactory(owner=alice, last_validated_at=timezone.now())
    other = ApiKeyFactory(owner=bob, last_validated_at=timezone.now())
    build = Counted(lambda pk, at: (ApiKey.objects.filter(pk=pk), {"last_validated_at": at}))
    cleared = PreparedUpdate(lambda pk, at: build(pk=pk, at=at))
    assert cleared.run(pk=key.pk, at=None) == 1
    built = build.calls
    assert cleared.run(pk=other.pk, at=None) == 1
    assert build.calls == built  # compiled once for None
    for each in (key, other):
        each.refresh_from_db()
        assert each.last_validated_at is None
    joined = Counted(
        lambda email, name: (ApiKey.objects.filter(owner__email=email), {"name": name})
    )
    across = PreparedUpdate(lambda email, name: joined(email=email, name=name))
    assert across.run(email=alice.email, name="x") == 1
    before = joined.calls
    assert across.run(email=alice.email, name="y") == 1
    key.refresh_from_db()
    assert key.name == "y" and joined.calls == before + 1  # the ORM, each time


def test_an_update_adding_to_a_column_adds_each_calls_own_amount(alice, bob, db):
    """``F(column) + n``: compiled once, each run adding its own n to its own row."""
    from usage.models import Source, UsageDaily

    day = timezone.now().date()
    rows_ = {
        user.pk: UsageDaily.objects.create(
            owner=user, source=Source.KAY_METERED, day=day, provider="openai", model="m"
        )
        for user in (alice, bob)
    }
    build = Counted(
        lambda owner_id, day, tokens: (
            UsageDaily.objects.filter(owner_id=owner_id, day=day, api_key_id=None),
            {"input_tokens": F("input_tokens") + tokens},
        )
    )
    add = PreparedUpdate(
        lambda owner_id, day, tokens: build(owner_id=owner_id, day=day, tokens=tokens)
    )
    assert add.run(owner_id=alice.pk, day=day, tokens=5) == 1
    built = build.calls
    with CaptureQueriesContext(connection) as ctx:
        assert add.run(owner_id=alice.pk, day=day, tokens=7) == 1
        assert add.run(owner_id=bob.pk, day=day, tokens=100) == 1
        assert add.run(owner_id=bob.pk, day=day - timedelta(days=1), tokens=1) == 0
    assert len(ctx.captured_queries) == 3
    if connection.vendor == "postgresql":  # SQLite's adapter makes a date text: the ORM
        assert build.calls == built
    for user, tokens in ((alice, 12), (bob, 100)):
        rows_[user.pk].refresh_from_db()
        assert rows_[user.pk].input_tokens == tokens


def test_an_update_with_json_values_stores_each_calls_own(alice, bob, db):
    events = {
        user.pk: KeyAuditEvent.objects.create(owner=user, action="used") for user in (alice, bob)
    }
    set_detail = PreparedUpdate(
        lambda pk, detail: (KeyAuditEvent.objects.filter(pk=pk), {"detail": detail})
    )
    given = {
        alice.pk: [{"n": 1, "text": 'o\'clock \\ "quoted"'}, [1, 2]],
        bob.pk: {"nested": {"list": [None, True, 1.5]}, "empty": {}},
    }
    for _ in range(2):
        for user_id, detail in given.items():
            with CaptureQueriesContext(connection) as ctx:
                assert set_detail.run(pk=events[user_id].pk, detail=detail) == 1
            assert len(ctx.captured_queries) == 1
    if connection.vendor == "postgresql":  # compiled once, the values wrapped as the ORM does
        assert all(statement is not None for statement in set_detail._compiled.values())
    for user_id, detail in given.items():
        assert KeyAuditEvent.objects.get(pk=events[user_id].pk).detail == detail
    assert set_detail.run(pk=events[bob.pk].pk, detail=[]) == 1
    assert KeyAuditEvent.objects.get(pk=events[bob.pk].pk).detail == []


def test_a_save_writes_its_fields_only_as_the_orm_saves_them(alice, bob, db):
    key = ApiKeyFactory(owner=alice)
    save = PreparedSave(KeyAuditEvent, ("action", "detail", "api_key", "key_label"))
    event = KeyAuditEvent.objects.create(owner=alice, action="used", source="api")
    other = KeyAuditEvent.objects.create(owner=bob, action="used", source="api")
    for n, api_key in enumerate((key, None, key)):
        event.action, event.detail, event.api_key, event.key_label = (
            "fetched",
            {"n": n},
            api_key,
            "k",
        )
        event.source = "web"  # not among the fields: not written
        with CaptureQueriesContext(connection) as ctx:
            save.save(event)
        assert len(ctx.captured_queries) == 1
        stored = KeyAuditEvent.objects.get(pk=event.pk)
        assert (stored.action, stored.detail, stored.api_key_id, stored.source) == (
            "fetched",
            {"n": n},
            getattr(api_key, "pk", None),
            "api",
        )
    if connection.vendor == "postgresql":  # a statement for the key set, one for it None
        assert len(save._update._compiled) == 2
        assert all(statement is not None for statement in save._update._compiled.values())
    untouched = KeyAuditEvent.objects.get(pk=other.pk)
    assert (untouched.action, untouched.detail, untouched.api_key_id) == ("used", {}, None)
    KeyAuditEvent.objects.filter(pk=event.pk).delete()
    with pytest.raises(DatabaseError, match="did not affect any rows"):
        save.save(event)
    with pytest.raises(ValueError, match="concrete"):
        PreparedSave(KeyAuditEvent, ("id",))


def test_a_value_used_as_given_and_changed_is_not_prepared(alice, db):
    """Attack review 20: ``name`` as given and as ``name%``: the second would stay frozen."""
    for name in ("prod", "prod-eu"):
        ApiKeyFactory(owner=alice, name=name)

    def build(owner_id, name):
        return ApiKey.objects.filter(owner_id=owner_id).filter(
            Q(name=name) | Q(name__startswith=name)
        )

    query = PreparedQuery(build)
    for name in ("prod", "prod-eu", "prod"):
        assert rows(query.all(owner_id=alice.pk, name=name)) == rows(
            build(owner_id=alice.pk, name=name)
        )


def test_a_sliced_update_is_refused_as_the_orm_refuses_it(alice, db):
    """Attack review 20: compiled, the slice was dropped and every matching row updated."""
    ApiKeyFactory(owner=alice, name="one")
    ApiKeyFactory(owner=alice, name="two")
    update = PreparedUpdate(
        lambda owner_id, name: (ApiKey.objects.filter(owner_id=owner_id)[:1], {"name": name})
    )
    with pytest.raises(TypeError):
        update.run(owner_id=alice.pk, name="renamed")
    assert set(ApiKey.objects.values_list("name", flat=True)) == {"one", "two"}


def _server_statements():
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL prepares statements")
def test_postgresql_prepares_each_statement_once_per_connection(alice, bob, db):
    ApiKeyFactory(owner=alice, provider="openai")
    query = PreparedQuery(lambda owner_id, provider: keys_of(owner_id, provider))
    update = PreparedUpdate(
        lambda pk, name: (ApiKey.objects.filter(pk=pk), {"name": name}),
    )
    key = query.first(owner_id=alice.pk, provider="openai")
    before = _server_statements()
    for user in (alice, bob, alice):
        query.all(owner_id=user.pk, provider="openai")
        update.run(pk=key.pk, name=f"renamed for {user.pk}")
    prepared = [sql for sql in _server_statements() if sql not in before]
    # The update prepared once; the read was prepared by its first run, above.
    assert len(prepared) == 1 and prepared[0].startswith("UPDATE")
    assert any('FROM "keys_apikey"' in sql for sql in before)
    key.refresh_from_db()
    assert key.name == f"renamed for {alice.pk}"
    # Django's own queries stay client-side bound: not prepared.
    list(keys_of(alice.pk, "openai"))
    assert len(_server_statements()) == len(before) + 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL prepares statements")
def test_without_prepared_statements_the_same_rows_come_back_unprepared(alice, db):
    mine = ApiKeyFactory(owner=alice, provider="openai")
    connection.ensure_connection()
    raw = connection.connection
    threshold, raw.prepare_threshold = raw.prepare_threshold, None  # a pooler's setting
    try:
        query = PreparedQuery(lambda owner_id, provider: keys_of(owner_id, provider))
        before = _server_statements()
        assert rows(query.all(owner_id=alice.pk, provider="openai")) == rows([mine])
        assert _server_statements() == before
    finally:
        raw.prepare_threshold = threshold


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL prepares statements")
def test_a_prepared_join_is_planned_once_not_at_every_run(alice, db):
    """The run's claim joins five tables: left to choose, PostgreSQL planned it afresh
    each time (a custom plan), which cost more than running it."""
    from assistant.models import AssistantRun
    from assistant.services.runs import _QUEUED_LOCKED

    for _ in range(8):
        run = AssistantRun.objects.create(
            owner=alice, prompt="x", status=AssistantRun.Status.QUEUED
        )
        with transaction.atomic():
            assert _QUEUED_LOCKED.first(run_id=run.pk).pk == run.pk
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
            "WHERE statement LIKE %s",
            ['SELECT "assistant_assistantrun"."id"%FOR UPDATE%'],
        )
        ((generic, custom),) = cursor.fetchall()
    assert generic >= 8 and custom == 0
