"""URLs of the usage app (pages under /dashboard/, API under /api/)."""

from django.urls import path

from usage import api

app_name = "usage"

urlpatterns = [
    # API
    path("api/usage", api.UsageSummaryApi.as_view(), name="api-usage"),
    path("api/usage.csv", api.UsageCsvApi.as_view(), name="api-usage-csv"),
    path("api/usage/budgets", api.BudgetCollectionApi.as_view(), name="api-budgets"),
    path("api/usage/budgets/<int:budget_id>", api.BudgetDetailApi.as_view(), name="api-budget"),
]
