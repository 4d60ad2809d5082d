"""Monthly budgets of projects and keys, and the 80 % / 100 % emails about them."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse

from accounts.models import User
from core.errors import ApplicationError, NotFound
from keys.models import ApiKey, Project
from usage.models import Budget, BudgetAlert
from usage.selectors import BudgetState, budget_states, month_start

logger = logging.getLogger(__name__)

# A billion dollars a month: past any real budget, well inside the column.
MAX_LIMIT_MICROS = 10**15


def budget_set(
    *,
    acting_user: User,
    project: Project | None = None,
    api_key: ApiKey | None = None,
    monthly_limit_micros: int,
) -> Budget:
    """Set the monthly budget of one of the user's projects or keys (exactly one),
    creating it or changing its limit. Another user's project or key is a ``NotFound``.
    Alerts already sent this month stay sent."""
    if (project is None) == (api_key is None):
        raise ApplicationError(
            "Choose a project or a key for the budget, not both.",
            fields={"project_id": ["Give project_id or key_id."]},
        )
    scope = project if project is not None else api_key
    assert scope is not None
    if scope.owner_id != acting_user.pk:
        raise NotFound("Project not found." if project is not None else "Key not found.")
    if not 0 < monthly_limit_micros <= MAX_LIMIT_MICROS:
        raise ApplicationError(
            "A monthly budget is more than $0 and at most $1,000,000,000.",
            fields={"monthly_limit_usd": ["Enter an amount above 0."]},
        )
    lookup = {"project": project} if project is not None else {"api_key": api_key}
    try:
        with transaction.atomic():
            budget, _ = Budget.objects.update_or_create(
                **lookup,
                defaults={"owner": acting_user, "monthly_limit_micros": monthly_limit_micros},
            )
    except IntegrityError:
        # Another request created this scope's budget between our read and insert: ours
        # is now a change of its limit.
        budget = Budget.objects.get(**lookup)
        budget.monthly_limit_micros = monthly_limit_micros
        budget.save(update_fields=["monthly_limit_micros", "updated_at"])
    return budget


def budget_delete(*, acting_user: User, budget: Budget) -> None:
    """Remove one of the user's budgets (with its alerts)."""
    if budget.owner_id != acting_user.pk:
        raise NotFound("Budget not found.")
    budget.delete()


def _send_alert(owner: User, state: BudgetState, threshold: int) -> None:
    context = {
        "state": state,
        "threshold": threshold,
        "usage_url": settings.APP_URL + reverse("usage:page"),
    }
    subject = render_to_string("usage/email/budget_alert_subject.txt", context)
    send_mail(
        subject=settings.ACCOUNT_EMAIL_SUBJECT_PREFIX + " ".join(subject.split()),
        message=render_to_string("usage/email/budget_alert_message.txt", context),
        from_email=None,
        recipient_list=[owner.email],
    )


def budgets_evaluate(*, owner_id: int) -> int:
    """Email the owner about each budget that has reached 80 % or 100 % this month (UTC),
    once per budget, threshold and month. Returns the number of emails sent.

    Safe to run from several workers at once: the email goes from the transaction that
    inserts the ``BudgetAlert`` row, and the unique constraint makes every other insert
    fail (on PostgreSQL it waits for the first to commit or roll back). An email that
    cannot be sent rolls its row back, so a later run tries again."""
    owner = User.objects.filter(pk=owner_id, is_active=True).first()
    if owner is None or not owner.email:
        return 0
    month = month_start(datetime.now(UTC).date())
    sent = 0
    for state in budget_states(owner=owner, month=month):
        for threshold in BudgetAlert.Threshold.values:
            if state.spent_micros * 100 < state.limit_micros * threshold:
                continue
            try:
                with transaction.atomic():
                    alert = BudgetAlert.objects.create(
                        budget_id=state.budget_id,
                        month=month,
                        threshold=threshold,
                        spent_micros=state.spent_micros,
                    )
                    _send_alert(owner, state, threshold)
                    alert.emailed_at = datetime.now(UTC)
                    alert.save(update_fields=["emailed_at"])
            except IntegrityError:
                continue  # another evaluator sent (or is sending) this one
            sent += 1
            logger.info("budget %s alert at %s %% sent", state.budget_id, threshold)
    return sent
