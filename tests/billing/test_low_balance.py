"""Low balance: one email per drop under ``BILLING_LOW_BALANCE_USD`` (once, even with
workers racing), again only after a top-up and a new drop; the dashboard banner."""

from __future__ import annotations

import smtplib

import pytest
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from billing.models import BillingAccount, CreditLedgerEntry
from billing.services.ledger import account_lock, entry_post
from billing.services.low_balance import low_balance_notify
from billing.tasks import low_balance_notify as low_balance_notify_task
from config.celery import app as celery_app
from tests.accounts.factories import UserFactory
from tests.helpers.races import run_at_once

pytestmark = pytest.mark.django_db

Kind = CreditLedgerEntry.Kind
BANNER = "Your credit balance is"


@pytest.fixture(autouse=True)
def _threshold(settings):
    settings.BILLING_LOW_BALANCE_USD = "2.00"
    settings.BILLING_STARTER_GRANT_USD = "0"


_made = iter(range(10_000))


def move(user, micros: int, kind: str = Kind.USAGE) -> None:
    """A charge (negative) or a credit through the ledger's own write path."""
    with transaction.atomic():
        entry_post(
            account_lock(user_id=user.pk),
            kind=kind,
            amount_micros=micros,
            reference=f"test:{next(_made)}",
        )


def balance_of(user) -> int:
    return BillingAccount.objects.get(user=user).balance_micros


def test_a_drop_under_the_threshold_sends_one_email(alice):
    move(alice, 5_000_000, Kind.PURCHASE)
    assert low_balance_notify(user_id=alice.pk) is False  # $5.00: not low
    move(alice, -3_500_000)  # $1.50
    assert low_balance_notify(user_id=alice.pk) is True
    (email,) = mail.outbox
    assert email.to == [alice.email]
    assert email.subject == "[Kay] Your credit balance is low: $1.50"
    assert "under $2.00" in email.body and "/dashboard/billing/" in email.body
    # More charges under the threshold, more evaluations: no second email.
    move(alice, -500_000)
    assert low_balance_notify(user_id=alice.pk) is False
    assert low_balance_notify(user_id=alice.pk) is False
    assert len(mail.outbox) == 1


def test_after_a_top_up_a_new_drop_sends_again(alice):
    move(alice, 1_000_000, Kind.PURCHASE)
    assert low_balance_notify(user_id=alice.pk) is True
    move(alice, 10_000_000, Kind.PURCHASE)  # $11.00: back above
    assert low_balance_notify(user_id=alice.pk) is False
    move(alice, -9_500_000)  # $1.50: a new drop
    assert low_balance_notify(user_id=alice.pk) is True
    assert len(mail.outbox) == 2


def test_a_top_up_that_stays_under_the_threshold_does_not_rearm_it(alice):
    move(alice, 1_000_000, Kind.PURCHASE)
    assert low_balance_notify(user_id=alice.pk) is True
    move(alice, 500_000, Kind.GRANT)  # $1.50: still under $2.00
    move(alice, -200_000)
    assert low_balance_notify(user_id=alice.pk) is False
    assert len(mail.outbox) == 1


def test_a_zero_threshold_turns_it_off(alice, settings):
    settings.BILLING_LOW_BALANCE_USD = "0"
    move(alice, 100, Kind.PURCHASE)
    assert low_balance_notify(user_id=alice.pk) is False
    assert mail.outbox == []


def test_a_user_without_an_account_gets_nothing(alice):
    assert low_balance_notify(user_id=alice.pk) is False
    assert mail.outbox == []


class FailingBackend(BaseEmailBackend):
    def send_messages(self, email_messages):
        raise smtplib.SMTPServerDisconnected("mail server went away")


def test_a_failed_send_is_not_recorded_so_the_retry_sends_it(alice, settings):
    move(alice, 1_000_000, Kind.PURCHASE)
    settings.EMAIL_BACKEND = f"{__name__}.FailingBackend"
    with pytest.raises(smtplib.SMTPException):
        low_balance_notify(user_id=alice.pk)
    assert BillingAccount.objects.get(user=alice).low_balance_notified_at is None
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert low_balance_notify(user_id=alice.pk) is True
    assert len(mail.outbox) == 1


@pytest.fixture
def eager():
    """``delay`` runs the task in this process (as ``CELERY_TASK_ALWAYS_EAGER``)."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


def test_the_charge_that_crosses_the_threshold_queues_the_email_after_commit(
    alice, eager, django_capture_on_commit_callbacks
):
    move(alice, 3_000_000, Kind.PURCHASE)
    with django_capture_on_commit_callbacks(execute=True):
        move(alice, -500_000)  # $2.50: not yet
    assert mail.outbox == []
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        move(alice, -1_000_000)  # $1.50
        assert mail.outbox == []  # nothing before the charge commits
    assert len(callbacks) == 1 and len(mail.outbox) == 1
    assert low_balance_notify_task.apply(args=[alice.pk]).get() is False  # run again: no more


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent workers need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_workers_evaluating_the_same_drop_at_once_send_one_email():
    user = UserFactory()
    move(user, 1_500_000, Kind.PURCHASE)
    workers = 8
    results = run_at_once(lambda _: low_balance_notify(user_id=user.pk), workers)
    assert sorted(results) == [False] * (workers - 1) + [True]
    assert len(mail.outbox) == 1


# --- The banner ----------------------------------------------------------------------


def test_the_banner_shows_from_the_drop_until_a_top_up(alice_browser, alice):
    move(alice, 3_000_000, Kind.PURCHASE)
    assert BANNER not in alice_browser.get("/dashboard/").content.decode()
    move(alice, -1_500_000)
    low_balance_notify(user_id=alice.pk)
    html = alice_browser.get("/dashboard/keys/").content.decode()
    assert f"{BANNER} $1.50, under $2.00." in html
    assert 'href="/dashboard/billing/">Add credits</a>' in html
    move(alice, 5_000_000, Kind.PURCHASE)
    assert BANNER not in alice_browser.get("/dashboard/").content.decode()


def test_the_banner_costs_one_small_query(alice_browser, alice):
    with CaptureQueriesContext(connection) as captured:
        alice_browser.get("/dashboard/")
    reads = [q["sql"] for q in captured.captured_queries if "billing_billingaccount" in q["sql"]]
    assert len(reads) == 1


def test_bob_never_sees_alices_banner(alice, bob_browser):
    move(alice, 1_000_000, Kind.PURCHASE)
    low_balance_notify(user_id=alice.pk)
    assert BANNER not in bob_browser.get("/dashboard/").content.decode()


def test_a_new_user_spending_only_the_starter_grant_gets_the_email_and_banner(
    settings, eager, django_capture_on_commit_callbacks, client
):
    """The defaults: a $1.00 grant is already under the $2.00 threshold, so no charge
    ever crosses it; the first charge under it still sends the one email."""
    settings.BILLING_STARTER_GRANT_USD = "1.00"
    with django_capture_on_commit_callbacks(execute=True):
        carol = UserFactory()
    assert balance_of(carol) == 1_000_000 and mail.outbox == []
    with django_capture_on_commit_callbacks(execute=True):
        move(carol, -100_000)  # $0.90
    with django_capture_on_commit_callbacks(execute=True):
        move(carol, -100_000)  # $0.80: queued again, nothing more sent
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [carol.email]
    client.force_login(carol)
    assert BANNER in client.get("/dashboard/billing/").content.decode()
