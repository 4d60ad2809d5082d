"""Runs executed by Celery workers (``assistant`` queue): the web stores and queues a run,
a worker executes it with its pooled MCP sessions and publishes its progress
(:mod:`assistant.events`), and the web awaits its end without holding a thread.

``/ask`` and ``/ask/confirm`` refuse synchronously what they can (validation, another
user's session or token, no key or credits) before a run is queued; a refusal found only
in the worker (no Jira connection) fails the run and reaches the waiting request."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from accounts.models import User
from assistant.events import DONE, run_event_publish
from assistant.models import AssistantRun, PendingConfirmation
from assistant.services.ask import AskOutcome, ask_execute, ask_prepare, confirm_execute, run_fail
from assistant.services.confirm import (
    TOKEN_PREFIX,
    _hash,
    action_describe,
    confirm_claim,
    confirmed_message,
)
from assistant.services.conversation import RESULT_SUMMARY
from assistant.services.executor import McpToolExecutor
from assistant.services.tools import Result, Tool, ToolExecutor
from core.errors import ApplicationError, NotFound

logger = logging.getLogger(__name__)
QUEUE = "assistant"
SERVER_ERROR = "Something went wrong on our side. It has been logged."


def run_ask_start(
    *,
    user: User,
    prompt: str,
    interactive: bool = False,
    confirm: bool = False,
    session_id: int | None = None,
) -> AssistantRun:
    """Store an ``/ask`` run for a worker, after everything that can refuse it."""
    return ask_prepare(
        user=user,
        prompt=prompt,
        interactive=interactive,
        confirm=confirm,
        session_id=session_id,
        status=AssistantRun.Status.QUEUED,
    )


def run_confirm_start(*, user: User, token: str, approved: bool) -> AssistantRun:
    """Use up a confirmation token (once, its owner's, unexpired) and leave its run queued
    for a worker to resume with the user's answer."""
    return confirm_claim(user=user, token=token, approved=approved).run


def run_enqueue(*, run_id: int) -> None:
    """Queue the run for the ``assistant`` workers. Called by the web once the request's
    start has returned, so the run's row is committed (requests are not atomic) and no
    open transaction could hold the queueing back."""
    from assistant.tasks import assistant_run_execute  # the task module imports this one

    assistant_run_execute.apply_async(args=[run_id], queue=QUEUE)


@dataclass(frozen=True)
class _PublishingExecutor:
    """The user's tools, each call's start and end published as run events."""

    inner: ToolExecutor
    run_id: int

    def tools(self) -> list[Tool]:
        return list(self.inner.tools())

    def call(self, name: str, arguments: dict[str, Any]) -> Result:
        run_event_publish(
            run_id=self.run_id, kind="tool_start", data={"name": name, "arguments": arguments}
        )
        result = self.inner.call(name, arguments)
        run_event_publish(
            run_id=self.run_id,
            kind="tool_end",
            data={
                "name": name,
                "result": result.text[:RESULT_SUMMARY],
                "durationMs": round(result.duration_ms),
                "error": (result.text or "The tool failed.") if result.is_error else None,
            },
        )
        return result


def tool_executor(user: User) -> ToolExecutor:
    """The tool layer runs use: the user's Jira tools over this process's MCP pool."""
    return McpToolExecutor(user)


def run_execute(*, run_id: int) -> str:
    """Execute a queued run (in a worker) and publish its progress; its final status.

    Claimed by one conditional UPDATE, so a redelivered task (``acks_late``) never runs a
    run twice: a write tool must not be repeated because a worker died after it."""
    claimed = AssistantRun.objects.filter(pk=run_id, status=AssistantRun.Status.QUEUED).update(
        status=AssistantRun.Status.RUNNING, started_at=timezone.now()
    )
    if not claimed:
        return "skipped"
    run = AssistantRun.objects.select_related("owner", "session").get(pk=run_id)
    executor = _PublishingExecutor(tool_executor(run.owner), run_id)

    def on_text(delta: str) -> None:
        run_event_publish(run_id=run_id, kind="text", data={"delta": delta})

    pending = PendingConfirmation.objects.filter(run=run).order_by("-pk").first()
    done: dict[str, Any]
    try:
        if pending is not None and pending.approved is not None:
            pending.run = run
            outcome = confirm_execute(pending=pending, executor=executor, on_text=on_text)
        else:
            outcome = ask_execute(run=run, executor=executor, on_text=on_text)
        if outcome.status == "pending_confirmation":
            run_event_publish(
                run_id=run_id,
                kind="pending",
                data={"action": outcome.action, "message": outcome.message},
            )
        done = {"status": outcome.status}
    except ApplicationError as exc:
        done = {"status": "failed", "httpStatus": exc.status, **exc.as_dict()}
    except Exception:
        # A bug: logged (through the redacting filter), the user told no more.
        logger.exception("assistant run %s failed", run_id)
        error = ApplicationError(SERVER_ERROR, code="server_error", status=500)
        run_fail(run=run, error=error)
        done = {"status": "failed", "httpStatus": 500, **error.as_dict()}
    run_event_publish(run_id=run_id, kind=DONE, data=done)
    return str(done["status"])


# --- Reads for the web --------------------------------------------------------------------


def run_get_for_user(*, user: User, run_id: int) -> AssistantRun:
    """The user's run, else 404 (someone else's is as unknown as a missing one)."""
    run = AssistantRun.objects.filter(owner=user, pk=run_id).first()
    if run is None:
        raise NotFound("No assistant run with this id.")
    return run


def _token_issue(pending: PendingConfirmation) -> str:
    """A fresh token for a waiting action. The worker's own token never leaves it (tasks
    and events carry no secrets), so the owner's request issues one: each issue replaces
    the last, and only the newest works."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    PendingConfirmation.objects.filter(pk=pending.pk, used_at__isnull=True).update(
        token_hash=_hash(token)
    )
    return token


def run_outcome(*, run: AssistantRun) -> AskOutcome | ApplicationError | None:
    """What ``/ask`` answers for the run: its outcome, its error, or None while it runs.
    Reading a run that waits for approval issues its confirmation token."""
    status = run.status
    if status in (AssistantRun.Status.QUEUED, AssistantRun.Status.RUNNING):
        return None
    if status == AssistantRun.Status.FAILED:
        return ApplicationError(
            run.error_message or SERVER_ERROR,
            code=run.error_code or "server_error",
            status=run.error_status or 500,
        )
    pending = PendingConfirmation.objects.filter(run=run).order_by("-pk").first()
    outcome = AskOutcome(
        run=run,
        status="completed",
        message=run.response,
        prompt=run.prompt,
        response=run.response,
        tool_calls=run.tool_calls,
        session_id=run.session_id if run.interactive else None,
    )
    if status == AssistantRun.Status.PENDING_CONFIRMATION and pending is not None:
        outcome.status = "pending_confirmation"
        outcome.response = ""
        outcome.message = action_describe(tool=pending.tool, arguments=pending.arguments)
        outcome.confirmation_token = _token_issue(pending)
        outcome.action = {"tool": pending.tool, "arguments": pending.arguments}
        outcome.session_id = pending.state.get("session_id")
    elif pending is not None and pending.approved is not None:
        outcome.message = confirmed_message(approved=pending.approved)
    return outcome
