"""Reads of the assistant's records, always scoped to their owner."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import User
from assistant.models import AssistantRun, InteractiveSession
from billing.selectors import credits_held_for
from core.errors import NotFound


def sessions_for(*, user: User) -> QuerySet[InteractiveSession]:
    """The user's conversations, most recently used first (messages not loaded)."""
    return InteractiveSession.objects.filter(owner=user).defer("messages")


def session_get_for_user(*, user: User, session_id: int) -> InteractiveSession:
    """The user's session, else 404 (someone else's is as unknown as a missing one)."""
    session = InteractiveSession.objects.filter(owner=user, pk=session_id).first()
    if session is None:
        raise NotFound("No conversation with this id.")
    return session


# What the run page shows: never the key's secret or the conversation's messages.
RUN_PAGE_FIELDS = (
    *(f.name for f in AssistantRun._meta.concrete_fields),
    "api_key__name",
    "session__title",
)


def run_detail_for(*, user: User, run_id: int) -> AssistantRun:
    """The user's run for its page, with the key that paid and its conversation (their
    names only), else 404: someone else's run is as unknown as a missing one."""
    run = (
        AssistantRun.objects.filter(owner=user, pk=run_id)
        .select_related("api_key", "session")
        .only(*RUN_PAGE_FIELDS)
        .first()
    )
    if run is None:
        raise NotFound("No assistant run with this id.")
    return run


def run_paid_with(*, user: User, run: AssistantRun) -> str:
    """Which key paid: ``"own"`` (the user's stored key), ``"credits"`` (Kay's key, held
    and charged per call as ``assistant-run-<id>-<round>``), or ``"deleted_key"`` (a stored
    key deleted since: the run's link to it is gone, and no credits were held). ``user``
    is the run's owner."""
    if run.api_key_id is not None:
        return "own"
    if run.llm_calls == 0 or credits_held_for(
        user=user, reference_prefix=f"assistant-run-{run.pk}-"
    ):
        return "credits"
    return "deleted_key"
