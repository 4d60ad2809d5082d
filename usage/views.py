"""The Usage page (/dashboard/usage/), its CSV and "Fetch now". Thin: the filter form,
owner-scoped reads, one service."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from accounts.authentication import user_of
from accounts.models import User
from core.errors import ApplicationError, NotFound
from core.views import redirect_back
from keys import selectors as key_selectors
from keys.models import ApiKey, Project
from keys.providers import PROVIDERS
from usage.exports import usage_csv, usage_csv_filename
from usage.forms import BudgetForm, UsageFilterForm
from usage.models import Granularity, UsageFetchState
from usage.selectors import (
    MAX_DAYS,
    Figures,
    UsageSummary,
    budget_get,
    budget_states,
    usage_exists,
    usage_fetchable_keys,
    usage_summary,
)
from usage.services.budgets import budget_delete, budget_set
from usage.services.fetch_now import usage_fetch_enqueue
from usage.templatetags.usage_figures import dollars

TEMPLATE = "usage/usage.html"
# Okabe-Ito: told apart with the common colour-vision deficiencies. Models past the
# seventh share the grey "Other models" layer (the model table lists each one).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#F0E442")
OTHER_COLOUR = "#7F7F7F"
FILTERS = ("project_id", "key_id", "provider", "model")
METRICS = (("cost", "Cost"), ("tokens", "Tokens"), ("requests", "Requests"))
METRIC_NAMES = {name for name, _ in METRICS}
QUICK_RANGES = ("Last 7 days", "Last 30 days", "This month", "Last month")


def _today() -> date:
    return datetime.now(UTC).date()


def _link(params: QueryDict, **changes: str) -> str:
    """The page's URL with the current filters, some of them changed."""
    query = params.copy()
    for name, value in changes.items():
        query[name] = value
    return f"{reverse('usage:page')}?{query.urlencode()}"


def _quick_ranges(params: QueryDict, start: date, end: date, today: date) -> list[dict[str, Any]]:
    first = today.replace(day=1)
    last_month_end = first - timedelta(days=1)
    spans = (
        (today - timedelta(days=6), today),
        (today - timedelta(days=29), today),
        (first, today),
        (last_month_end.replace(day=1), last_month_end),
    )
    ranges = []
    for label, (span_start, span_end) in zip(QUICK_RANGES, spans, strict=True):
        changes = {"start": span_start.isoformat(), "end": span_end.isoformat()}
        if (span_end - span_start).days + 1 > MAX_DAYS[Granularity.HOUR]:
            changes["granularity"] = Granularity.DAY
        ranges.append(
            {
                "label": label,
                "url": _link(params, **changes),
                "current": (span_start, span_end) == (start, end),
            }
        )
    return ranges


@dataclass(frozen=True)
class Change:
    """A figure against the previous period: ``up``, ``down``, ``flat`` or ``new``."""

    direction: str
    percent: int = 0

    @classmethod
    def of(cls, current: int, previous: int) -> Change:
        if previous == 0:
            return cls("flat") if current == 0 else cls("new")
        percent = round((current - previous) * 100 / previous)
        if percent == 0:
            return cls("flat")
        return cls("up" if percent > 0 else "down", abs(percent))


def _totals(summary: UsageSummary) -> list[dict[str, Any]]:
    now, before = summary.totals, summary.previous
    return [
        {
            "name": "Cost",
            "value": now.cost_micros,
            "money": True,
            "change": Change.of(now.cost_micros, before.cost_micros),
        },
        {
            "name": "Tokens",
            "value": now.tokens,
            "detail": f"{now.input_tokens:,} in ({now.cached_tokens:,} cached) · "
            f"{now.output_tokens:,} out",
            "change": Change.of(now.tokens, before.tokens),
        },
        {
            "name": "Requests",
            "value": now.requests,
            "change": Change.of(now.requests, before.requests),
        },
    ]


def _projection(
    *, owner: User, filters: dict[str, Any], summary: UsageSummary, today: date
) -> dict[str, Any]:
    """This month's spend so far (same filters, dates aside), divided by the days
    elapsed (today included), times the days in the month."""
    first = today.replace(day=1)
    if (summary.start, summary.end) == (first, today):
        spent = summary.totals.cost_micros
    else:
        dated = {**filters, "start": first, "end": today, "granularity": Granularity.DAY}
        spent = usage_summary(owner=owner, **dated).totals.cost_micros
    days = calendar.monthrange(today.year, today.month)[1]
    return {
        "month": first,
        "spent": spent,
        "elapsed": today.day,
        "days": days,
        "projected": spent * days // today.day,
    }


def _moments(summary: UsageSummary) -> list[datetime]:
    """Every bucket start of the period, so days or hours without usage chart as zero."""
    step = timedelta(days=1) if summary.granularity == Granularity.DAY else timedelta(hours=1)
    start = datetime(summary.start.year, summary.start.month, summary.start.day, tzinfo=UTC)
    end = datetime(summary.end.year, summary.end.month, summary.end.day, tzinfo=UTC)
    count = ((end - start) + timedelta(days=1)) // step
    return [start + step * index for index in range(count)]


def _chart(summary: UsageSummary) -> dict[str, Any]:
    """The series as Chart.js wants it: one layer per model (largest cost first, the
    rest as "Other models"), a value per bucket for each metric."""
    moments = _moments(summary)
    index = {moment: position for position, moment in enumerate(moments)}
    shown = [(line.provider, line.model) for line in summary.by_model[: len(PALETTE)]]
    layers: dict[tuple[str, str] | None, dict[str, Any]] = {}
    for position, (provider, model) in enumerate(shown):
        label = f"{model or '(model not reported)'} · {_provider_label(provider)}"
        layers[(provider, model)] = {"label": label, "color": PALETTE[position]}
    if len(summary.by_model) > len(shown):
        layers[None] = {"label": "Other models", "color": OTHER_COLOUR}
    for layer in layers.values():
        layer.update(
            cost=[0.0] * len(moments), tokens=[0] * len(moments), requests=[0] * len(moments)
        )
    for point in summary.series:
        pair = (point.provider, point.model)
        layer = layers[pair if pair in layers else None]
        at = index[point.start]
        layer["cost"][at] = round(layer["cost"][at] + point.figures.cost_micros / 1_000_000, 6)
        layer["tokens"][at] += point.figures.tokens
        layer["requests"][at] += point.figures.requests
    return {
        "granularity": summary.granularity,
        "labels": [moment.isoformat().replace("+00:00", "Z") for moment in moments],
        "series": list(layers.values()),
    }


def _buckets(summary: UsageSummary) -> list[tuple[datetime, Figures]]:
    """The chart's figures per bucket, all models together: its table alternative."""
    sums: dict[datetime, Figures] = {}
    for point in summary.series:
        sums.setdefault(point.start, Figures()).add(point.figures)
    return sorted(sums.items())


def _chart_label(summary: UsageSummary) -> str:
    """What the chart shows, for screen readers (the script rewrites it per metric)."""
    step = "Hourly" if summary.granularity == Granularity.HOUR else "Daily"
    models = len(summary.by_model)
    return (
        f"{step} cost from {summary.start:%-d %b %Y} to {summary.end:%-d %b %Y}, stacked by "
        f"model. Total {dollars(summary.totals.cost_micros)} across {models} "
        f"model{'s' if models != 1 else ''}."
    )


def _breakdowns(params: QueryDict, summary: UsageSummary) -> list[dict[str, Any]]:
    """The four tables: each row names its line, links to it as a filter when it can be
    one, and carries its figures and share of the cost."""
    total = summary.totals.cost_micros

    def row(name: str, figures: Figures, url: str = "", detail: str = "") -> dict[str, Any]:
        share = round(figures.cost_micros * 100 / total) if total else 0
        return {"name": name, "detail": detail, "url": url, "figures": figures, "share": share}

    models = [
        row(
            line.model or "(model not reported)",
            line.figures,
            _link(params, model=line.model, provider=line.provider) if line.model else "",
            _provider_label(line.provider),
        )
        for line in summary.by_model
    ]
    providers = [
        row(_provider_label(line.provider), line.figures, _link(params, provider=line.provider))
        for line in summary.by_provider
    ]
    keys = [
        row(line.name, line.figures, _link(params, key_id=str(line.key_id)), line.masked_key)
        if line.key_id is not None
        else row("Not one of your stored keys", line.figures)
        for line in summary.by_key
    ]
    projects = [
        row(line.name, line.figures, _link(params, project_id=str(line.project_id)))
        if line.project_id is not None
        else row("No project", line.figures)
        for line in summary.by_project
    ]
    # Models and keys have long names and get the full width with every figure; providers
    # and projects sit side by side with tokens in one column.
    return [
        {"slug": "model", "title": "model", "rows": models, "wide": True},
        {"slug": "provider", "title": "provider", "rows": providers, "wide": False},
        {"slug": "project", "title": "project", "rows": projects, "wide": False},
        {"slug": "key", "title": "key", "rows": keys, "wide": True},
    ]


BADGES = {
    UsageFetchState.Status.OK: "badge-ok",
    UsageFetchState.Status.ERROR: "badge-warn",
    UsageFetchState.Status.RATE_LIMITED: "badge-warn",
    UsageFetchState.Status.INVALID_KEY: "badge-bad",
}


def _fetch_rows(keys: list[ApiKey]) -> list[dict[str, Any]]:
    rows = []
    for key in keys:
        # Annotated by the selector.
        stored = key.fetch_status  # type: ignore[attr-defined]
        status = UsageFetchState.Status(stored or UsageFetchState.Status.NEVER)
        rows.append({"key": key, "status": status, "badge": BADGES.get(status, "")})
    return rows


def _provider_label(slug: str) -> str:
    spec = PROVIDERS.get(slug)
    return spec.label if spec is not None else slug


def _figures_context(request: HttpRequest, form: UsageFilterForm, today: date) -> dict[str, Any]:
    owner = user_of(request)
    filters = form.summary_kwargs()
    summary = usage_summary(owner=owner, **filters)
    days = (summary.end - summary.start).days + 1
    return {
        "summary": summary,
        "days": days,
        "previous_start": summary.start - timedelta(days=days),
        "previous_end": summary.start - timedelta(days=1),
        "totals": _totals(summary),
        "projection": _projection(owner=owner, filters=filters, summary=summary, today=today),
        "chart": _chart(summary),
        "chart_label": _chart_label(summary),
        "breakdowns": _breakdowns(request.GET, summary),
        "buckets": _buckets(summary),
        "has_usage": bool(summary.series),
        "ranges": _quick_ranges(request.GET, summary.start, summary.end, today),
        "daily_url": _link(request.GET, granularity=Granularity.DAY),
        "hourly_url": _link(request.GET, granularity=Granularity.HOUR),
        "hourly_allowed": days <= MAX_DAYS[Granularity.HOUR],
        "csv_url": f"{reverse('usage:csv')}?{request.GET.urlencode()}",
    }


@login_required
@require_GET
def usage_page(request: HttpRequest) -> HttpResponse:
    owner = user_of(request)
    form = UsageFilterForm(request.GET)
    context: dict[str, Any] = {
        "form": form,
        "fetch_rows": _fetch_rows(usage_fetchable_keys(owner=owner)),
        "projects": list(key_selectors.project_list(owner=owner)),
        "keys": list(key_selectors.api_key_list(owner=owner).order_by("name", "pk")),
        "providers": PROVIDERS.values(),
        "filtered": any(request.GET.get(name) for name in FILTERS),
        "metrics": METRICS,
        # The chart's metric: read by usage.js from the URL, checked here for the switch.
        "metric": metric if (metric := request.GET.get("metric")) in METRIC_NAMES else "cost",
    }
    context.update(_budgets_context(owner, context["projects"], context["keys"]))
    if not form.is_valid():
        return render(request, TEMPLATE, context, status=400)
    context.update(_figures_context(request, form, _today()))
    # Nothing stored, nothing to fetch with, nothing filtered: say how to get usage.
    context["first_run"] = not (
        context["has_usage"]
        or context["fetch_rows"]
        or context["filtered"]
        or usage_exists(owner=owner)
    )
    return render(request, TEMPLATE, context)


@login_required
@require_GET
def usage_csv_download(request: HttpRequest) -> HttpResponse:
    """The page's series as CSV: the same filters give the same figures."""
    form = UsageFilterForm(request.GET)
    if not form.is_valid():
        problems = form.error_fields().items()
        errors = "; ".join(f"{name}: {' '.join(texts)}" for name, texts in problems)
        return HttpResponse(
            f"Fix the filters: {errors}\n", status=400, content_type="text/plain; charset=utf-8"
        )
    summary = usage_summary(owner=user_of(request), **form.summary_kwargs())
    response = HttpResponse(usage_csv(summary), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{usage_csv_filename(summary)}"'
    # Spend figures: kept by no shared or browser cache (as GET /api/usage.csv).
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def usage_fetch_now(request: HttpRequest, key_id: int) -> HttpResponse:
    """Queue one of the owner's keys for a fetch at once (another user's key: 404)."""
    try:
        api_key = usage_fetch_enqueue(acting_user=user_of(request), key_id=key_id)
    except NotFound as exc:
        raise Http404(exc.message) from None
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, f"Fetching usage with “{api_key.name}”… refresh this page in a minute."
        )
    return redirect_back(request, reverse("usage:page"))


# --- Budgets (the page's "Monthly budgets" section, usage/_budgets.html) ------------------


def _budgets_context(owner: User, projects: list[Project], keys: list[ApiKey]) -> dict[str, Any]:
    """What ``usage/_budgets.html`` needs: this month's budget states and the form."""
    month = _today().replace(day=1)
    return {
        "budgets": budget_states(owner=owner, month=month),
        "budget_form": BudgetForm(projects=projects, keys=keys),
        "budget_month": month,
    }


@login_required
@require_POST
def budget_save(request: HttpRequest) -> HttpResponse:
    """Set the monthly budget of one of the owner's projects or keys (another user's is
    not among the choices, so it is refused like any bad choice)."""
    owner = user_of(request)
    projects = list(key_selectors.project_list(owner=owner))
    keys = list(key_selectors.api_key_list(owner=owner))
    form = BudgetForm(request.POST, projects=projects, keys=keys)
    back = redirect_back(request, reverse("usage:page"))
    back["Location"] += "#budgets"
    if not form.is_valid():
        problems = " ".join(str(e) for errors in form.errors.values() for e in errors)
        messages.error(request, f"The budget was not saved. {problems}")
        return back
    kind, pk = form.scope()
    project = next((p for p in projects if kind == "project" and p.pk == pk), None)
    api_key = next((k for k in keys if kind == "key" and k.pk == pk), None)
    try:
        budget_set(
            acting_user=owner,
            project=project,
            api_key=api_key,
            monthly_limit_micros=form.limit_micros(),
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return back
    name = project.name if project is not None else api_key.name if api_key else ""
    messages.success(request, f"Budget saved: {dollars(form.limit_micros())} a month for {name}.")
    return back


@login_required
@require_POST
def budget_remove(request: HttpRequest, budget_id: int) -> HttpResponse:
    """Remove one of the owner's budgets (another user's: 404)."""
    owner = user_of(request)
    try:
        budget = budget_get(owner=owner, budget_id=budget_id)
    except NotFound as exc:
        raise Http404(exc.message) from None
    budget_delete(acting_user=owner, budget=budget)
    messages.success(request, "Budget removed.")
    back = redirect_back(request, reverse("usage:page"))
    back["Location"] += "#budgets"
    return back
