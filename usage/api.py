"""The usage JSON/CSV API for the CLI and the page's script, and budgets. Scoped to the
caller: another user's ids as filters match nothing; another user's budget, project or
key is a 404."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import user_of
from core.errors import ApplicationError, NotFound
from keys import selectors as keys_selectors
from usage import selectors
from usage.exports import usage_csv, usage_csv_filename
from usage.forms import UsageFilterForm
from usage.selectors import BudgetState, UsageSummary
from usage.serializers import (
    BudgetInputSerializer,
    BudgetOutputSerializer,
    BudgetUpdateInputSerializer,
    UsageOutputSerializer,
)
from usage.services.budgets import budget_delete, budget_set

FILTER_PARAMETERS = [
    OpenApiParameter(
        "start", OpenApiTypes.DATE, description="First UTC day; default: the 1st of the month"
    ),
    OpenApiParameter("end", OpenApiTypes.DATE, description="Last UTC day (inclusive); today"),
    OpenApiParameter(
        "granularity",
        OpenApiTypes.STR,
        enum=["day", "hour"],
        description="`day` (up to 366 days) or `hour` (up to 31 days); default `day`",
    ),
    OpenApiParameter("project_id", OpenApiTypes.INT, description="one of your projects"),
    OpenApiParameter("key_id", OpenApiTypes.INT, description="one of your stored keys"),
    OpenApiParameter("provider", OpenApiTypes.STR, description="e.g. `openai`"),
    OpenApiParameter("model", OpenApiTypes.STR, description="as the provider names it"),
]


def _summary(request: Request) -> UsageSummary:
    form = UsageFilterForm(request.query_params)
    if not form.is_valid():
        raise ApplicationError(
            "Some filters are not valid.", code="validation_error", fields=form.error_fields()
        )
    return selectors.usage_summary(owner=user_of(request), **form.summary_kwargs())


def _today() -> date:
    return datetime.now(UTC).date()


def _micros(dollars: Decimal) -> int:
    return int(dollars * 1_000_000)


def _budget_state(request: Request, budget_id: int) -> BudgetState:
    states = selectors.budget_states(owner=user_of(request), month=_today())
    state = next((state for state in states if state.budget_id == budget_id), None)
    if state is None:  # removed by another request in the meantime
        raise NotFound("Budget not found.")
    return state


class UsageSummaryApi(APIView):
    """``GET /api/usage``: the Usage page's figures as JSON."""

    @extend_schema(
        summary="Your usage and cost",
        description=(
            "Totals for the period (and the period of equal length before it), a series per "
            "day or hour and model, breakdowns by model, provider, key and project (largest "
            "cost first), and this month's budgets. Costs are decimal strings of US dollars. "
            "Bad dates, an end before the start or too long a period are a 400."
        ),
        parameters=FILTER_PARAMETERS,
        responses=UsageOutputSerializer,
    )
    def get(self, request: Request) -> Response:
        summary = _summary(request)
        budgets = selectors.budget_states(owner=user_of(request), month=_today())
        data = UsageOutputSerializer({**vars(summary), "budgets": budgets}).data
        return Response(data)


class UsageCsvApi(APIView):
    """``GET /api/usage.csv``: the series of ``GET /api/usage`` as CSV."""

    @extend_schema(
        summary="Your usage as CSV",
        description=(
            "The same filters as `GET /api/usage`; one row per day or hour, provider and "
            "model: `start, provider, model, requests, input_tokens, output_tokens, "
            "cached_tokens, cost_usd`. Sent as a download (Content-Disposition)."
        ),
        parameters=FILTER_PARAMETERS,
        responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR)},
    )
    def get(self, request: Request) -> HttpResponse:
        summary = _summary(request)
        response = HttpResponse(usage_csv(summary), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{usage_csv_filename(summary)}"'
        response["Cache-Control"] = "no-store"
        return response


class BudgetCollectionApi(APIView):
    """``GET /api/usage/budgets``, ``POST /api/usage/budgets``."""

    @extend_schema(
        summary="Your budgets",
        description="Each monthly budget with this month's spend against it and its level: "
        "`ok`, `warning` (80 % or more) or `exceeded` (100 % or more).",
        responses=BudgetOutputSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        states = selectors.budget_states(owner=user_of(request), month=_today())
        return Response(BudgetOutputSerializer(states, many=True).data)

    @extend_schema(
        summary="Set a budget",
        description=(
            "A monthly budget for one of your projects (`project_id`) or keys (`key_id`). "
            "Setting it again changes the limit. At 80 % and at 100 % of it in a month you "
            "get one email each. Another user's project or key is a 404."
        ),
        request=BudgetInputSerializer,
        responses={201: BudgetOutputSerializer},
    )
    def post(self, request: Request) -> Response:
        serializer = BudgetInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        owner = user_of(request)
        project = api_key = None
        if "project_id" in data:
            project = keys_selectors.project_get(owner=owner, project_id=data["project_id"])
        else:
            api_key = keys_selectors.api_key_get(owner=owner, key_id=data["key_id"])
        budget = budget_set(
            acting_user=owner,
            project=project,
            api_key=api_key,
            monthly_limit_micros=_micros(data["monthly_limit_usd"]),
        )
        state = _budget_state(request, budget.pk)
        return Response(BudgetOutputSerializer(state).data, status=status.HTTP_201_CREATED)


class BudgetDetailApi(APIView):
    """``PATCH``, ``DELETE /api/usage/budgets/<id>``."""

    @extend_schema(
        summary="Change a budget's limit",
        description="A new monthly limit. Alerts already sent this month stay sent.",
        request=BudgetUpdateInputSerializer,
        responses=BudgetOutputSerializer,
    )
    def patch(self, request: Request, budget_id: int) -> Response:
        owner = user_of(request)
        budget = selectors.budget_get(owner=owner, budget_id=budget_id)
        serializer = BudgetUpdateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        budget_set(
            acting_user=owner,
            project=budget.project,
            api_key=budget.api_key,
            monthly_limit_micros=_micros(serializer.validated_data["monthly_limit_usd"]),
        )
        return Response(BudgetOutputSerializer(_budget_state(request, budget.pk)).data)

    @extend_schema(
        summary="Remove a budget",
        description="No more alerts for it. Another user's budget is a 404.",
        responses={204: None},
    )
    def delete(self, request: Request, budget_id: int) -> Response:
        owner = user_of(request)
        budget_delete(
            acting_user=owner, budget=selectors.budget_get(owner=owner, budget_id=budget_id)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
