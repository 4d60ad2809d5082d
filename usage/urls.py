"""URLs of the usage app (pages under /dashboard/, API under /api/)."""

from django.urls import path

from usage import api, views

app_name = "usage"

urlpatterns = [
    # API
    path("api/usage", api.UsageSummaryApi.as_view(), name="api-usage"),
    path("api/usage.csv", api.UsageCsvApi.as_view(), name="api-usage-csv"),
    path("api/usage/budgets", api.BudgetCollectionApi.as_view(), name="api-budgets"),
    path("api/usage/budgets/<int:budget_id>", api.BudgetDetailApi.as_view(), name="api-budget"),
    # Pages
    path("dashboard/usage/", views.usage_page, name="page"),
    path("dashboard/usage.csv", views.usage_csv_download, name="csv"),
    path("dashboard/usage/keys/<int:key_id>/fetch/", views.usage_fetch_now, name="fetch_now"),
    path("dashboard/usage/budgets/", views.budget_save, name="budget_save"),
    path(
        "dashboard/usage/budgets/<int:budget_id>/remove/",
        views.budget_remove,
        name="budget_remove",
    ),
]
