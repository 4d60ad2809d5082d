"""Reads of the assistant's records, always scoped to their owner."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import User
from assistant.models import InteractiveSession
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
