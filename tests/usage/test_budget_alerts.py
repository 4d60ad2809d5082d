"""Budget alerts: at 80 % and at 100 % of a month's budget the owner gets one email each,
however many workers evaluate at once; a failed send is tried again later."""

from datetime import UTC, datetime, timedelta
from smtplib import SMTPException

import pytest
import time_machine
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.db import connection

from tests.accounts.factories import UserFactory
from tests.helpers.races import run_at_once
from tests.keys.factories import ApiKeyFactory, ProjectFactory
from tests.usage.factories import BudgetFactory, bucket_row
from usage.models import BudgetAlert
from usage.services import usage_buckets_upsert
from usage.services.budgets import budgets_evaluate
from usage.tasks import BUDGET_RETRIES, evaluate_budgets, evaluate_budgets_for_owner

MARCH = datetime(2026, 3, 2, tzinfo=UTC)
NOW = datetime(2026, 3, 20, 12, tzinfo=UTC)


class BrokenMailBackend(BaseEmailBackend):
    tries = 0

    def send_messages(self, email_messages):
        BrokenMailBackend.tries += 1
        raise SMTPException("the mail server is down")


@pytest.fixture(autouse=True)
def _march():
    with time_machine.travel(NOW, tick=False):
        yield


def project_with_budget(owner, name="Web", limit=50_000_000):
    key = ApiKeyFactory(owner=owner, project=ProjectFactory(owner=owner, name=name))
    return key, BudgetFactory(owner=owner, project=key.project, monthly_limit_micros=limit)


def spend(owner, key, micros, *, at=MARCH):
    usage_buckets_upsert(
        owner=owner,
        source="openai_admin",
        rows=[bucket_row(api_key_id=key.pk, external_key_id=f"k_{key.pk}", bucket_start=at,
                         cost_micros=micros)],
    )  # fmt: skip


def test_at_80_percent_the_owner_gets_one_warning_email(alice):
    key, budget = project_with_budget(alice)
    spend(alice, key, 42_000_000)
    assert budgets_evaluate(owner_id=alice.pk) == 1
    (email,) = mail.outbox
    assert email.to == ["alice@example.com"]
    assert email.subject == "[Kay] Web has used 80 % of its monthly budget"
    assert "$42.00 of its $50 monthly budget for March 2026 (84 %)" in email.body
    assert "/dashboard/usage/" in email.body
    alert = BudgetAlert.objects.get()
    assert (alert.budget_id, alert.threshold, alert.month) == (
        budget.pk,
        80,
        NOW.date().replace(day=1),
    )
    assert alert.spent_micros == 42_000_000 and alert.emailed_at is not None


def test_evaluating_again_sends_nothing_more_until_100_percent(alice):
    key, _ = project_with_budget(alice)
    spend(alice, key, 40_000_000)
    budgets_evaluate(owner_id=alice.pk)
    spend(alice, key, 5_000_000, at=MARCH + timedelta(days=1))
    assert budgets_evaluate(owner_id=alice.pk) == 0
    spend(alice, key, 6_000_000, at=MARCH + timedelta(days=2))
    assert budgets_evaluate(owner_id=alice.pk) == 1
    assert budgets_evaluate(owner_id=alice.pk) == 0
    assert [m.subject for m in mail.outbox] == [
        "[Kay] Web has used 80 % of its monthly budget",
        "[Kay] Web has reached its monthly budget",
    ]
    assert "The budget is used up" in mail.outbox[1].body


def test_jumping_past_100_percent_sends_both_emails_once(alice):
    key, _ = project_with_budget(alice)
    spend(alice, key, 70_000_000)
    assert budgets_evaluate(owner_id=alice.pk) == 2
    assert sorted(BudgetAlert.objects.values_list("threshold", flat=True)) == [80, 100]


def test_a_new_month_alerts_again(alice):
    key, _ = project_with_budget(alice)
    spend(alice, key, 45_000_000)
    budgets_evaluate(owner_id=alice.pk)
    with time_machine.travel(datetime(2026, 4, 10, tzinfo=UTC), tick=False):
        assert budgets_evaluate(owner_id=alice.pk) == 0  # nothing spent in April yet
        spend(alice, key, 41_000_000, at=datetime(2026, 4, 9, tzinfo=UTC))
        assert budgets_evaluate(owner_id=alice.pk) == 1
    assert sorted(BudgetAlert.objects.values_list("month", flat=True)) == [
        datetime(2026, 3, 1).date(),
        datetime(2026, 4, 1).date(),
    ]


def test_under_80_percent_nothing_is_sent(alice):
    key, _ = project_with_budget(alice)
    spend(alice, key, 39_999_999)
    assert budgets_evaluate(owner_id=alice.pk) == 0
    assert mail.outbox == [] and not BudgetAlert.objects.exists()


def test_a_key_budget_alerts_about_the_key(alice):
    key = ApiKeyFactory(owner=alice, name="batch")
    BudgetFactory(owner=alice, project=None, api_key=key, monthly_limit_micros=10_000_000)
    spend(alice, key, 10_000_000)
    budgets_evaluate(owner_id=alice.pk)
    assert 'Your key "batch" has spent $10.00 of its $10 monthly budget' in mail.outbox[0].body


def test_only_the_owner_hears_about_their_budget(alice, bob):
    key, _ = project_with_budget(alice)
    spend(alice, key, 50_000_000)
    assert budgets_evaluate(owner_id=bob.pk) == 0
    budgets_evaluate(owner_id=alice.pk)
    assert {address for m in mail.outbox for address in m.to} == {"alice@example.com"}


def test_a_failed_send_is_rolled_back_and_sent_by_a_later_run(alice, settings):
    key, _ = project_with_budget(alice)
    spend(alice, key, 45_000_000)
    settings.EMAIL_BACKEND = f"{__name__}.BrokenMailBackend"
    with pytest.raises(SMTPException):
        budgets_evaluate(owner_id=alice.pk)
    assert not BudgetAlert.objects.exists()
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert budgets_evaluate(owner_id=alice.pk) == 1
    assert len(mail.outbox) == 1


def test_the_mail_server_cannot_hang_an_alert_holding_its_row():
    """The alert is sent inside the transaction that inserts its row (every other
    evaluator of the owner waits on it): an SMTP server that stops answering must time
    out (an OSError the task retries), not block forever."""
    from django.core.mail import get_connection

    smtp = get_connection("django.core.mail.backends.smtp.EmailBackend")
    assert smtp.timeout is not None and 0 < smtp.timeout <= 30


def test_beat_queues_one_evaluation_per_owner_with_budgets(
    alice, bob, charlie, django_capture_on_commit_callbacks
):
    project_with_budget(alice, "A")
    project_with_budget(alice, "B")
    project_with_budget(bob)
    with django_capture_on_commit_callbacks() as queued:
        assert evaluate_budgets() == 2
    assert len(queued) == 2


def test_the_owner_task_evaluates_and_retries_a_mail_failure(alice, settings):
    key, _ = project_with_budget(alice)
    spend(alice, key, 45_000_000)
    assert evaluate_budgets_for_owner.apply(args=[alice.pk]).get() == 1
    spend(alice, key, 10_000_000, at=MARCH + timedelta(days=1))
    settings.EMAIL_BACKEND = f"{__name__}.BrokenMailBackend"
    BrokenMailBackend.tries = 0
    result = evaluate_budgets_for_owner.apply(args=[alice.pk])
    # Eager retries run at once: the first try and BUDGET_RETRIES more, then it gives up.
    assert (result.state, BrokenMailBackend.tries) == ("FAILURE", 1 + BUDGET_RETRIES)
    assert BudgetAlert.objects.count() == 1  # the 100 % alert is still to send


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent workers need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_concurrent_evaluations_send_each_email_once():
    owner = UserFactory(email="owner@example.com")
    key, _ = project_with_budget(owner)
    spend(owner, key, 60_000_000)
    sent = run_at_once(lambda _: budgets_evaluate(owner_id=owner.pk), 6)
    assert sum(sent) == 2
    assert sorted(m.subject for m in mail.outbox) == [
        "[Kay] Web has reached its monthly budget",
        "[Kay] Web has used 80 % of its monthly budget",
    ]
    assert BudgetAlert.objects.filter(emailed_at__isnull=False).count() == 2
