"""The Billing pages: balance, packs, ledger (month filter, CSV, pages), Checkout and the
portal against the fake Stripe API, the success page, and bob never seeing alice's."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import pytest
import time_machine
from django.conf import settings as django_settings
from django.db import transaction
from django.test import Client

from billing import selectors
from billing.models import CheckoutSession, CreditLedgerEntry
from billing.services.ledger import (
    account_lock,
    billing_account_for,
    credits_adjust,
    entry_post,
)
from tests.accounts.factories import UserFactory
from tests.billing.events import checkout_event, deliver
from tests.helpers.queries import assert_flat_queries
from usage.models import MeteredLlmCall

pytestmark = pytest.mark.django_db

Kind = CreditLedgerEntry.Kind
OCTOBER = datetime(2026, 10, 14, 9, 30, tzinfo=UTC)
NOVEMBER = datetime(2026, 11, 20, 16, 5, tzinfo=UTC)


def post(user, kind, micros, reference, *, at=None, **extra) -> CreditLedgerEntry:
    """One entry through the ledger's own write path, at ``at`` if given."""
    with time_machine.travel(at or datetime.now(UTC), tick=False), transaction.atomic():
        entry, _ = entry_post(
            account_lock(user_id=user.pk),
            kind=kind,
            amount_micros=micros,
            reference=reference,
            **extra,
        )
    return entry


def metered_call(user, model="gpt-4.1-mini", input_tokens=1200, output_tokens=340, call_id=None):
    return MeteredLlmCall.objects.create(
        owner=user,
        provider="openai",
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_micros=1234,
        call_id=call_id or f"run-1-step-{MeteredLlmCall.objects.count()}",
    )


@pytest.fixture(autouse=True)
def _no_starter_grant(settings):
    """Each test writes its own ledger (autouse: set before alice and bob sign up)."""
    settings.BILLING_STARTER_GRANT_USD = "0"


@pytest.fixture
def ledger(alice):
    """alice: a grant and a purchase in October, a usage charge in November."""
    post(alice, Kind.GRANT, 1_000_000, "grant:signup:a", at=OCTOBER, description="Starter credits")
    post(alice, Kind.PURCHASE, 25_000_000, "cs_test_alice_25", at=OCTOBER)
    call = metered_call(alice)
    post(
        alice,
        Kind.USAGE,
        -1234,
        f"usage:{call.pk}",
        at=NOVEMBER,
        description="Assistant LLM call",
        metered_call_id=call.pk,
    )


def test_the_page_shows_the_balance_the_packs_and_the_ledger(alice_browser, ledger, settings):
    settings.STRIPE_SECRET_KEY = "sk_test_page"
    html = alice_browser.get("/dashboard/billing/").content.decode()
    assert '<p class="stat" id="balance">$25.99</p>' in html and "Exactly $25.998766" in html
    for pack_id, amount in (("10", "$10.00"), ("25", "$25.00"), ("100", "$100.00")):
        assert f'<input type="hidden" name="pack" value="{pack_id}">' in html
        assert f'<span class="pack-amount">{amount}</span>' in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert "Manage payment methods &amp; receipts" in html
    # Newest first, each with its amount and the balance after it.
    assert html.index("gpt-4.1-mini") < html.index("cs_test_alice_25") < html.index("Starter")
    assert "1200 in · 340 out tokens" in html
    assert "−$0.001234" in html and "+$25.00" in html and "$26.00" in html


def test_a_usage_charge_of_an_assistant_run_links_to_that_run(alice_browser, alice):
    run_call = metered_call(alice, call_id="assistant-run-42-2")
    other_call = metered_call(alice, call_id="run-1-step-0")
    post(alice, Kind.GRANT, 1_000_000, "grant:signup:a", description="Starter credits")
    for call in (run_call, other_call):
        post(alice, Kind.USAGE, -1234, f"usage:{call.pk}", metered_call_id=call.pk)
    html = alice_browser.get("/dashboard/billing/").content.decode()
    assert html.count('class="ledger-run"') == 1
    assert '<a class="ledger-run" href="/dashboard/assistant/runs/42/">Assistant run 42</a>' in html
    # The CSV keeps the reference as it is.
    rows = csv_rows(alice_browser.get("/dashboard/billing/ledger.csv"))
    assert {row["reference"] for row in rows if row["kind"] == "usage"} == {
        f"usage:{run_call.pk}",
        f"usage:{other_call.pk}",
    }


@pytest.mark.parametrize(
    ("call_id", "run_id"),
    [
        ("assistant-run-42-1", 42),
        ("assistant-run-7-12", 7),
        ("assistant-run-42", None),
        ("assistant-run-x-1", None),
        ("assistant-run-42-1-extra", None),
        ("run-1-step-0", None),
        ("", None),
    ],
)
def test_only_an_assistant_runs_call_id_names_a_run(call_id, run_id):
    assert selectors.assistant_run_id(call_id) == run_id


def test_a_new_user_sees_a_zero_balance_and_what_to_do_next(client, charlie, settings):
    settings.STRIPE_SECRET_KEY = "sk_test_page"
    client.force_login(charlie)
    html = client.get("/dashboard/billing/").content.decode()
    assert "$0.00" in html
    assert "No credits yet" in html and "Buy a credit pack above to start" in html
    assert "Low balance" not in html  # at zero the page says to buy credits instead
    assert "Download CSV" not in html  # nothing to filter or export yet


def test_with_the_default_settings_a_new_user_is_not_told_their_balance_is_low(client, settings):
    # The default threshold sits under the default starter grant: a brand-new account is
    # not "low" before it has spent anything.
    settings.BILLING_STARTER_GRANT_USD = "1.00"
    assert django_settings.BILLING_LOW_BALANCE_USD == "0.50"
    client.force_login(UserFactory(email="newcomer@example.com"))
    html = client.get("/dashboard/billing/").content.decode()
    assert "$1.00" in html and "Low balance" not in html


def test_the_page_needs_a_signed_in_user(client):
    for path in ("/dashboard/billing/", "/dashboard/billing/ledger.csv"):
        response = client.get(path)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_month_filter_shows_only_that_months_entries(alice_browser, ledger):
    html = alice_browser.get("/dashboard/billing/?month=2026-10").content.decode()
    assert "cs_test_alice_25" in html and "Starter credits" in html
    assert "gpt-4.1-mini" not in html
    assert 'value="2026-10"' in html
    assert 'href="/dashboard/billing/ledger.csv?month=2026-10"' in html


def test_a_month_without_entries_says_so(alice_browser, ledger):
    html = alice_browser.get("/dashboard/billing/?month=2025-01").content.decode()
    assert "Nothing in January 2025" in html


@pytest.mark.parametrize("month", ["nope", "2026-13", "2026-11-01", "<script>"])
def test_an_invalid_month_is_refused_and_every_month_is_shown(alice_browser, ledger, month):
    response = alice_browser.get("/dashboard/billing/", {"month": month})
    assert response.status_code == 400
    html = response.content.decode()
    assert "is not a month" in html and "<script>" not in html
    assert "cs_test_alice_25" in html and "gpt-4.1-mini" in html
    csv_response = alice_browser.get("/dashboard/billing/ledger.csv", {"month": month})
    assert csv_response.status_code == 400


def csv_rows(response) -> list[dict[str, str]]:
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def test_the_csv_is_the_filtered_ledger(alice_browser, alice, ledger):
    response = alice_browser.get("/dashboard/billing/ledger.csv?month=2026-10")
    assert 'filename="kay-ledger-2026-10.csv"' in response["Content-Disposition"]
    rows = csv_rows(response)
    expected = selectors.ledger_entries(user=alice, month=date(2026, 10, 1))
    assert [row["reference"] for row in rows] == [entry.reference for entry in expected]
    assert rows[0] == {
        "created_at": "2026-10-14T09:30:00+00:00",
        "kind": "purchase",
        "amount_usd": "25.000000",
        "balance_after_usd": "26.000000",
        "reference": "cs_test_alice_25",
        "description": "",
    }
    everything = csv_rows(alice_browser.get("/dashboard/billing/ledger.csv"))
    assert len(everything) == 3
    assert everything[0]["amount_usd"] == "-0.001234"  # a number, not guarded text


def test_the_csv_never_hands_a_spreadsheet_a_formula(alice_browser, alice, staff):
    credits_adjust(
        account=billing_account_for(alice),
        amount_micros=5_000_000,
        reason='=HYPERLINK("http://evil.example","refund")',
        acting_user=staff,
    )
    (row,) = csv_rows(alice_browser.get("/dashboard/billing/ledger.csv"))
    assert row["description"].startswith("'=HYPERLINK(")


def test_a_long_ledger_is_paged_with_the_same_queries(alice_browser, alice):
    made = iter(range(1000))

    def add_row():
        n = next(made)
        post(alice, Kind.GRANT, 1_000, f"grant:test:{n}", description=f"Grant number {n}")

    measured = assert_flat_queries(alice_browser, "/dashboard/billing/", add_row, rows=60)
    html = measured.response.content.decode()
    assert html.count("<tr>") == 1 + 50  # the header and one page
    assert "Page 1 of 2" in html and "Grant number 59" in html and "Grant number 9<" not in html
    second = alice_browser.get("/dashboard/billing/?page=2").content.decode()
    assert "Grant number 9<" in second and "Grant number 0<" in second


def test_bob_never_sees_alices_ledger(bob_browser, alice, ledger):
    html = bob_browser.get("/dashboard/billing/").content.decode()
    assert "$0.00" in html and "No credits yet" in html
    for secret in ("cs_test_alice_25", "gpt-4.1-mini", "$25.998766"):
        assert secret not in html
    assert csv_rows(bob_browser.get("/dashboard/billing/ledger.csv")) == []


# --- The success page ----------------------------------------------------------------


def checkout(user, session_id="cs_test_a1", status=CheckoutSession.Status.OPEN):
    return CheckoutSession.objects.create(
        user=user, stripe_session_id=session_id, pack_id="25", amount_total=2500, status=status
    )


def test_the_success_page_says_processing_and_polls_until_credited(alice_browser, alice):
    post(alice, Kind.GRANT, 1_000_000, "grant:signup:a")
    session = checkout(alice)
    html = alice_browser.get("/dashboard/billing/success/?session_id=cs_test_a1").content.decode()
    assert "Processing your payment…" in html
    assert 'hx-get="/dashboard/billing/success/status/?session_id=cs_test_a1"' in html
    assert 'hx-trigger="every 2s"' in html

    # The webhook lands: the session is paid and the purchase posted.
    post(alice, Kind.PURCHASE, 25_000_000, "cs_test_a1")
    CheckoutSession.objects.filter(pk=session.pk).update(status=CheckoutSession.Status.PAID)
    partial = alice_browser.get(
        "/dashboard/billing/success/status/?session_id=cs_test_a1", HTTP_HX_REQUEST="true"
    ).content.decode()
    assert "Credited $25.00 — new balance $26.00" in partial
    assert "hx-trigger" not in partial  # polling stops
    page = alice_browser.get("/dashboard/billing/success/?session_id=cs_test_a1")
    assert "Credited $25.00 — new balance $26.00" in page.content.decode()


@pytest.mark.parametrize(
    ("status", "says"),
    [("failed", "The payment did not go through"), ("expired", "This checkout expired")],
)
def test_a_failed_or_expired_checkout_says_so_and_stops_polling(alice_browser, alice, status, says):
    checkout(alice, status=status)
    html = alice_browser.get("/dashboard/billing/success/?session_id=cs_test_a1").content.decode()
    assert says in html and "hx-trigger" not in html


@pytest.mark.parametrize("session_id", ["cs_test_alices", "cs_unknown", "", "x" * 300])
def test_another_users_or_an_unknown_session_shows_nothing_of_it(bob_browser, alice, session_id):
    post(alice, Kind.PURCHASE, 25_000_000, "cs_test_alices")
    checkout(alice, "cs_test_alices", status=CheckoutSession.Status.PAID)
    for path in ("/dashboard/billing/success/", "/dashboard/billing/success/status/"):
        response = bob_browser.get(path, {"session_id": session_id})
        html = response.content.decode()
        assert "We couldn't find that purchase" in html
        assert "$25.00" not in html and "Credited" not in html and "Processing" not in html
    assert (
        bob_browser.get("/dashboard/billing/success/", {"session_id": session_id}).status_code
        == 404
    )


def test_a_cancelled_checkout_returns_to_billing_with_a_message(alice_browser):
    response = alice_browser.get("/dashboard/billing/cancelled/", follow=True)
    assert response.redirect_chain == [("/dashboard/billing/", 302)]
    assert "Checkout cancelled: nothing was charged." in response.content.decode()


# --- Checkout and the portal ---------------------------------------------------------


def test_buying_without_stripe_configured_says_what_is_missing(alice_browser, settings):
    settings.STRIPE_SECRET_KEY = ""
    page = alice_browser.get("/dashboard/billing/").content.decode()
    assert "Buying credits is not available on this server yet" in page
    assert 'href="/dashboard/keys/new/">Add a key' in page
    assert 'name="pack"' not in page
    response = alice_browser.post("/dashboard/billing/buy/", {"pack": "10"}, follow=True)
    assert response.redirect_chain == [("/dashboard/billing/", 302)]
    html = response.content.decode()
    assert "Buying credits is not available on this server." in html
    assert "Operator:" not in html  # the setup hint is for staff only


def test_staff_are_told_which_setting_to_set(client, staff, settings):
    settings.STRIPE_SECRET_KEY = ""
    client.force_login(staff)
    html = client.post("/dashboard/billing/buy/", {"pack": "10"}, follow=True).content.decode()
    assert "Operator: Set STRIPE_SECRET_KEY" in html


def test_buying_a_pack_sends_the_browser_to_stripe_checkout(alice_browser, alice, fake_stripe):
    response = alice_browser.post("/dashboard/billing/buy/", {"pack": "25"})
    assert response.status_code == 302
    (session_id,) = fake_stripe.sessions
    assert response["Location"] == f"https://checkout.stripe.com/c/pay/{session_id}"
    sent = fake_stripe.sessions[session_id]
    assert sent["client_reference_id"] == str(alice.pk) and sent["amount_total"] == 2500
    app = django_settings.APP_URL
    success = f"{app}/dashboard/billing/success/?session_id={{CHECKOUT_SESSION_ID}}"
    assert sent["success_url"] == success
    assert sent["cancel_url"] == f"{app}/dashboard/billing/cancelled/"
    assert CheckoutSession.objects.get(stripe_session_id=session_id).user == alice


def test_buying_then_the_webhook_turns_the_success_page_to_credited(
    alice_browser, alice, fake_stripe, webhook_secret
):
    alice_browser.post("/dashboard/billing/buy/", {"pack": "25"})
    (session_id,) = fake_stripe.sessions
    status_url = f"/dashboard/billing/success/status/?session_id={session_id}"
    assert "Processing your payment…" in alice_browser.get(status_url).content.decode()
    event = checkout_event(session_id=session_id, user_id=alice.pk, amount_total=2500)
    assert deliver(Client(), event).status_code == 200
    html = alice_browser.get(status_url).content.decode()
    assert "Credited $25.00 — new balance $25.00" in html


def test_an_unknown_pack_is_refused_without_calling_stripe(alice_browser, fake_stripe):
    response = alice_browser.post("/dashboard/billing/buy/", {"pack": "7"}, follow=True)
    assert response.redirect_chain == [("/dashboard/billing/", 302)]
    assert "Choose one of the credit packs." in response.content.decode()
    assert fake_stripe.requests == []


def test_a_stripe_refusal_is_a_message_on_the_page(alice_browser, fake_stripe):
    fake_stripe.fail_status = 400
    response = alice_browser.post("/dashboard/billing/buy/", {"pack": "10"}, follow=True)
    assert response.redirect_chain == [("/dashboard/billing/", 302)]
    html = response.content.decode()
    assert 'class="alert alert-error"' in html and "Something broke" not in html


def test_the_portal_sends_the_browser_to_stripe(alice_browser, fake_stripe):
    response = alice_browser.post("/dashboard/billing/portal/")
    assert response.status_code == 302
    assert response["Location"].startswith("https://billing.stripe.com/p/session/test_bps_")
    (portal,) = [r for r in fake_stripe.requests if r.path == "/v1/billing_portal/sessions"]
    assert portal.form["return_url"] == f"{django_settings.APP_URL}/dashboard/billing/"


@pytest.mark.parametrize("path", ["/dashboard/billing/buy/", "/dashboard/billing/portal/"])
def test_checkout_and_the_portal_start_only_from_a_form(alice_browser, fake_stripe, path):
    assert alice_browser.get(path).status_code == 405
    assert fake_stripe.requests == []


def test_bobs_portal_is_his_own_customer(alice_browser, bob_browser, alice, bob, fake_stripe):
    alice_browser.post("/dashboard/billing/portal/")
    bob_browser.post("/dashboard/billing/portal/")
    portals = [r.form["customer"] for r in fake_stripe.requests if "portal" in r.path]
    assert len(set(portals)) == 2
