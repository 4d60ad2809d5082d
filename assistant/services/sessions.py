"""Renaming and deleting a user's conversations."""

from __future__ import annotations

from assistant.models import InteractiveSession
from core.errors import ApplicationError


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
