"""The assistant's Celery tasks: runs executed in workers, and scheduled purges."""

from __future__ import annotations

import logging

from celery import shared_task

from assistant.events import run_events_purge
from assistant.services.confirm import confirmations_purge
from assistant.services.reaper import runs_reap
from assistant.services.runs import run_execute
from assistant.services.sessions import session_turn_end
from core.celery_tasks import UnreadResultTask

logger = logging.getLogger(__name__)


@shared_task(name="assistant.tasks.purge_confirmations", acks_late=True)
def purge_confirmations() -> int:
    """Delete expired and settled pending actions (their conversation state included)."""
    return confirmations_purge()


# Its result is never read (the run's row and events are): not stored, and queueing it
# neither subscribes the web process to a result channel nor builds a result backend.
@shared_task(
    name="assistant.tasks.assistant_run_execute",
    acks_late=True,
    ignore_result=True,
    base=UnreadResultTask,
)
def assistant_run_execute(run_id: int) -> str:
    """Execute a queued /ask run (or its resumption after /ask/confirm) in this worker,
    whose process owns the MCP session pool; then free its conversation if it ended."""
    try:
        status = run_execute(run_id=run_id)
    except BaseException:
        try:
            session_turn_end(run_id=run_id)  # whatever stopped it, its conversation is freed
        except Exception:
            logger.exception("assistant run %s: its conversation could not be freed", run_id)
        raise
    if status == "skipped":
        # A redelivery (acks_late): the worker that ran the run may have died before
        # freeing its conversation. A run executed here freed its own (run_execute).
        session_turn_end(run_id=run_id)
    return status


@shared_task(name="assistant.tasks.reap_runs", acks_late=True)
def reap_runs() -> int:
    """Fail runs whose worker died (still running past the time limit), closing their
    credit holds and ending their streams; free conversations nobody will answer."""
    return runs_reap()


@shared_task(name="assistant.tasks.purge_run_events", acks_late=True)
def purge_run_events() -> int:
    """Delete runs' progress events past their hour (the database fallback)."""
    return run_events_purge()
