"""Billing's JSON API for the CLI (balance, ledger, buying credits) and Stripe's webhook."""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import user_of
from billing import selectors, services
from billing.serializers import (
    BalanceOutputSerializer,
    CheckoutInputSerializer,
    LedgerEntryOutputSerializer,
    LedgerQueryInputSerializer,
    UrlOutputSerializer,
)


class LedgerPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class BillingBalanceApi(APIView):
    """``GET /api/billing/balance``."""

    @extend_schema(
        summary="Your credit balance",
        description="What is left of your prepaid credits, in dollars and micro-dollars. "
        "Assistant calls on the server's own key are charged from it.",
        responses=BalanceOutputSerializer,
    )
    def get(self, request: Request) -> Response:
        balance = selectors.billing_balance(user=user_of(request))
        return Response(BalanceOutputSerializer(balance).data)


class BillingLedgerApi(APIView):
    """``GET /api/billing/ledger?month=YYYY-MM&page=N``."""

    @extend_schema(
        summary="Your credit ledger",
        description="Every change of your balance, newest first: purchases, refunds, usage "
        "charges (with the usage record they charge), grants and adjustments, each with the "
        "balance after it. Paginated (`page`, `page_size` up to 200); `month` keeps one "
        "month (UTC).",
        parameters=[LedgerQueryInputSerializer],
        responses=LedgerEntryOutputSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        query = LedgerQueryInputSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        entries = selectors.ledger_entries(
            user=user_of(request), month=query.validated_data.get("month")
        )
        paginator = LedgerPagination()
        page = paginator.paginate_queryset(entries, request, view=self)
        return paginator.get_paginated_response(LedgerEntryOutputSerializer(page, many=True).data)


class BillingCheckoutApi(APIView):
    """``POST /api/billing/checkout`` ``{"pack_id"}`` → ``{"url"}``."""

    @extend_schema(
        summary="Buy credits",
        description="Starts Stripe Checkout for one credit pack (`pack_id`: its dollar "
        "amount, e.g. `10`). Open `url` in a browser to pay; the credits appear once "
        "Stripe confirms the payment.",
        request=CheckoutInputSerializer,
        responses={201: UrlOutputSerializer},
    )
    def post(self, request: Request) -> Response:
        data = CheckoutInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        base = settings.APP_URL
        url = services.checkout_session_start(
            user=user_of(request),
            pack_id=data.validated_data["pack_id"],
            success_url=f"{base}{reverse('billing:success')}?session_id={{CHECKOUT_SESSION_ID}}",
            cancel_url=f"{base}{reverse('billing:cancelled')}",
        )
        return Response({"url": url}, status=status.HTTP_201_CREATED)


class StripeWebhookApi(APIView):
    """``POST /billing/stripe/webhook``: Stripe's events, verified by their signature."""

    # Stripe signs the body; no session, token or CSRF applies (and no parsing: the
    # signature is over the raw bytes). Verifying is one HMAC, so no throttle either:
    # a burst of Stripe's retries must not be refused.
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(
        summary="Stripe webhook",
        description="For Stripe only. The body is verified with `Stripe-Signature` and "
        "`STRIPE_WEBHOOK_SECRET` (at most 300 s old), stored once per event id and applied. "
        "400 `invalid_webhook` for a bad or stale signature or a malformed body.",
        request={"application/json": {"type": "object"}},
        responses={200: {"type": "object", "properties": {"received": {"type": "boolean"}}}},
        parameters=[OpenApiParameter("Stripe-Signature", str, OpenApiParameter.HEADER)],
    )
    def post(self, request: Request) -> Response:
        services.webhook_event_receive(
            payload=request.body, signature=request.headers.get("Stripe-Signature", "")
        )
        return Response({"received": True})
