"""Low balance: one email when a charge takes the balance under the threshold, and the
dashboard banner's state.

The email is sent once per drop: ``BillingAccount.low_balance_notified_at`` records it, and
a later drop sends again only if the ledger shows the balance went back to the threshold or
above since then (a top-up), so no other service has to remember to re-arm it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from billing.models import BillingAccount, CreditLedgerEntry
from billing.selectors import setting_micros
from billing.templatetags.money import dollars


def low_balance_threshold_micros() -> int:
    """``BILLING_LOW_BALANCE_USD`` in micro-dollars; 0 turns the email and banner off."""
    return setting_micros("BILLING_LOW_BALANCE_USD")


@dataclass(frozen=True)
class LowBalance:
    balance_micros: int
    threshold_micros: int


def low_balance_for(*, user_id: int) -> LowBalance | None:
    """The banner's state in one query: set once a charge took the balance under the
    threshold (the email's trigger) until a top-up lifts it back, else None."""
    threshold = low_balance_threshold_micros()
    if threshold <= 0:
        return None
    row = (
        BillingAccount.objects.filter(
            user_id=user_id,
            balance_micros__lt=threshold,
            low_balance_notified_at__isnull=False,
        )
        .values_list("balance_micros", flat=True)
        .first()
    )
    return None if row is None else LowBalance(balance_micros=row, threshold_micros=threshold)


def _rose_since(*, account_id: int, since: datetime, threshold: int) -> bool:
    """Whether the balance was at or above the threshold after ``since`` (a top-up)."""
    return CreditLedgerEntry.objects.filter(
        account_id=account_id, created_at__gt=since, balance_after_micros__gte=threshold
    ).exists()


def low_balance_notify(*, user_id: int) -> bool:
    """Email the user once their balance is under ``BILLING_LOW_BALANCE_USD``; True if sent.

    Safe to run any number of times, concurrently too: the send is claimed with a
    conditional UPDATE on the notified-at value read, so of two workers evaluating the same
    drop only the one whose UPDATE matched sends. A failed send releases the claim (and
    raises) so the task's retry can send it."""
    threshold = low_balance_threshold_micros()
    if threshold <= 0:
        return False
    account = (
        BillingAccount.objects.filter(user_id=user_id)
        .select_related("user")
        .only("id", "balance_micros", "low_balance_notified_at", "user__email", "user__name")
        .first()
    )
    if account is None or account.balance_micros >= threshold:
        return False
    previous = account.low_balance_notified_at
    if previous is not None and not _rose_since(
        account_id=account.pk, since=previous, threshold=threshold
    ):
        return False  # this drop was already announced
    now = timezone.now()
    claimed = BillingAccount.objects.filter(
        pk=account.pk, balance_micros__lt=threshold, low_balance_notified_at=previous
    ).update(low_balance_notified_at=now)
    if not claimed:
        return False  # another worker sent it, or a top-up landed in between
    try:
        _send(account=account, threshold=threshold)
    except Exception:
        BillingAccount.objects.filter(pk=account.pk, low_balance_notified_at=now).update(
            low_balance_notified_at=previous
        )
        raise
    return True


def _send(*, account: BillingAccount, threshold: int) -> None:
    context = {
        "name": account.user.name or account.user.email,
        "balance": dollars(account.balance_micros),
        "threshold": dollars(threshold),
        "billing_url": f"{settings.APP_URL}{reverse('billing:index')}",
    }
    subject = render_to_string("billing/email/low_balance_subject.txt", context).strip()
    body = render_to_string("billing/email/low_balance.txt", context)
    send_mail(subject, body, None, [account.user.email])
