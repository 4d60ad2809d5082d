"""Reads of usage, always scoped to their owner: another user's key or project id as a
filter matches nothing.

Day views read the daily rollup, hour views the buckets; either way a summary is three
queries, whatever the number of keys, models or buckets.

Counted once. A call Kay makes with a user's stored key is metered (source
``kay_metered``, kept for billing) and may also be in the provider's own report of that
key. Every read here goes through :func:`_counted`: the provider's report wins for a key
it reports (a *covered* key, see :func:`_covered_keys`), so Kay's metered usage of a
covered key is left out of every figure, for all of its history, while the key stays
covered. Calls on the server's key (no stored key) always count.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import reduce
from operator import or_
from typing import Any

from django.db.models import F, Q, QuerySet, Sum
from django.db.models.functions import TruncHour

from accounts.models import User
from core.errors import ApplicationError, NotFound
from core.ids import parse_id
from keys.models import ApiKey
from usage.models import Budget, ExternalKeyLink, Granularity, Source, UsageBucket, UsageDaily
from usage.providers import FETCHED
from usage.providers.openrouter import PROVIDER as OPENROUTER

FIGURES = ("input_tokens", "output_tokens", "cached_tokens", "requests", "cost_micros")
# Longest periods one summary covers: hourly points over a month are 744 per model.
MAX_DAYS = {Granularity.DAY: 366, Granularity.HOUR: 31}


@dataclass
class Figures:
    cost_micros: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    requests: int = 0

    @classmethod
    def of(cls, row: dict[str, Any]) -> Figures:
        return cls(**{name: int(row.get(name) or 0) for name in FIGURES})

    def add(self, other: Figures) -> None:
        for name in FIGURES:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass
class SeriesPoint:
    start: datetime  # the hour's or the day's start, UTC
    provider: str
    model: str
    figures: Figures


@dataclass
class ModelLine:
    provider: str
    model: str
    figures: Figures = field(default_factory=Figures)


@dataclass
class ProviderLine:
    provider: str
    figures: Figures = field(default_factory=Figures)


@dataclass
class KeyLine:
    key_id: int | None  # None: usage no stored key of the owner's is known to have made
    name: str
    provider: str
    masked_key: str
    figures: Figures = field(default_factory=Figures)


@dataclass
class ProjectLine:
    project_id: int | None  # None: keys in no project, or no stored key at all
    name: str
    figures: Figures = field(default_factory=Figures)


@dataclass
class UsageSummary:
    start: date
    end: date  # inclusive
    granularity: str
    totals: Figures
    previous: Figures  # the period of the same length just before
    series: list[SeriesPoint]
    by_model: list[ModelLine]
    by_provider: list[ProviderLine]
    by_key: list[KeyLine]
    by_project: list[ProjectLine]


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


@dataclass(frozen=True)
class _Filters:
    project_id: int | None
    key_id: int | None
    provider: str | None
    model: str | None

    def apply(self, rows: QuerySet[Any]) -> QuerySet[Any]:
        wanted = Q()
        if self.project_id is not None:
            wanted &= Q(project_id=self.project_id)
        if self.key_id is not None:
            wanted &= Q(api_key_id=self.key_id)
        if self.provider:
            wanted &= Q(provider=self.provider)
        if self.model:
            wanted &= Q(model=self.model)
        return rows.filter(wanted)


def _covered_keys(owner: User) -> QuerySet[ApiKey, Any]:
    """The owner's stored keys whose usage a provider reports (a subquery, never run on
    its own): keys an admin key's organisation usage was attributed to (an
    ``ExternalKeyLink``), and OpenRouter keys fetched successfully at least once (their
    ``/key`` spend, and a management key's account activity, include every call made
    with them)."""
    linked = ExternalKeyLink.objects.filter(owner=owner).values("api_key_id")
    return ApiKey.objects.filter(
        Q(pk__in=linked) | Q(provider=OPENROUTER, usage_fetch_state__cursor__isnull=False),
        owner=owner,
    ).values("pk")


def _counted(rows: QuerySet[Any], owner: User) -> QuerySet[Any]:
    """``rows`` (the owner's buckets or rollup rows) less Kay's metered usage of keys a
    provider reports: the one rule every usage figure follows (see the module's doc).

    One subquery, no query of its own. Rows with no stored key (the server's key) stay:
    on a nullable column Django's ``exclude`` adds ``api_key_id IS NOT NULL`` inside the
    NOT, so a NULL key never makes the condition unknown."""
    return rows.exclude(source=Source.KAY_METERED, api_key_id__in=_covered_keys(owner))


def _period(granularity: str, owner: User, start: date, end: date) -> QuerySet[Any]:
    """The owner's counted rows (:func:`_counted`) from ``start`` to ``end`` (inclusive)
    at the table ``granularity`` reads."""
    rows: QuerySet[Any]
    if granularity == Granularity.DAY:
        rows = UsageDaily.objects.filter(owner=owner, day__gte=start, day__lte=end)
    else:
        rows = UsageBucket.objects.filter(
            owner=owner,
            bucket_start__gte=_midnight(start),
            bucket_start__lt=_midnight(end + timedelta(days=1)),
        )
    return _counted(rows, owner)


def _sums() -> dict[str, Sum]:
    return {name: Sum(name) for name in FIGURES}


def _by_cost(lines: Iterable[Any]) -> list[Any]:
    return sorted(lines, key=lambda line: (-line.figures.cost_micros, -line.figures.tokens))


def usage_summary(
    *,
    owner: User,
    start: date,
    end: date,
    granularity: str,
    project_id: int | None = None,
    key_id: int | None = None,
    provider: str | None = None,
    model: str | None = None,
) -> UsageSummary:
    """The owner's usage from ``start`` to ``end`` (UTC days, inclusive): totals, the same
    for the period of equal length before, a series per time bucket and model, and
    breakdowns by model, provider, key and project (largest cost first). Three queries."""
    if granularity not in Granularity.values:
        raise ApplicationError(
            "Granularity is day or hour.", fields={"granularity": ["Choose day or hour."]}
        )
    if end < start:
        raise ApplicationError(
            "The period ends before it starts.", fields={"end": ["Must not be before start."]}
        )
    days = (end - start).days + 1
    if days > MAX_DAYS[Granularity(granularity)]:
        limit = MAX_DAYS[Granularity(granularity)]
        raise ApplicationError(
            f"A {granularity}ly summary covers at most {limit} days.",
            fields={"end": [f"Choose a period of at most {limit} days."]},
        )
    filters = _Filters(project_id, key_id, provider, model)
    current = filters.apply(_period(granularity, owner, start, end))
    before = start - timedelta(days=days)
    previous_rows = filters.apply(_period(granularity, owner, before, start - timedelta(days=1)))

    if granularity == Granularity.DAY:
        timed = current.values("day", "provider", "model")
    else:
        timed = current.annotate(hour=TruncHour("bucket_start", tzinfo=UTC)).values(
            "hour", "provider", "model"
        )
    series: list[SeriesPoint] = []
    models: dict[tuple[str, str], ModelLine] = {}
    providers: dict[str, ProviderLine] = {}
    totals = Figures()
    for row in timed.annotate(**_sums()).order_by():
        moment = _midnight(row["day"]) if "day" in row else row["hour"].astimezone(UTC)
        figures = Figures.of(row)
        series.append(SeriesPoint(moment, row["provider"], row["model"], figures))
        pair = (row["provider"], row["model"])
        models.setdefault(pair, ModelLine(*pair)).figures.add(figures)
        providers.setdefault(row["provider"], ProviderLine(row["provider"])).figures.add(figures)
        totals.add(figures)
    series.sort(key=lambda point: (point.start, point.provider, point.model))

    keys: dict[int | None, KeyLine] = {}
    projects: dict[int | None, ProjectLine] = {}
    attributed = current.values(
        "api_key_id",
        "api_key__name",
        "api_key__provider",
        "api_key__masked_key",
        "project_id",
        "project__name",
    )
    for row in attributed.annotate(**_sums()).order_by():
        figures = Figures.of(row)
        key = keys.setdefault(
            row["api_key_id"],
            KeyLine(
                row["api_key_id"],
                row["api_key__name"] or "",
                row["api_key__provider"] or "",
                row["api_key__masked_key"] or "",
            ),
        )
        key.figures.add(figures)
        project = projects.setdefault(
            row["project_id"], ProjectLine(row["project_id"], row["project__name"] or "")
        )
        project.figures.add(figures)

    return UsageSummary(
        start=start,
        end=end,
        granularity=granularity,
        totals=totals,
        previous=Figures.of(previous_rows.aggregate(**_sums())),
        series=series,
        by_model=_by_cost(models.values()),
        by_provider=_by_cost(providers.values()),
        by_key=_by_cost(keys.values()),
        by_project=_by_cost(projects.values()),
    )


# Keys whose provider reports usage (the kinds a fetcher exists for).
FETCHABLE_KEYS = reduce(
    or_, (Q(provider=provider, kind=kind) for provider, kind in sorted(FETCHED))
)


def usage_fetchable_keys(*, owner: User) -> list[ApiKey]:
    """The owner's keys Kay fetches usage with, oldest first, each annotated with where
    its fetch stands (``fetched_at``, ``fetch_status``, ``fetch_error``: ``None`` before
    the first fetch). One query."""
    keys = ApiKey.objects.filter(FETCHABLE_KEYS, owner=owner).annotate(
        fetched_at=F("usage_fetch_state__last_fetched_at"),
        fetch_status=F("usage_fetch_state__last_status"),
        fetch_error=F("usage_fetch_state__last_error"),
    )
    return list(keys.order_by("created_at", "pk"))


def usage_exists(*, owner: User) -> bool:
    """Whether the owner has any usage stored at all (the Usage page's first-run state)."""
    return UsageDaily.objects.filter(owner=owner).exists()


# --- Budgets -------------------------------------------------------------------------------


def month_start(day: date) -> date:
    return day.replace(day=1)


def _next_month(month: date) -> date:
    return (month.replace(day=28) + timedelta(days=4)).replace(day=1)


@dataclass
class BudgetState:
    """One budget and what its project or key spent in ``month`` (UTC)."""

    budget_id: int
    scope: str  # "project" or "key"
    name: str
    project_id: int | None
    key_id: int | None
    limit_micros: int
    spent_micros: int
    month: date

    @property
    def limit_usd(self) -> Decimal:
        return Decimal(self.limit_micros) / 1_000_000

    @property
    def spent_usd(self) -> Decimal:
        return Decimal(self.spent_micros) / 1_000_000

    @property
    def ratio(self) -> float:
        return self.spent_micros / self.limit_micros if self.limit_micros else 0.0

    @property
    def percent(self) -> int:
        """The share spent in whole percent, rounded down (79.9 % shows as 79)."""
        return self.spent_micros * 100 // self.limit_micros if self.limit_micros else 0

    @property
    def level(self) -> str:
        """``ok``, ``warning`` (at least 80 % spent) or ``exceeded`` (at least 100 %)."""
        if self.spent_micros >= self.limit_micros:
            return "exceeded"
        if self.spent_micros * 10 >= self.limit_micros * 8:
            return "warning"
        return "ok"


def budget_list(*, owner: User) -> QuerySet[Budget]:
    """The owner's budgets with their project or key (one query)."""
    return Budget.objects.filter(owner=owner).select_related("project", "api_key")


def budget_get(*, owner: User, budget_id: Any) -> Budget:
    """One of the owner's budgets, or ``NotFound``."""
    pk = parse_id(budget_id)
    budget = budget_list(owner=owner).filter(pk=pk).first() if pk is not None else None
    if budget is None:
        raise NotFound("Budget not found.")
    return budget


def budget_states(*, owner: User, month: date) -> list[BudgetState]:
    """The spend of each of the owner's budgets in ``month`` (any day of it), from the
    daily rollup counted once (:func:`_counted`): two queries whatever the number of
    budgets (one when there are none)."""
    budgets = list(budget_list(owner=owner))
    if not budgets:
        return []
    first = month_start(month)
    project_ids = {b.project_id for b in budgets if b.project_id is not None}
    key_ids = {b.api_key_id for b in budgets if b.api_key_id is not None}
    month_rows = UsageDaily.objects.filter(owner=owner, day__gte=first, day__lt=_next_month(first))
    rows = (
        _counted(month_rows, owner)
        .filter(Q(project_id__in=project_ids) | Q(api_key_id__in=key_ids))
        .values("project_id", "api_key_id")
        .annotate(spent=Sum("cost_micros"))
        .order_by()
    )
    by_project: dict[int, int] = {}
    by_key: dict[int, int] = {}
    for row in rows:
        spent = int(row["spent"] or 0)
        if row["project_id"] is not None:
            by_project[row["project_id"]] = by_project.get(row["project_id"], 0) + spent
        if row["api_key_id"] is not None:
            by_key[row["api_key_id"]] = by_key.get(row["api_key_id"], 0) + spent
    states = []
    for budget in budgets:
        if budget.project is not None:
            scope, name = "project", budget.project.name
            spent = by_project.get(budget.project.pk, 0)
        else:
            assert budget.api_key is not None  # usage_budget_one_scope
            scope, name = "key", budget.api_key.name
            spent = by_key.get(budget.api_key.pk, 0)
        states.append(
            BudgetState(
                budget_id=budget.pk,
                scope=scope,
                name=name,
                project_id=budget.project_id,
                key_id=budget.api_key_id,
                limit_micros=budget.monthly_limit_micros,
                spent_micros=spent,
                month=first,
            )
        )
    return states


def budget_warnings(*, owner: User, month: date) -> list[BudgetState]:
    """The owner's budgets at 80 % or more in ``month``, most spent first: what the
    dashboard banner shows. One cheap query for an owner without budgets."""
    states = budget_states(owner=owner, month=month)
    return sorted((s for s in states if s.level != "ok"), key=lambda s: -s.ratio)
