"""Billing's Celery tasks. Tasks take ids, never secrets, and call one service."""

from __future__ import annotations

import logging
import smtplib

from celery import Task, shared_task

from billing.services.low_balance import low_balance_notify as low_balance_notify_service
from core.retries import retry_countdown

logger = logging.getLogger(__name__)

EMAIL_RETRIES = 5


@shared_task(
    bind=True, name="billing.tasks.low_balance_notify", acks_late=True, max_retries=EMAIL_RETRIES
)
def low_balance_notify(self: Task, user_id: int) -> bool:
    """Email one low-balance warning (queued on commit by every charge that leaves the
    balance under the threshold). Idempotent: a second run, or a concurrent one, sends
    nothing more. A mail server that fails is retried with backoff; the claim was released
    for that retry."""
    try:
        return low_balance_notify_service(user_id=user_id)
    except (smtplib.SMTPException, OSError) as exc:
        retries = self.request.retries
        if retries >= EMAIL_RETRIES:
            logger.warning(
                "low-balance email to user %s not sent after %d tries", user_id, retries + 1
            )
            return False
        countdown = retry_countdown(
            retries=retries, retry_after=None, backoff=30, max_retry_after=600
        )
        raise self.retry(exc=exc, countdown=countdown) from None
