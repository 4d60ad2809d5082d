"""Buying credits in Chromium against the fake Stripe API: the pack's button, Checkout
(Stripe's page stood in for), the success page turning to credited when the signed
webhook lands, then the balance and the ledger. Screenshots in artifacts/screenshots/."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from django.db import transaction
from playwright.sync_api import expect

from billing.models import CreditLedgerEntry
from billing.services.ledger import account_lock, entry_post
from tests.accounts.factories import UserFactory
from tests.billing.events import WEBHOOK_URL, checkout_event, signature
from tests.browser_helpers import login, serious_accessibility_failures
from usage.models import MeteredLlmCall

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHECKOUT = "https://checkout.stripe.com/**"


def charge(user, n: int, model: str, cost: int) -> None:
    """An assistant call on the server's key, charged through the ledger."""
    call = MeteredLlmCall.objects.create(
        owner=user,
        provider="openai",
        model=model,
        input_tokens=1800 + 37 * n,
        output_tokens=420 + 11 * n,
        cost_micros=cost,
        call_id=f"run-{n}",
    )
    with transaction.atomic():
        entry_post(
            account_lock(user_id=user.pk),
            kind=CreditLedgerEntry.Kind.USAGE,
            amount_micros=-cost,
            reference=f"usage:{call.pk}",
            description="Assistant LLM call",
            metered_call_id=call.pk,
        )


def test_buying_credits_shows_processing_then_credited_then_the_ledger(
    page, live_server, alice, fake_stripe, webhook_secret, settings, screenshot
):
    settings.APP_URL = live_server.url  # where Stripe sends the browser back to
    # Stripe's hosted Checkout is on the internet: a stand-in page answers for it.
    page.route(
        CHECKOUT,
        lambda route: route.fulfill(
            content_type="text/html", body="<title>Stripe Checkout</title><h1>Pay</h1>"
        ),
    )
    login(page, alice.email)
    page.goto("/dashboard/billing/")
    expect(page.locator("#balance")).to_have_text("$1.00")  # the starter grant
    assert serious_accessibility_failures(page) == []

    page.get_by_role("button", name="Buy $25.00 of credits").click()
    page.wait_for_url(CHECKOUT)
    (session_id,) = fake_stripe.sessions
    assert page.url.endswith(session_id)

    # Stripe sends the browser back before (or after) its webhook arrives.
    page.goto(
        fake_stripe.sessions[session_id]["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id)
    )
    status = page.locator("#checkout-status")
    expect(status).to_contain_text("Processing your payment…")
    assert serious_accessibility_failures(page) == []
    screenshot(page, "billing-processing")

    payload = json.dumps(
        checkout_event(session_id=session_id, user_id=alice.pk, amount_total=2500)
    ).encode()
    delivered = httpx.post(
        f"{live_server.url}{WEBHOOK_URL}",
        content=payload,
        headers={"Content-Type": "application/json", "Stripe-Signature": signature(payload)},
    )
    assert delivered.status_code == 200
    expect(status).to_contain_text("Credited $25.00 — new balance $26.00", timeout=8_000)
    assert status.get_attribute("hx-trigger") is None  # polling stopped
    screenshot(page, "billing-credited")

    for n, (model, cost) in enumerate([("gpt-4.1-mini", 1_234), ("gpt-4.1", 18_950)] * 3):
        charge(alice, n, model, cost)
    page.get_by_role("link", name="Back to Billing").click()
    expect(page.locator("#balance")).to_have_text("$25.93")
    expect(page.get_by_text("Exactly $25.939448")).to_be_visible()
    rows = page.locator(".ledger-table tbody tr")
    expect(rows).to_have_count(8)
    expect(rows.nth(6)).to_contain_text("Purchase")
    expect(rows.nth(6)).to_contain_text("+$25.00")
    expect(rows.nth(0)).to_contain_text("gpt-4.1")
    assert serious_accessibility_failures(page) == []
    screenshot(page, "billing")

    # The month filter goes in the URL; the CSV link follows it.
    this_month = page.locator("time").first.get_attribute("datetime")[:7]
    page.get_by_label("Month (UTC)").fill(this_month)
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(rf"month={this_month}"))
    expect(page.get_by_role("link", name="Download CSV")).to_have_attribute(
        "href", f"/dashboard/billing/ledger.csv?month={this_month}"
    )


def test_a_new_account_page_and_an_unknown_purchase_look_finished(page, settings, screenshot):
    settings.BILLING_STARTER_GRANT_USD = "0"
    settings.STRIPE_SECRET_KEY = ""
    login(page, UserFactory(email="new@example.com").email)
    page.goto("/dashboard/billing/")
    expect(page.get_by_text("No credits yet")).to_be_visible()
    screenshot(page, "billing-not-configured")
    page.goto("/dashboard/billing/success/?session_id=cs_test_someone_else")
    expect(page.get_by_role("heading", name="We couldn't find that purchase")).to_be_visible()
    assert serious_accessibility_failures(page) == []
    screenshot(page, "billing-unknown-purchase")
