"""Confirmation tokens for writes waiting on the user's approval: issued with the stored
action, shown once and kept only as a hash, used once by its owner within 10 minutes.

Resuming the run once a token is used is :func:`assistant.services.ask.confirm_execute`."""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from assistant.models import AssistantRun, PendingConfirmation
from assistant.services.conversation import run_key_resolve
from core.errors import ApplicationError, Conflict, NotFound

CONFIRMATION_TTL = timedelta(minutes=10)
TOKEN_PREFIX = "confirm_"


class ConfirmationGone(ApplicationError):
    status = 410
    code = "confirmation_expired"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def confirmation_create(
    *,
    user: User,
    run: AssistantRun,
    tool: str,
    arguments: dict[str, Any],
    state: dict[str, Any],
) -> str:
    """Store the action waiting for approval; its token, for the user only. A run started
    by a request (``assistant.services.runs``) is filed under the hash of the token that
    request holds and answers with (""): the token never leaves the web. The hash is used
    once (cleared on the run, which the caller saves)."""
    filed_under, run.confirm_token_hash = run.confirm_token_hash, ""
    token = "" if filed_under else TOKEN_PREFIX + secrets.token_urlsafe(32)
    PendingConfirmation.objects.create(
        owner=user,
        run=run,
        token_hash=filed_under or _hash(token),
        tool=tool,
        arguments=arguments,
        state=state,
        expires_at=timezone.now() + CONFIRMATION_TTL,
    )
    return token


def action_describe(*, tool: str, arguments: dict[str, Any]) -> str:
    """The action in plain words: ``jira_create_issue`` → "create issue in Jira"."""
    service, _, verb = tool.partition("_")
    what = verb.replace("_", " ") if verb else service
    place = f" in {service.capitalize()}" if verb else ""
    details = ", ".join(
        f"{name.replace('_', ' ')}: {json.dumps(value) if not isinstance(value, str) else value}"
        for name, value in arguments.items()
    )
    sentence = f"Kay wants to {what}{place}"
    sentence += f" with {details}." if details else "."
    return sentence + " Approve to go ahead, or cancel."


def _claim(*, user: User, token: str) -> PendingConfirmation:
    """The pending action this token names, claimed for this request only: one
    conditional UPDATE, so of two racing requests exactly one gets it."""
    digest = _hash(token)
    now = timezone.now()
    claimed = PendingConfirmation.objects.filter(
        owner=user, token_hash=digest, used_at__isnull=True, expires_at__gt=now
    ).update(used_at=now)
    row = PendingConfirmation.objects.filter(owner=user, token_hash=digest).first()
    if row is None:
        # Someone else's token is as unknown as a made-up one.
        raise NotFound(
            "No pending action has this confirmation token.", code="confirmation_not_found"
        )
    if not claimed:
        if row.used_at is not None:
            raise Conflict(
                "This action was already confirmed or cancelled.", code="confirmation_used"
            )
        raise ConfirmationGone("This confirmation expired (they last 10 minutes): ask again.")
    return row


def confirm_claim(*, user: User, token: str, approved: bool) -> PendingConfirmation:
    """Use up ``token`` for ``user`` with their answer, the run left queued for
    :func:`assistant.services.ask.confirm_execute`. The
    token works once, for its owner, for 10 minutes; the
    key is checked before it is used up."""
    run_key_resolve(user=user, reveal=False)
    pending = _claim(user=user, token=token)
    pending.approved = approved
    pending.save(update_fields=["approved"])
    AssistantRun.objects.filter(pk=pending.run_id).update(status=AssistantRun.Status.QUEUED)
    return pending


def confirm_unclaim(*, pending: PendingConfirmation) -> None:
    """Nothing was done: the action waits again for a retry with the same token."""
    PendingConfirmation.objects.filter(pk=pending.pk).update(used_at=None, approved=None)
    AssistantRun.objects.filter(pk=pending.run_id).update(
        status=AssistantRun.Status.PENDING_CONFIRMATION
    )


def confirmed_message(*, approved: bool) -> str:
    return "Action confirmed and executed successfully" if approved else "Action cancelled"


def confirmations_purge() -> int:
    """Delete pending actions past their expiry or already settled; how many went. Not
    one whose run is queued or running: an approved action waiting for its worker is
    what the worker resumes (without it the run would start over from the prompt, its
    calls numbered afresh and so not metered again)."""
    deleted, _ = (
        PendingConfirmation.objects.filter(
            Q(expires_at__lte=timezone.now()) | Q(used_at__isnull=False)
        )
        .exclude(run__status__in=(AssistantRun.Status.QUEUED, AssistantRun.Status.RUNNING))
        .delete()
    )
    return deleted
