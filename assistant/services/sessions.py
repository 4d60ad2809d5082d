"""A user's conversations: renaming and deleting them, and the one turn that may run on
each at a time."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from assistant.models import AssistantRun, InteractiveSession, PendingConfirmation
from assistant.services.confirm import CONFIRMATION_TTL
from core.errors import ApplicationError, Conflict

TURN_BUSY = (
    "A turn is already running in this conversation (or waits for your approval): "
    "wait for it to finish, then ask again."
)
_MARGIN = timedelta(seconds=60)  # past the task's hard time limit
ENDED = (
    AssistantRun.Status.COMPLETED,
    AssistantRun.Status.CANCELLED,
    AssistantRun.Status.FAILED,
)


def session_rename(*, session: InteractiveSession, title: str) -> InteractiveSession:
    """Give a conversation a new title (1 to 200 characters after trimming)."""
    title = " ".join(title.split())
    if not title:
        raise ApplicationError(
            "Give the conversation a title.",
            code="validation_error",
            fields={"title": ["This field may not be blank."]},
        )
    session.title = title[:200]
    session.save(update_fields=["title", "updated_at"])
    return session


def session_delete(*, session: InteractiveSession) -> None:
    """Delete a conversation; its runs stay for billing, without the link."""
    session.delete()


def turn_stale_after() -> timedelta:
    """The longest a turn can hold its conversation: the run up to the task's time limit,
    then a wait for approval (the resumed run claims it afresh). A claim older than this
    was left by a run nobody will end (the reaper frees those sooner)."""
    return timedelta(seconds=int(settings.CELERY_TASK_TIME_LIMIT)) + CONFIRMATION_TTL + _MARGIN


def _turn_over(*, holder: int, started: datetime | None) -> bool:
    """Whether the turn held by run ``holder`` no longer needs the conversation: its run
    ended (the worker frees it just after), its approval can no longer come, or the claim
    is stale."""
    now = timezone.now()
    if started is None or started < now - turn_stale_after():
        return True
    status = AssistantRun.objects.filter(pk=holder).values_list("status", flat=True).first()
    if status is None or status in ENDED:
        return True
    if status == AssistantRun.Status.PENDING_CONFIRMATION:
        return not PendingConfirmation.objects.filter(
            run_id=holder, used_at__isnull=True, expires_at__gt=now
        ).exists()
    return False


def session_turn_claim(*, session_id: int, run: AssistantRun) -> None:
    """Hold the conversation for ``run``'s turn, else ``Conflict`` (409): two turns at once
    would each save the history they started from, and the last would erase the other's.
    Taken by a compare-and-set on the holder (one conditional UPDATE on the session's own
    row), so of two racing turns exactly one gets it."""
    for _ in range(3):
        current = (
            InteractiveSession.objects.filter(pk=session_id)
            .values("busy_run_id", "turn_started_at")
            .first()
        )
        if current is None:
            return  # deleted meanwhile: nothing to protect
        holder = current["busy_run_id"]
        if holder is not None and not _turn_over(holder=holder, started=current["turn_started_at"]):
            break
        same_holder = Q(busy_run__isnull=True) if holder is None else Q(busy_run_id=holder)
        claim = InteractiveSession.objects.filter(same_holder, pk=session_id)
        if claim.update(busy_run=run, turn_started_at=timezone.now()):
            return
    raise Conflict(TURN_BUSY, code="turn_in_progress")


def session_turn_resume(*, run_id: int) -> None:
    """The turn's run resumes after /ask/confirm: its claim counts from now."""
    InteractiveSession.objects.filter(busy_run_id=run_id).update(turn_started_at=timezone.now())


def session_turn_end(*, run_id: int) -> None:
    """Free the conversation ``run_id``'s turn holds, once the run has ended (a run
    waiting for approval, or put back for a retry, keeps it)."""
    InteractiveSession.objects.filter(busy_run_id=run_id, busy_run__status__in=ENDED).update(
        busy_run=None, turn_started_at=None
    )


def sessions_free_abandoned() -> int:
    """Free conversations whose turn waits for an approval that can no longer come (its
    confirmation expired or was purged); how many."""
    waiting = PendingConfirmation.objects.filter(
        used_at__isnull=True, expires_at__gt=timezone.now()
    ).values("run_id")
    abandoned = InteractiveSession.objects.filter(
        busy_run__status=AssistantRun.Status.PENDING_CONFIRMATION
    ).exclude(busy_run__in=waiting)
    return abandoned.update(busy_run=None, turn_started_at=None)
