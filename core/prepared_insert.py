"""``model.objects.create`` and ``bulk_create`` with their INSERT compiled once per
process (``core.prepared``'s way, for writes of new rows): on ``/ask``'s path a run is
stored, its key's use audited, its hold opened and its calls recorded this way."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import NOT_PROVIDED, Model
from django.db.models.sql.compiler import SQLInsertCompiler
from django.db.models.sql.subqueries import InsertQuery

from core.prepared import _ALL, _UNSET, _has_save_receivers
from core.server_prepared import server_prepared

logger = logging.getLogger(__name__)
M = TypeVar("M", bound=Model)


@dataclass(frozen=True)
class _CompiledInsert:
    sql: str
    fields: list[Any]
    tail: tuple[Any, ...]  # the parameters after the row's (RETURNING's, if any)
    compiler: SQLInsertCompiler


class PreparedInsert(Generic[M]):
    """``model.objects.create(**fields)`` with its INSERT compiled once per process: each
    row's values are still prepared by their fields (``pre_save``, ``get_db_prep_save``:
    defaults, ``auto_now_add``, JSON), only the statement is not built again. A model with
    ``pre_save``/``post_save`` receivers, parents, or fields that need their own SQL, and
    a row with an expression for a value, and a model with its own ``save()`` are created
    through the ORM."""

    def __init__(self, model: type[M]) -> None:
        self._model = model
        self._compiled: Any = _UNSET
        self._compiled_many: Any = _UNSET
        _ALL.append(self)

    def create(self, **fields: Any) -> M:
        obj = self._model(**fields)
        if obj.pk is not None or _has_save_receivers(self._model) or _has_expressions(obj):
            obj.save(force_insert=True, using=DEFAULT_DB_ALIAS)  # as the ORM would
            return obj
        if self._compiled is _UNSET:
            self._compiled = self._compile(obj)
        compiled: _CompiledInsert | None = self._compiled
        if compiled is None:
            obj.save(force_insert=True, using=DEFAULT_DB_ALIAS)
            return obj
        # What save() checks first: a related object that is unsaved (or deleted) refused.
        obj._prepare_related_fields_for_save(operation_name="save")  # type: ignore[attr-defined]
        _insert(compiled, [obj], rows=False)
        return obj

    def create_many(self, rows: list[dict[str, Any]]) -> list[M]:
        """``model.objects.bulk_create`` of these rows, in order, by one statement. On
        PostgreSQL Django inserts several rows from ``UNNEST`` of one array per column, the
        same SQL for any number of rows: compiled once, then each call's columns put in
        their places. Elsewhere (and wherever :meth:`create` would use the ORM), the ORM."""
        objs = [self._model(**row) for row in rows]
        if len(objs) == 1:
            return [self.create(**rows[0])]
        if (
            not objs
            or _has_save_receivers(self._model)
            or any(obj.pk is not None or _has_expressions(obj) for obj in objs)
        ):
            return self._model._default_manager.bulk_create(objs)
        if self._compiled_many is _UNSET:
            self._compiled_many = self._compile(*objs[:2])
        compiled: _CompiledInsert | None = self._compiled_many
        if compiled is None:
            return self._model._default_manager.bulk_create(objs)
        for obj in objs:
            obj._prepare_related_fields_for_save(operation_name="bulk_create")  # type: ignore[attr-defined]
        _insert(compiled, objs, rows=True)
        return objs

    def forget(self) -> None:
        self._compiled = self._compiled_many = _UNSET

    def _compile(self, *objs: M) -> _CompiledInsert | None:
        """One row's INSERT; given two rows, the INSERT from ``UNNEST`` of one array per
        column (None if Django would write several rows otherwise)."""
        obj = objs[0]
        meta = self._model._meta
        if meta.parents or obj.pk is not None or self._model.save is not Model.save:
            return None  # a model's own save() would be skipped
        fields = [
            field
            for field in meta.local_concrete_fields
            if not getattr(field, "generated", False) and field is not meta.auto_field
        ]
        if any(
            getattr(field, "get_placeholder", None) is not None
            or getattr(field, "db_default", NOT_PROVIDED) is not NOT_PROVIDED
            for field in fields
        ):
            return None
        query = InsertQuery(self._model)
        query.insert_values(fields, list(objs))
        compiler = cast(SQLInsertCompiler, query.get_compiler(DEFAULT_DB_ALIAS))
        compiler.returning_fields = meta.db_returning_fields
        try:
            ((sql, params),) = compiler.as_sql()
        except Exception:
            logger.warning("a prepared insert could not be compiled", exc_info=True)
            return None
        if len(params) < len(fields) or sql.count("%s") != len(params):
            return None
        if len(objs) > 1 and (
            "UNNEST(" not in sql
            or not all(
                isinstance(column, list) and len(column) == len(objs)
                for column in params[: len(fields)]
            )
        ):
            return None  # rows as VALUES lists: the SQL would change with their number
        # The statement is kept, not the rows it was compiled with (as many of them: a
        # bulk insert reads its returned rows as several only when it has several).
        compiler.query.objs = [self._model() for _ in objs]
        return _CompiledInsert(sql, fields, tuple(params[len(fields) :]), compiler)


def _insert(compiled: _CompiledInsert, objs: list[Any], *, rows: bool) -> None:
    """Run ``compiled`` for ``objs``, each given what the INSERT returned (its id). Each
    value is prepared by its field as ``save()`` prepares it; ``rows``: several rows, one
    array per column (``UNNEST``), else one row's values."""
    compiler = copy.copy(compiled.compiler)
    connection = compiler.connection = connections[DEFAULT_DB_ALIAS]
    values = [
        [compiler.prepare_value(field, compiler.pre_save_val(field, obj)) for obj in objs]
        for field in compiled.fields
    ]
    params = (*(values if rows else [column[0] for column in values]), *compiled.tail)
    compiler.as_sql = lambda *args, **kwargs: [(compiled.sql, params)]  # type: ignore[method-assign,assignment]
    returning = objs[0]._meta.db_returning_fields
    with transaction.mark_for_rollback_on_error(DEFAULT_DB_ALIAS), server_prepared(connection):
        returned = compiler.execute_sql(returning) or []
    for obj, row in zip(objs, returned, strict=False):
        for value, field in zip(row, returning, strict=False):
            setattr(obj, field.attname, value)
    for obj in objs:
        obj._state.adding = False
        obj._state.db = DEFAULT_DB_ALIAS


def _has_expressions(obj: Model) -> bool:
    """A value given as an expression: its SQL would differ from the compiled row's."""
    return any(
        hasattr(getattr(obj, field.attname, None), "resolve_expression")
        for field in obj._meta.local_concrete_fields
    )
