"""The assistant's scheduled work."""

from __future__ import annotations

from celery import shared_task

from assistant.services.ask import confirmations_purge


@shared_task(name="assistant.tasks.purge_confirmations", acks_late=True)
def purge_confirmations() -> int:
    """Delete expired and settled pending actions (their conversation state included)."""
    return confirmations_purge()
