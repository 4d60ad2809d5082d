"""Renaming and deleting a user's conversations."""

from __future__ import annotations

from accounts.models import User
from assistant.models import InteractiveSession
from assistant.selectors import session_get_for_user
from core.errors import ApplicationError


def session_rename(*, user: User, session_id: int, title: str) -> InteractiveSession:
    """Give the user's conversation a new title (1 to 200 characters after trimming)."""
    title = " ".join(title.split())
    if not title:
        raise ApplicationError(
            "Give the conversation a title.",
            code="validation_error",
            fields={"title": ["This field may not be blank."]},
        )
    session = session_get_for_user(user=user, session_id=session_id)
    session.title = title[:200]
    session.save(update_fields=["title", "updated_at"])
    return session


def session_delete(*, user: User, session_id: int) -> None:
    """Delete the user's conversation; its runs stay for billing, without the link."""
    session_get_for_user(user=user, session_id=session_id).delete()
