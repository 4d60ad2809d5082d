"""The Billing pages: balance, credit packs (Stripe Checkout), the customer portal, the
ledger with its month filter and CSV export, and the page Checkout returns to."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable
from datetime import UTC, date
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from accounts.authentication import user_of
from billing import selectors, services
from billing.models import CheckoutSession, CreditLedgerEntry
from billing.services.low_balance import low_balance_threshold_micros
from core.errors import ApplicationError, NotConfigured

logger = logging.getLogger(__name__)

PER_PAGE = 50
MAX_SESSION_ID = 255  # Stripe's ids are far shorter; anything longer is not one
# A cell starting with one of these is a formula to Excel, LibreOffice and Sheets.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class MonthForm(forms.Form):
    """``?month=2026-11``: the ledger of one calendar month (UTC); empty means all."""

    month = forms.DateField(required=False, input_formats=["%Y-%m"])

    def selected(self) -> date | None:
        return self.cleaned_data["month"] if self.is_valid() else None


def _month_form(request: HttpRequest) -> MonthForm:
    form = MonthForm(request.GET)
    form.is_valid()
    return form


def _stripe_error(request: HttpRequest, exc: ApplicationError) -> HttpResponse:
    """A Checkout or portal that could not start: say why on the Billing page."""
    messages.error(request, exc.message)
    if isinstance(exc, NotConfigured):
        logger.warning("%s", exc.operator_hint)
        if request.user.is_staff:
            messages.info(request, f"Operator: {exc.operator_hint}")
    return redirect("billing:index")


@login_required
@require_GET
def billing_index(request: HttpRequest) -> HttpResponse:
    user = user_of(request)
    form = _month_form(request)
    month = form.selected()
    entries = selectors.ledger_entries(user=user, month=month).select_related("metered_call")
    page = Paginator(entries, PER_PAGE).get_page(request.GET.get("page"))
    balance = selectors.billing_balance(user=user)
    threshold = low_balance_threshold_micros()
    context: dict[str, Any] = {
        "balance_micros": balance,
        "low": 0 < balance < threshold,  # at zero the page already says to buy credits
        "packs": selectors.credit_packs(),
        "payments_ready": bool(settings.STRIPE_SECRET_KEY),
        "form": form,
        "month": month,
        "month_value": month.strftime("%Y-%m") if month else "",
        "page": page,
    }
    return render(request, "billing/index.html", context, status=400 if form.errors else 200)


@login_required
@require_POST
def billing_buy(request: HttpRequest) -> HttpResponse:
    """A pack's button: start a Stripe Checkout and send the browser to it."""
    base = settings.APP_URL
    try:
        url = services.checkout_session_start(
            user=user_of(request),
            pack_id=request.POST.get("pack", ""),
            # Stripe puts the session's id where {CHECKOUT_SESSION_ID} stands.
            success_url=f"{base}{reverse('billing:success')}?session_id={{CHECKOUT_SESSION_ID}}",
            cancel_url=f"{base}{reverse('billing:cancelled')}",
        )
    except ApplicationError as exc:
        return _stripe_error(request, exc)
    return redirect(url)


@login_required
@require_POST
def billing_portal(request: HttpRequest) -> HttpResponse:
    """Stripe's customer portal: receipts, invoices and payment methods."""
    try:
        url = services.portal_session_start(
            user=user_of(request), return_url=f"{settings.APP_URL}{reverse('billing:index')}"
        )
    except ApplicationError as exc:
        return _stripe_error(request, exc)
    return redirect(url)


@login_required
@require_GET
def billing_cancelled(request: HttpRequest) -> HttpResponse:
    messages.info(request, "Checkout cancelled: nothing was charged.")
    return redirect("billing:index")


def _checkout_context(request: HttpRequest) -> dict[str, Any]:
    """The user's own Checkout session named in ``?session_id=``, or none at all: another
    user's id reads exactly like an unknown one."""
    session_id = request.GET.get("session_id", "")
    checkout = None
    if session_id and len(session_id) <= MAX_SESSION_ID:
        checkout = selectors.checkout_session_for(user=user_of(request), session_id=session_id)
    context: dict[str, Any] = {"checkout": checkout, "session_id": session_id}
    if checkout is not None and checkout.status == CheckoutSession.Status.PAID:
        context["credited_micros"] = checkout.amount_total * selectors.MICROS_PER_CENT
        context["balance_micros"] = selectors.billing_balance(user=user_of(request))
    return context


@login_required
@require_GET
def billing_success(request: HttpRequest) -> HttpResponse:
    context = _checkout_context(request)
    return render(
        request, "billing/success.html", context, status=200 if context["checkout"] else 404
    )


@login_required
@require_GET
def billing_success_status(request: HttpRequest) -> HttpResponse:
    """htmx: the success page's status, polled until the webhook has settled the session."""
    context = _checkout_context(request)
    return render(request, "billing/_checkout_status.html", context)


def _csv_cell(text: str) -> str:
    """Text no spreadsheet runs as a formula (OWASP's advice: a leading single quote)."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


CSV_COLUMNS = (
    "created_at",
    "kind",
    "amount_usd",
    "balance_after_usd",
    "reference",
    "description",
)


def ledger_csv(entries: Iterable[CreditLedgerEntry]) -> str:
    """The entries as CSV, newest first like the page: UTC ISO times, exact decimal dollars,
    and text cells guarded against formula injection."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for entry in entries:
        writer.writerow(
            [
                entry.created_at.astimezone(UTC).isoformat(timespec="seconds"),
                entry.kind,
                selectors.usd_amount(entry.amount_micros, exact=True),
                selectors.usd_amount(entry.balance_after_micros, exact=True),
                _csv_cell(entry.reference),
                _csv_cell(entry.description),
            ]
        )
    return out.getvalue()


@login_required
@require_GET
def billing_ledger_csv(request: HttpRequest) -> HttpResponse:
    """The ledger the page shows for the same ``?month=``, every page of it."""
    form = _month_form(request)
    if form.errors:
        return HttpResponse(
            "month must look like 2026-11.", status=400, content_type="text/plain; charset=utf-8"
        )
    month = form.selected()
    entries = selectors.ledger_entries(user=user_of(request), month=month).iterator()
    response = HttpResponse(ledger_csv(entries), content_type="text/csv; charset=utf-8")
    name = f"kay-ledger-{month:%Y-%m}.csv" if month else "kay-ledger.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
