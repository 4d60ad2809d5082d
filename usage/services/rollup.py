"""What every usage write shares: one writer per owner at a time, and the daily rollup
rewritten from the buckets it touched."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

from django.db import connection
from django.db.models import Sum
from django.db.models.functions import TruncDate

from usage.models import UsageBucket, UsageDaily

FIGURES = ("input_tokens", "output_tokens", "cached_tokens", "requests", "cost_micros")
# What a rollup row sums over (with its owner and source).
GROUPS = ("day", "provider", "model", "api_key_id", "project_id")
# pg_advisory_xact_lock's first key: usage writers, apart from any other lock Kay takes.
LOCK_NAMESPACE = 0x75736167  # "usag"


def owner_lock(owner_id: int) -> None:
    """Wait until no other transaction writes this owner's usage; held until commit.

    The rollup is rewritten from the buckets a transaction sees, and a bucket's cost
    precedence is decided from what is stored: both are right only if no other writer of
    the same owner commits in between. Inside ``transaction.atomic`` only. SQLite needs
    nothing: Kay opens its transactions IMMEDIATE, so writers take turns already."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # Two int4 keys; owners whose ids collide modulo 2**31 only take turns.
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_NAMESPACE, owner_id % 2**31]
            )


def day_span(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def rollup_rewrite(
    *, owner_id: int, source: str, days: Iterable[date], pairs: Iterable[tuple[str, str]]
) -> None:
    """Rewrite the owner's rollup rows of ``source`` on ``days`` for these (provider,
    model) pairs from the buckets: two statements, right however often it runs. Call
    under :func:`owner_lock`."""
    days, pairs = sorted(set(days)), set(pairs)
    if not days or not pairs:
        return
    providers = {provider for provider, _ in pairs}
    models = {model for _, model in pairs}
    # Rows of other pairs made of these providers and models are rewritten too: the same
    # sums again, in exchange for two IN lists instead of a long OR.
    UsageDaily.objects.filter(
        owner_id=owner_id, source=source, day__in=days, provider__in=providers, model__in=models
    ).delete()
    sums = (
        UsageBucket.objects.filter(
            owner_id=owner_id,
            source=source,
            provider__in=providers,
            model__in=models,
            bucket_start__gte=day_span(days[0])[0],
            bucket_start__lt=day_span(days[-1])[1],
        )
        .annotate(day=TruncDate("bucket_start", tzinfo=UTC))
        .filter(day__in=days)
        .values(*GROUPS)
        .annotate(**{name: Sum(name) for name in FIGURES})
        .order_by()
    )
    # Summed and inserted by the database in one statement: the sums never come to Python.
    select, params = sums.query.sql_with_params()
    quote = connection.ops.quote_name
    columns = ", ".join(quote(name) for name in (*GROUPS, *FIGURES))
    with connection.cursor() as cursor:
        # Quoted names and Django's own compiled SELECT; every value is a parameter.
        cursor.execute(
            f"INSERT INTO {quote(UsageDaily._meta.db_table)} "  # noqa: S608
            f"({quote('owner_id')}, {quote('source')}, {columns}) "
            f"SELECT %s, %s, {columns} FROM ({select}) AS sums",
            [owner_id, source, *params],
        )
