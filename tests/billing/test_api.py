"""The billing API the CLI uses: balance, ledger (paginated, by month) and buying credits;
each caller sees only their own."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
import time_machine
from django.db import transaction
from rest_framework.test import APIClient

from billing.models import CheckoutSession
from billing.services.ledger import Kind, account_lock, entry_post
from tests.helpers.queries import assert_flat_queries

pytestmark = pytest.mark.django_db

OCTOBER = datetime(2026, 10, 14, 9, 30, tzinfo=UTC)
NOVEMBER = datetime(2026, 11, 20, 16, 5, tzinfo=UTC)
_references = itertools.count()


@pytest.fixture(autouse=True)
def _no_starter_grant(settings):
    settings.BILLING_STARTER_GRANT_USD = "0"


def post(user, micros, *, kind=Kind.PURCHASE, at=NOVEMBER):
    with time_machine.travel(at, tick=False), transaction.atomic():
        entry, _ = entry_post(
            account_lock(user_id=user.pk),
            kind=kind,
            amount_micros=micros,
            reference=f"test:{next(_references)}",
            description="Credits bought",
        )
    return entry


@pytest.mark.parametrize(
    ("micros", "usd"),
    [(12_500_000, "12.50"), (0, "0.00"), (435, "0.000435"), (10_000_435, "10.000435")],
)
def test_the_balance_is_dollars_and_micro_dollars(alice_api, alice, micros, usd):
    if micros:
        post(alice, micros)
    response = alice_api.get("/api/billing/balance")
    assert response.status_code == 200
    assert response.json() == {"balance_usd": usd, "balance_micros": micros}


def test_the_ledger_lists_entries_newest_first_with_the_balance_after(alice_api, alice):
    post(alice, 1_000_000, kind=Kind.GRANT, at=OCTOBER)
    post(alice, -435, kind=Kind.USAGE)
    body = alice_api.get("/api/billing/ledger").json()
    assert body["count"] == 2 and body["next"] is None
    newest, oldest = body["results"]
    assert newest == {
        "id": newest["id"],
        "kind": "usage",
        "amount_usd": "-0.000435",
        "amount_micros": -435,
        "balance_after_usd": "0.999565",
        "balance_after_micros": 999_565,
        "reference": newest["reference"],
        "description": "Credits bought",
        "usage_record_id": None,
        "created_at": "2026-11-20T16:05:00Z",
    }
    assert (oldest["kind"], oldest["amount_usd"]) == ("grant", "1.00")


def test_the_ledger_filters_by_month(alice_api, alice):
    post(alice, 1_000_000, at=OCTOBER)
    post(alice, 2_000_000, at=NOVEMBER)
    body = alice_api.get("/api/billing/ledger?month=2026-10").json()
    assert [row["amount_micros"] for row in body["results"]] == [1_000_000]
    assert alice_api.get("/api/billing/ledger?month=2026-09").json()["count"] == 0


@pytest.mark.parametrize("month", ["2026-13", "october", "2026-10-01"])
def test_a_bad_month_is_a_400_naming_the_field(alice_api, month):
    response = alice_api.get(f"/api/billing/ledger?month={month}")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"month": ["Use the form YYYY-MM."]}


def test_the_ledger_is_paginated(alice_api, alice):
    for _ in range(3):
        post(alice, 1_000_000)
    body = alice_api.get("/api/billing/ledger?page_size=2").json()
    assert (body["count"], len(body["results"])) == (3, 2)
    assert body["next"].endswith("page=2&page_size=2")
    assert len(alice_api.get("/api/billing/ledger?page_size=2&page=2").json()["results"]) == 1
    assert alice_api.get("/api/billing/ledger?page=9").status_code == 404


def test_the_ledgers_query_count_does_not_grow_with_its_length(alice_api, alice):
    assert_flat_queries(alice_api, "/api/billing/ledger", lambda: post(alice, 1_000))


def test_bob_never_sees_alices_balance_or_ledger(bob_api, alice, bob):
    post(alice, 5_000_000)
    assert bob_api.get("/api/billing/balance").json()["balance_micros"] == 0
    assert bob_api.get("/api/billing/ledger").json()["count"] == 0
    assert bob_api.get("/api/billing/ledger?month=2026-11").json()["results"] == []


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", "/api/billing/balance"),
        ("get", "/api/billing/ledger"),
        ("post", "/api/billing/checkout"),
    ],
)
def test_the_billing_api_needs_a_signed_in_caller(db, method, url):
    response = getattr(APIClient(), method)(url)
    assert response.status_code in (401, 403)
    assert "error" in response.json()


def test_checkout_answers_the_url_to_pay_at(alice_api, alice, fake_stripe, settings):
    settings.APP_URL = "https://kay.example.com"
    response = alice_api.post("/api/billing/checkout", {"pack_id": "10"}, format="json")
    assert response.status_code == 201
    session = CheckoutSession.objects.get(user=alice)
    assert response.json() == {
        "url": f"https://checkout.stripe.com/c/pay/{session.stripe_session_id}"
    }
    form = fake_stripe.requests[-1].form
    assert form["success_url"] == (
        "https://kay.example.com/dashboard/billing/success/?session_id={CHECKOUT_SESSION_ID}"
    )
    assert form["cancel_url"] == "https://kay.example.com/dashboard/billing/cancelled/"


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "pack_id"), ({"pack_id": "3"}, "pack_id"), ({"pack_id": ""}, "pack_id")],
)
def test_checkout_of_no_pack_is_a_400(alice_api, fake_stripe, body, field):
    response = alice_api.post("/api/billing/checkout", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert fake_stripe.requests == [] and not CheckoutSession.objects.exists()


def test_checkout_without_stripe_configured_is_a_503(alice_api, settings):
    settings.STRIPE_SECRET_KEY = ""
    response = alice_api.post("/api/billing/checkout", {"pack_id": "10"}, format="json")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "not_configured"
    assert "STRIPE_SECRET_KEY" not in response.json()["error"]["message"]
