"""Billing's routes: the API under /api/billing/, Stripe's webhook, and the Billing pages
under /dashboard/billing/."""

from django.urls import path

from billing import api, views

app_name = "billing"

urlpatterns = [
    # API
    path("api/billing/balance", api.BillingBalanceApi.as_view(), name="api-balance"),
    path("api/billing/ledger", api.BillingLedgerApi.as_view(), name="api-ledger"),
    path("api/billing/checkout", api.BillingCheckoutApi.as_view(), name="api-checkout"),
    path("billing/stripe/webhook", api.StripeWebhookApi.as_view(), name="stripe-webhook"),
    # Pages
    path("dashboard/billing/", views.billing_index, name="index"),
    path("dashboard/billing/buy/", views.billing_buy, name="buy"),
    path("dashboard/billing/portal/", views.billing_portal, name="portal"),
    path("dashboard/billing/success/", views.billing_success, name="success"),
    path(
        "dashboard/billing/success/status/",
        views.billing_success_status,
        name="success_status",
    ),
    path("dashboard/billing/cancelled/", views.billing_cancelled, name="cancelled"),
    path("dashboard/billing/ledger.csv", views.billing_ledger_csv, name="ledger_csv"),
]
