"""Querysets on hot paths compiled to SQL once per process, then run with new values.

Building and compiling a queryset costs this machine 0.4 to 2 ms, several times the query's
round trip (~0.1 ms): most of ``/ask``'s own time went there. ``PreparedQuery`` builds
the queryset once with stand-in values, keeps its SQL and compiler, and afterwards only
puts each call's values in their places::

    keys_of = PreparedQuery(lambda owner_id: ApiKey.objects.filter(owner_id=owner_id))
    keys_of.all(owner_id=7)  # the same rows ``ApiKey.objects.filter(owner_id=7)`` gives

The queryset must depend on its arguments only as values (no branching on them, no
``timezone.now()`` or settings read inside): its SQL is compiled once. Compiled with two
different sets of stand-ins, the SQL must come out the same and every stand-in must
appear among the parameters as it was given; otherwise (a value Django transforms, like
``__contains``) the queryset simply runs through the ORM each time, correct and as slow as
before. A ``None`` value changes the SQL (``IS NULL``): the statement is compiled once for
each set of arguments given as ``None``. Any settings change (tests) forgets what was
compiled. ``PreparedUpdate`` and ``PreparedSave`` do the same for updates;
``core.prepared_insert`` for a model's INSERT.

On PostgreSQL the statements are also prepared server-side (``core.server_prepared``), once
per connection (``prepare_threshold`` set: see ``DATABASE_PREPARED_STATEMENTS``), so
PostgreSQL does not plan them again each time either: planning a join of five tables took
0.7 ms, running it 0.1 ms.
"""

from __future__ import annotations

import copy
import inspect
import logging
import secrets
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import chain
from typing import Any, Generic, TypeVar, cast

from django.core.signals import setting_changed
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from django.db.models import Field, Model, QuerySet
from django.db.models.query import (
    FlatValuesListIterable,
    ModelIterable,
    ValuesListIterable,
    get_related_populators,
)
from django.db.models.signals import post_save, pre_save
from django.db.models.sql.compiler import SQLCompiler
from django.db.models.sql.subqueries import UpdateQuery
from django.db.transaction import TransactionManagementError

from core.server_prepared import server_prepared

try:  # what Django wraps a JSON value in for psycopg (PostgreSQL only)
    from psycopg.types.json import _JsonWrapper
except ImportError:  # pragma: no cover

    class _JsonWrapper:  # type: ignore[no-redef]
        obj: Any


logger = logging.getLogger(__name__)
M = TypeVar("M", bound=Model)
R = TypeVar("R")  # a row: a model instance, or what values_list gives
_ALL: list[Any] = []  # every prepared statement, to forget on a settings change


class _NotPreparable(Exception):
    """This queryset's SQL depends on more than where its values go."""


def _stand_in(value: Any) -> Any:
    """A value of ``value``'s type that nothing else in a query can equal, and that the
    usual changes (case, whitespace, sign) would not leave as it is: a build function
    that changed its value is then caught, its queryset not prepared."""
    if isinstance(value, bool):
        raise _NotPreparable("booleans cannot be told apart from constants")
    if isinstance(value, int):
        # Within a 32-bit column's range: Django finds nothing for a value past it.
        return -(secrets.randbits(30) | (1 << 30))
    if isinstance(value, str):
        return f" Kay-Prepared-{secrets.token_hex(12).upper()}-x "
    if isinstance(value, uuid.UUID):
        return uuid.uuid4()
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise _NotPreparable("naive datetimes are not prepared")
        # Reaches PostgreSQL as it is; SQLite's adapter turns it into text (not prepared).
        return datetime(2001, 2, 3, tzinfo=UTC) + timedelta(microseconds=secrets.randbits(40))
    if isinstance(value, date):
        return date(2001, 2, 3) + timedelta(days=secrets.randbits(16))
    if type(value) in (list, dict):
        # A JSON column's value: it reaches PostgreSQL wrapped by psycopg (Jsonb), the
        # wrapper holding this very object; SQLite gets it as text (not prepared).
        token = f"Kay-Prepared-{secrets.token_hex(12)}"
        return [token] if type(value) is list else {"Kay-Prepared": token}
    raise _NotPreparable(f"values of type {type(value).__name__} are not prepared")


def _holds(param: Any, stand_in: Any) -> bool:
    """``param`` is ``stand_in`` as compiled: itself, or a JSON stand-in in its wrapper."""
    if type(stand_in) in (list, dict):
        return isinstance(param, _JsonWrapper) and param.obj is stand_in
    return isinstance(param, type(stand_in)) and param == stand_in


_UNSET: Any = object()  # not compiled yet
# psycopg's int wrappers (Django sends an int in an expression as one): the values each
# holds, bound in binary as prepared statements are.
_INT_LIMITS = {"Int2": 2**15, "Int4": 2**31, "Int8": 2**63}


def _stand_ins_for(values: dict[str, Any]) -> dict[str, Any]:
    """A stand-in for each value; ``None`` stays ``None`` (it shapes the SQL: a statement
    compiled for it holds no slot for it)."""
    return {name: None if value is None else _stand_in(value) for name, value in values.items()}


@dataclass(frozen=True)
class _Statement:
    """SQL compiled with stand-ins, and where each argument's value goes."""

    sql: str
    params: tuple[Any, ...]
    slots: dict[str, tuple[int, ...]]  # argument → its positions among the parameters
    types: dict[str, type]

    def fits(self, values: dict[str, Any]) -> bool:
        """Each value of the type its stand-in had (a str id, an int subclass: the ORM), a
        datetime aware (the ORM makes a naive one aware in ``TIME_ZONE``), an int within
        the range of the type it is sent as (bound server-side, past it would wrap)."""
        for name, value in values.items():
            if type(value) is not self.types[name]:
                return False
            if isinstance(value, datetime) and value.tzinfo is None:
                return False
            if type(value) is int:
                for position in self.slots[name]:
                    limit = _INT_LIMITS.get(type(self.params[position]).__name__)
                    if limit is not None and not -limit <= value < limit:
                        return False
        return True

    def bind(self, values: dict[str, Any]) -> list[Any]:
        bound = list(self.params)
        for name, positions in self.slots.items():
            value = values[name]
            for position in positions:
                # Wrapped as its stand-in was: an int in an expression reaches psycopg as
                # its Int4 or Int8, typed for PostgreSQL; a JSON value in a copy of the
                # field's wrapper (with the field's encoder).
                param = bound[position]
                if isinstance(param, _JsonWrapper):
                    wrapped = copy.copy(param)
                    wrapped.obj = value
                    bound[position] = wrapped
                else:
                    kind = type(param)
                    bound[position] = value if kind is type(value) else kind(value)
        return bound


@dataclass(frozen=True)
class _Read(_Statement):
    compiler: SQLCompiler
    iterable: type
    for_update: bool
    # Worked out once with the SQL, not at every run: the columns' converters (the ORM
    # gathers them per query: 0.3 ms for the run's claim) and how rows become models.
    converters: dict[int, Any]
    models: _ModelShape | None


@dataclass(frozen=True)
class _ModelShape:
    """How a row becomes a model instance, as Django's ModelIterable works it out per
    query (select_related and annotations included)."""

    model: type[Model]
    start: int
    end: int
    init_list: list[str]
    populators: list[Any]
    annotations: dict[str, int]

    @classmethod
    def of(cls, compiler: SQLCompiler) -> _ModelShape:
        select, klass_info = compiler.select, compiler.klass_info
        assert klass_info is not None
        start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
        return cls(
            model=klass_info["model"],
            start=start,
            end=end,
            init_list=[column[0].target.attname for column in select[start:end]],
            populators=get_related_populators(klass_info, select, DEFAULT_DB_ALIAS),  # type: ignore[call-arg]
            annotations=dict(compiler.annotation_col_map or {}),
        )

    def build(self, rows: Any) -> list[Any]:
        objects = []
        for row in rows:
            obj = self.model.from_db(DEFAULT_DB_ALIAS, self.init_list, row[self.start : self.end])
            for populator in self.populators:
                populator.populate(row, obj)
            for name, position in self.annotations.items():
                setattr(obj, name, row[position])
            objects.append(obj)
        return objects


class _Prepared:
    """What the prepared statements share: compiled once from ``build``'s stand-ins (or
    found not preparable: None), forgotten on a settings change. Arguments given as
    ``None`` compile a statement of their own (``IS NULL``, ``= NULL``), once per set of
    such arguments."""

    def __init__(self, build: Callable[..., Any]) -> None:
        self._build = build
        self._names = tuple(inspect.signature(build).parameters)
        self._compiled: dict[tuple[str, ...], Any] = {}
        _ALL.append(self)

    def forget(self) -> None:
        self._compiled = {}

    def _statement_for(self, values: dict[str, Any]) -> Any:
        """The compiled statement these values can run with, else None (the ORM)."""
        if set(values) != set(self._names):
            raise TypeError(f"expected the values {self._names}, got {tuple(values)}")
        nones = tuple(name for name in self._names if values[name] is None)
        statement = self._compiled.get(nones, _UNSET)
        if statement is _UNSET:
            statement = self._compiled[nones] = self._compile(values)
        given = {name: value for name, value in values.items() if value is not None}
        return statement if statement is not None and statement.fits(given) else None

    def _compile(self, values: dict[str, Any]) -> _Statement | None:
        try:
            first, second = self._stand_ins(values), self._stand_ins(values)
        except _NotPreparable:
            return None
        except Exception:  # EmptyResultSet and the like: the ORM decides, every time
            logger.warning("a prepared statement could not be compiled", exc_info=True)
            return None
        return first if _same_but_the_values(first, second) else None

    def _stand_ins(self, values: dict[str, Any]) -> _Statement:
        raise NotImplementedError


class PreparedQuery(_Prepared, Generic[R]):
    """``build(**values)``'s queryset, compiled once and run with new values (see the
    module's docstring)."""

    def __init__(self, build: Callable[..., QuerySet[Any, R]]) -> None:
        super().__init__(build)

    def all(self, **values: Any) -> list[R]:
        """The queryset's rows (model instances, or tuples / values for ``values_list``)."""
        statement = self._statement_for(values)
        if statement is None:
            return list(self._build(**values))
        return self._run(statement, values)

    def first(self, **values: Any) -> R | None:
        """The first row, or None (build a queryset sliced to ``[:1]`` for this)."""
        rows = self.all(**values)
        return rows[0] if rows else None

    def _stand_ins(self, values: dict[str, Any]) -> _Read:
        stand_ins = _stand_ins_for(values)
        queryset = self._build(**stand_ins)
        if queryset.db != DEFAULT_DB_ALIAS:
            raise _NotPreparable("Kay has one database")
        if queryset._iterable_class not in (
            ModelIterable,
            ValuesListIterable,
            FlatValuesListIterable,
        ):
            raise _NotPreparable("only model rows and values_list are prepared")
        if queryset._known_related_objects or queryset._prefetch_related_lookups:  # type: ignore[attr-defined]
            raise _NotPreparable("related objects are not prepared")
        compiler = queryset.query.get_compiler(using=DEFAULT_DB_ALIAS)
        for_update = bool(queryset.query.select_for_update)
        # as_sql refuses FOR UPDATE outside a transaction; each run checks it instead.
        with transaction.atomic() if for_update else nullcontext():
            sql, params = compiler.as_sql()
        params = tuple(params)
        fields = [column[0] for column in compiler.select[0 : compiler.col_count]]
        if compiler.has_composite_fields(fields):
            raise _NotPreparable("composite fields are not prepared")
        iterable = queryset._iterable_class
        return _Read(
            sql,
            params,
            _slots(params, stand_ins),
            _types(stand_ins),
            compiler,
            iterable,
            for_update,
            compiler.get_converters(fields),
            _ModelShape.of(compiler) if iterable is ModelIterable else None,
        )

    def _run(self, statement: _Read, values: dict[str, Any]) -> list[Any]:
        connection = connections[DEFAULT_DB_ALIAS]
        if statement.for_update and connection.get_autocommit():
            raise TransactionManagementError(
                "select_for_update cannot be used outside of a transaction."
            )
        sql, params = statement.sql, statement.bind(values)
        compiler = copy.copy(statement.compiler)
        compiler.connection = connection
        compiler.as_sql = lambda *args, **kwargs: (sql, params)  # type: ignore[method-assign,assignment]
        with server_prepared(connection):
            rows: Any = chain.from_iterable(compiler.execute_sql())  # type: ignore[arg-type]
        if statement.converters:  # each given this run's connection, as the ORM does
            rows = compiler.apply_converters(rows, statement.converters)
        if statement.iterable is FlatValuesListIterable:
            return [row[0] for row in rows]
        if statement.iterable is ValuesListIterable:
            return [tuple(row) for row in rows]
        assert statement.models is not None
        return statement.models.build(rows)


def _same_but_the_values(first: _Statement, second: _Statement) -> bool:
    """Two compiles with different stand-ins differ only in the slots: a parameter outside
    them that changed holds a value in another form (``x`` and ``x%`` both used), which
    would stay frozen at its stand-in."""
    if (first.sql, first.slots, len(first.params)) != (
        second.sql,
        second.slots,
        len(second.params),
    ):
        return False
    taken = {position for positions in first.slots.values() for position in positions}
    return all(
        a == b
        for i, (a, b) in enumerate(zip(first.params, second.params, strict=True))
        if i not in taken
    )


def _slots(params: tuple[Any, ...], stand_ins: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Where each stand-in went among the compiled parameters (it must go somewhere)."""
    slots = {}
    for name, stand_in in stand_ins.items():
        if stand_in is None:
            continue  # compiled into the SQL (IS NULL, = NULL)
        at = tuple(i for i, p in enumerate(params) if _holds(p, stand_in))
        if not at:
            raise _NotPreparable(f"{name} does not reach the SQL as given")
        slots[name] = at
    return slots


def _types(stand_ins: dict[str, Any]) -> dict[str, type]:
    return {name: type(value) for name, value in stand_ins.items() if value is not None}


class PreparedUpdate(_Prepared):
    """``queryset.update(**fields)`` compiled once, as ``PreparedQuery`` compiles a read:
    ``build(**values)`` returns the queryset and the fields to set. Only an update of the
    queryset's own table is prepared (values may be expressions, ``F("n") + n`` say, as long
    as each argument still reaches the SQL as a parameter); else it runs through the ORM.
    ``run`` returns the number of rows."""

    def __init__(self, build: Callable[..., tuple[QuerySet[Any], dict[str, Any]]]) -> None:
        super().__init__(build)

    def run(self, **values: Any) -> int:
        statement = self._statement_for(values)
        if statement is None:
            queryset, fields = self._build(**values)
            return int(queryset.update(**fields))
        connection = connections[DEFAULT_DB_ALIAS]
        with (
            transaction.mark_for_rollback_on_error(DEFAULT_DB_ALIAS),
            server_prepared(connection),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement.sql, statement.bind(values))
            return int(cursor.rowcount)

    def _stand_ins(self, values: dict[str, Any]) -> _Statement:
        stand_ins = _stand_ins_for(values)
        queryset, fields = self._build(**stand_ins)
        if queryset.db != DEFAULT_DB_ALIAS:
            raise _NotPreparable("Kay has one database")
        base = queryset.query
        if base.is_sliced or base.distinct or base.combinator or base.select_for_update:
            raise _NotPreparable("the ORM refuses or changes such an update")
        query = cast(UpdateQuery, base.chain(UpdateQuery))
        query.add_update_values(fields)
        query.annotations = {}
        if getattr(query, "related_updates", None) or query.count_active_tables() > 1:
            raise _NotPreparable("only updates of the queryset's own table are prepared")
        sql, params = query.get_compiler(DEFAULT_DB_ALIAS).as_sql()
        params = tuple(params)
        return _Statement(sql, params, _slots(params, stand_ins), _types(stand_ins))


class PreparedSave(Generic[M]):
    """``obj.save(update_fields=fields)`` compiled once: the UPDATE of those columns of the
    object's row (``PreparedUpdate``), each value as its field would save it. A model with
    save receivers or its own ``save()`` is saved through the ORM; so is a value the
    statement cannot take (``PreparedUpdate``'s rules). As ``save`` does, a row no longer
    there is an error."""

    def __init__(self, model: type[M], fields: tuple[str, ...]) -> None:
        self._model = model
        self._names = fields
        self._fields = [cast(Field, model._meta.get_field(name)) for name in fields]
        if any(not getattr(f, "concrete", False) or f.primary_key for f in self._fields):
            raise ValueError("only concrete columns other than the key are saved")
        attnames = [f.attname for f in self._fields]

        def build(**values: Any) -> tuple[QuerySet[Any], dict[str, Any]]:
            pk = values.pop("pk")
            return model._default_manager.filter(pk=pk), values

        build.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY) for n in ("pk", *attnames)]
        )
        self._update = PreparedUpdate(build)

    def save(self, obj: M) -> None:
        if _has_save_receivers(self._model) or self._model.save is not Model.save:
            obj.save(update_fields=self._names)
            return
        # What save() checks first: an unsaved related object refused, one saved since
        # it was set read again.
        obj._prepare_related_fields_for_save(operation_name="save")  # type: ignore[attr-defined]
        values = {f.attname: _plain(f.pre_save(obj, False)) for f in self._fields}
        with transaction.mark_for_rollback_on_error(DEFAULT_DB_ALIAS):
            if not self._update.run(pk=obj.pk, **values):
                raise DatabaseError("Save with update_fields did not affect any rows.")


def _plain(value: Any) -> Any:
    """A choices member (``Status.COMPLETED``) as its plain str or int: a statement takes
    values of its stand-ins' exact types, the ORM's anything."""
    if isinstance(value, str) and type(value) is not str:
        return str.__str__(value)
    if isinstance(value, int) and not isinstance(value, bool) and type(value) is not int:
        return int(value)
    return value


def _has_save_receivers(model: type[Model]) -> bool:
    return pre_save.has_listeners(model) or post_save.has_listeners(model)


def first_row(queryset: QuerySet[Any, R]) -> QuerySet[Any, R]:
    """The queryset ``QuerySet.first()`` runs, to prepare: ordered (by pk unless it is)
    and sliced to one row."""
    return (queryset if queryset.ordered else queryset.order_by("pk"))[:1]


def _forget_all(**_kwargs: Any) -> None:
    for query in _ALL:
        query.forget()


setting_changed.connect(_forget_all, dispatch_uid="core.prepared.forget")
