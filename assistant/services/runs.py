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

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from accounts.models import User
from assistant.events import DONE, RunEventWriter, run_events_clear
from assistant.models import AssistantRun, PendingConfirmation
from assistant.serializers import ask_body
from assistant.services.ask import AskOutcome, ask_execute, ask_prepare, confirm_execute, run_fail
from assistant.services.confirm import (
    TOKEN_PREFIX,
    ConfirmationGone,
    _hash,
    action_describe,
    confirm_claim,
    confirm_unclaim,
    confirmed_message,
)
from assistant.services.conversation import RESULT_SUMMARY
from assistant.services.executor import McpToolExecutor
from assistant.services.keys import LLMKey, llm_key_for
from assistant.services.sessions import (
    session_turn_claim,
    session_turn_end,
    session_turn_resume,
)
from assistant.services.tools import Result, Tool, ToolExecutor, executor_sites
from core.durability import transaction_commit_flushed, transaction_commit_unflushed
from core.errors import ApplicationError, NotFound
from core.prepared import PreparedQuery, PreparedUpdate, first_row

logger = logging.getLogger(__name__)
QUEUE = "assistant"
SERVER_ERROR = "Something went wrong on our side. It has been logged."


@dataclass(frozen=True)
class RunStart:
    """A stored run, and in confirm mode the token of the action it may stop at: for the
    request that started (or resumed) it only, which answers with it."""

    run: AssistantRun
    confirmation_token: str = ""


def _token_for(run: AssistantRun) -> str:
    """Confirm mode: the token this execution's pause will be filed under (only its hash
    is stored, on the run, for the worker). Issued here, to the request that starts the
    execution, and nowhere else: a read of the run never issues or replaces a token."""
    if not run.confirm:
        return ""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    AssistantRun.objects.filter(pk=run.pk).update(confirm_token_hash=_hash(token))
    return token


def run_ask_start(
    *,
    user: User,
    prompt: str,
    interactive: bool = False,
    confirm: bool = False,
    session_id: int | None = None,
) -> RunStart:
    """Store an ``/ask`` run for a worker, after everything that can refuse it: a turn
    already running in the same conversation is a 409 (nothing stored)."""
    with transaction.atomic():
        # Not waiting for the disk: lost to a PostgreSQL crash, so is all that follows it
        # in the WAL, and a run commits durably before anything of it leaves Kay (its
        # key's audit row, a credit hold, the flush before a write): nothing of it ran.
        transaction_commit_unflushed()
        run = ask_prepare(
            user=user,
            prompt=prompt,
            interactive=interactive,
            confirm=confirm,
            session_id=session_id,
            status=AssistantRun.Status.QUEUED,
        )
        if run.session_id is not None:
            session_turn_claim(session_id=run.session_id, run=run)
        # A new run starts with no events: had PostgreSQL lost a stored run to a crash (its
        # commit unflushed), its id would come back, and whatever it published (answer
        # included) would replay to the new run's follower, maybe another user.
        run_events_clear(run_id=run.pk)
        return RunStart(run, _token_for(run))


def run_confirm_start(*, user: User, token: str, approved: bool) -> RunStart:
    """Use up a confirmation token (once, its owner's, unexpired) and leave its run queued
    for a worker to resume with the user's answer (the same run: its events go on).

    One transaction: between the token used and the run queued, the run read as waiting
    for an approval that can no longer come, so its conversation was free for another
    turn (or the reaper) to take while the approved one resumed."""
    with transaction.atomic():
        run = confirm_claim(user=user, token=token, approved=approved).run
        session_turn_resume(run_id=run.pk)
        return RunStart(run, _token_for(run))


def run_enqueue(*, run_id: int) -> None:
    """Queue the run for the ``assistant`` workers. Called by the web once the request's
    start has returned, so the run's row is committed (requests are not atomic) and no
    open transaction could hold the queueing back."""
    from assistant.tasks import assistant_run_execute  # the task module imports this one

    try:
        assistant_run_execute.apply_async(args=[run_id], queue=QUEUE)
    except Exception:
        # The broker is unreachable: a run left queued would never run and hold its
        # conversation (and, resumed, the approval it used up) until it went stale.
        logger.exception("assistant run %s could not be queued", run_id)
        error = ApplicationError(QUEUE_DOWN, code="queue_unavailable", status=503)
        _unqueue(run_id=run_id, error=error)
        raise error from None


QUEUE_DOWN = (
    "Kay could not hand this to its workers (the queue is unreachable): nothing was done. "
    "Try again in a moment."
)


def _unqueue(*, run_id: int, error: ApplicationError) -> None:
    """A run that could not be queued: resumed after an approval, the action waits again
    for the same token; else the run fails and frees its conversation."""
    with transaction.atomic():
        run = (
            AssistantRun.objects.select_for_update()
            .filter(pk=run_id, status=AssistantRun.Status.QUEUED)
            .first()
        )
        if run is None:
            return  # a worker has it after all
        answered = (
            PendingConfirmation.objects.filter(
                run_id=run_id, used_at__isnull=False, approved__isnull=False
            )
            .order_by("-pk")
            .first()
            if run.confirm
            else None
        )
        if answered is not None:
            confirm_unclaim(pending=answered)
            return
        run_fail(run=run, error=error)
        session_turn_end(run_id=run_id)


@dataclass
class _PublishingExecutor:
    """The user's tools, each call's start and end published as run events; before the
    run's first write, its claim made durable (see :func:`run_execute`)."""

    inner: ToolExecutor
    run_id: int
    events: RunEventWriter
    claim_durable: bool = False
    _writes: set[str] | None = None

    def tools(self) -> list[Tool]:
        tools = list(self.inner.tools())
        self._writes = {tool.name for tool in tools if not tool.read_only}
        return tools

    def sites(self) -> list[dict[str, Any]] | None:
        return executor_sites(self.inner)

    def call(self, name: str, arguments: dict[str, Any]) -> Result:
        if not self.claim_durable and (self._writes is None or name in self._writes):
            run_claim_flush(run_id=self.run_id)
            self.claim_durable = True
        self.events.publish("tool_start", {"name": name, "arguments": arguments})
        result = self.inner.call(name, arguments)
        self.events.publish(
            "tool_end",
            data={
                "name": name,
                "result": result.text[:RESULT_SUMMARY],
                "durationMs": round(result.duration_ms),
                "error": (result.text or "The tool failed.") if result.is_error else None,
            },
        )
        return result


def run_claim_flush(*, run_id: int) -> None:
    """The run's claim on disk before it changes anything outside Kay: a durable commit
    (a no-op write) flushes the WAL up to it, the unflushed claim included."""
    AssistantRun.objects.filter(pk=run_id).update(started_at=F("started_at"))


def tool_executor(user: User) -> ToolExecutor:
    """The tool layer runs use: the user's Jira tools over this process's MCP pool."""
    return McpToolExecutor(user)


# Every run's claim reads it: compiled once (core.prepared).
_QUEUED_LOCKED: PreparedQuery[AssistantRun] = PreparedQuery(
    lambda run_id: first_row(
        AssistantRun.objects.filter(pk=run_id, status=AssistantRun.Status.QUEUED)
        # With what the run's key is opened with: the key the web chose and the owner's
        # model preference (one query, not three).
        .select_related("owner__catalog_preference__preferred_model", "session", "api_key")
        .select_for_update(of=("self",))
    )
)


_CLAIM = PreparedUpdate(
    lambda run_id, started_at: (
        AssistantRun.objects.filter(pk=run_id, status=AssistantRun.Status.QUEUED),
        {"status": AssistantRun.Status.RUNNING, "started_at": started_at},
    )
)


def run_execute(*, run_id: int) -> str:
    """Execute a queued run (in a worker) and publish its progress; its final status.

    Claimed by one conditional UPDATE, so a redelivered task (``acks_late``) never runs a
    run twice: a write tool must not be repeated because a worker died after it."""
    key: LLMKey | ApplicationError | None = None
    # One commit for the claim and the key's use (its audit row). It need not wait for the
    # disk (core.durability): lost to a PostgreSQL crash, the run would read as never
    # started ("nothing was done"), which stays true until its first write — made durable
    # first (run_claim_flush); a call on credits does so anyway, its hold committing
    # durably (the WAL is flushed in order). But a stored key opened here is audited, and
    # that row must survive the key's use: then the commit waits for the disk — from the
    # start when the web found a stored key (no SET LOCAL either way).
    with transaction.atomic():
        # Read and locked until claimed: a copy read before the claim could be of an
        # earlier part of the run (resumed by an approval in between).
        run = _QUEUED_LOCKED.first(run_id=run_id)
        if run is None:
            return "skipped"  # another delivery has it, or it ended
        unflushed = run.api_key_id is None or run.confirm
        if unflushed:
            transaction_commit_unflushed()
        started = timezone.now()
        _CLAIM.run(run_id=run_id, started_at=started)
        run.status, run.started_at = AssistantRun.Status.RUNNING, started
        if not run.confirm:  # a confirm-mode run may be resuming: its key is checked there
            try:
                with transaction.atomic():  # a failure here must not undo the claim
                    key = llm_key_for(user=run.owner, chosen=run.api_key, preloaded=True)
                if key.api_key is not None and unflushed:
                    transaction_commit_flushed()
            except ApplicationError as exc:
                key = exc  # the run fails below, as a refusal found in the worker
            except Exception:
                logger.exception("assistant run %s: its key could not be resolved", run_id)
                key = ApplicationError(SERVER_ERROR, code="server_error", status=500)
    # A claim that waited for the disk needs no flush before the run's first write.
    durable = not unflushed or (isinstance(key, LLMKey) and key.api_key is not None)
    events = RunEventWriter(run_id)
    try:
        return _run_drive(run, key=key, durable=durable, events=events)
    finally:
        events.close()


def _run_drive(
    run: AssistantRun,
    *,
    key: LLMKey | ApplicationError | None,
    durable: bool,
    events: RunEventWriter,
) -> str:
    """The claimed run executed, its progress published through ``events``."""
    run_id = run.pk
    executor = _PublishingExecutor(tool_executor(run.owner), run_id, events, claim_durable=durable)

    def on_text(delta: str) -> None:
        events.publish("text", {"delta": delta})

    # Only a confirm-mode run can be resuming an answered action.
    pending = (
        PendingConfirmation.objects.filter(run=run).order_by("-pk").first() if run.confirm else None
    )
    done: dict[str, Any]
    outcome: AskOutcome | None = None
    try:
        if pending is not None and pending.approved is not None:
            pending.run = run
            outcome = confirm_execute(pending=pending, executor=executor, on_text=on_text)
        else:
            # The calls are recorded (on credits, charged) once the answer is out (below):
            # they need not hold the answer back (~6 statements a call); the credits they
            # spend are held until then.
            outcome = ask_execute(
                run=run, executor=executor, on_text=on_text, key=key, meter_after_answer=True
            )
        if outcome.status == "pending_confirmation":
            events.publish("pending", {"action": outcome.action, "message": outcome.message})
        done = {"status": outcome.status}
        if outcome.status == "completed":
            # /ask's answer itself, so the waiting request need not read the run back.
            # Not for a pause: its body carries a token, which never travels in events.
            done["body"] = ask_body(outcome)
    except ApplicationError as exc:
        # Refusals fail the run where they are raised (or put its action back), but one
        # raised while its end was being stored left it running until the reaper came.
        runs_fail_where(
            AssistantRun.objects.filter(pk=run_id, status=AssistantRun.Status.RUNNING), exc
        )
        done = failed_done(exc)
    except Exception:
        # A bug: logged (through the redacting filter), the user told no more.
        logger.exception("assistant run %s failed", run_id)
        error = ApplicationError(SERVER_ERROR, code="server_error", status=500)
        try:
            run_fail(run=run, error=error)  # with what it ran (its calls, their tokens)
        except DatabaseError:
            # The run in hand holds what could not be written: its failure's columns only.
            logger.warning("assistant run %s: its failure is stored without its figures", run_id)
            runs_fail_where(AssistantRun.objects.filter(pk=run_id), error)
        done = failed_done(error)
    if run.session_id is not None:
        # Its conversation is free before the answer goes out: a follow-up sent the moment
        # it arrives must not find the turn still taken (409). The task frees it too, so
        # a failure here must not keep the answer from going out.
        try:
            session_turn_end(run_id=run_id)
        except Exception:
            logger.exception("assistant run %s: its conversation could not be freed", run_id)
    try:
        events.publish(DONE, done)
    finally:
        # Recorded even when done could not be published: the run's end is stored.
        if outcome is not None and outcome.after_answer is not None:
            try:
                outcome.after_answer()
            except Exception:
                # The answer stands; the calls stay on the run, for the reaper to record.
                logger.exception("assistant run %s: its calls could not be recorded", run_id)
    return str(done["status"])


# --- Reads for the web --------------------------------------------------------------------


def run_get_for_user(*, user: User, run_id: int) -> AssistantRun:
    """The user's run, else 404 (someone else's is as unknown as a missing one)."""
    run = AssistantRun.objects.filter(owner=user, pk=run_id).first()
    if run is None:
        raise NotFound("No assistant run with this id.")
    return run


@dataclass(frozen=True)
class RunWait:
    """Where a run stands for a follower of its events, and how long to wait for more."""

    status: str
    seconds: float  # 0: the run has ended, or its approval can no longer come

    @property
    def running(self) -> bool:
        return self.status in (AssistantRun.Status.QUEUED, AssistantRun.Status.RUNNING)

    @property
    def pending(self) -> bool:
        return self.status == AssistantRun.Status.PENDING_CONFIRMATION

    @property
    def ended(self) -> bool:
        return not (self.running or self.pending)


def run_stream_wait(*, run_id: int) -> RunWait:
    """How long a follower may wait for the run's next events: while it is queued or
    running, the task's time limit; while it waits for approval, until the confirmation
    expires."""
    status = AssistantRun.objects.filter(pk=run_id).values_list("status", flat=True).first()
    wait = RunWait(status or AssistantRun.Status.FAILED, 0.0)
    if wait.running:
        return RunWait(wait.status, float(settings.CELERY_TASK_TIME_LIMIT))
    if wait.pending:
        expires = (
            PendingConfirmation.objects.filter(run_id=run_id, used_at__isnull=True)
            .order_by("-pk")
            .values_list("expires_at", flat=True)
            .first()
        )
        left = (expires - timezone.now()).total_seconds() if expires else 0.0
        return RunWait(wait.status, max(left, 0.0))
    return wait


def run_outcome(
    *, run: AssistantRun, confirmation_token: str = ""
) -> AskOutcome | ApplicationError | None:
    """What ``/ask`` answers for the run: its outcome, its error, or None while it runs.
    A run waiting for approval carries ``confirmation_token`` when it is the action's
    (given by the request that started the execution), else none: reads never issue one."""
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
    if status == AssistantRun.Status.PENDING_CONFIRMATION and pending is None:
        # Its confirmation was purged (expired a day ago): nothing was done.
        return ConfirmationGone(APPROVAL_GONE)
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
        if confirmation_token and pending.token_hash == _hash(confirmation_token):
            outcome.confirmation_token = confirmation_token
        outcome.action = {"tool": pending.tool, "arguments": pending.arguments}
        outcome.session_id = pending.state.get("session_id")
    elif pending is not None and pending.approved is not None:
        outcome.message = confirmed_message(approved=pending.approved)
    return outcome


APPROVAL_GONE = (
    "This run waited for your approval, which expired without an answer: nothing was done. "
    "Ask again."
)


def runs_fail_where(runs: QuerySet[AssistantRun], error: ApplicationError) -> int:
    """Fail the runs still matching ``runs`` (one conditional UPDATE: a run that moved on
    meanwhile is left alone), as ``run_fail`` does one in hand; how many."""
    return runs.update(
        status=AssistantRun.Status.FAILED,
        error_code=error.code,
        error_message=error.message,
        error_status=error.status,
        finished_at=timezone.now(),
    )


def failed_done(error: ApplicationError) -> dict[str, Any]:
    """The ``done`` event of a failed run: what the waiting request answers."""
    return {"status": "failed", "httpStatus": error.status, **error.as_dict()}
