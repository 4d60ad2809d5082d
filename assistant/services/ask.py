"""``/ask`` and ``/ask/confirm``: a run stored, executed through its conversation
(:mod:`assistant.services.conversation`), and ended: completed (an interactive turn saved
to its session), paused on a write for approval (:mod:`assistant.services.confirm`), or
failed; and a paused run resumed with the user's answer."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from assistant.llm import ToolCall
from assistant.models import AssistantRun, InteractiveSession, PendingConfirmation
from assistant.selectors import session_get_for_user
from assistant.services.confirm import (
    action_describe,
    confirm_claim,
    confirm_unclaim,
    confirmation_create,
    confirmed_message,
)
from assistant.services.conversation import (
    DECLINED,
    Conversation,
    TextSink,
    calls_as_json,
    run_key_resolve,
)
from assistant.services.history import history_cap
from assistant.services.keys import LLMKey, llm_key_for
from assistant.services.prompts import system_prompt_render
from assistant.services.tools import ToolExecutor, executor_sites
from billing.services import credits_holds_lower
from core.durability import transaction_commit_unflushed
from core.errors import ApplicationError
from core.prepared import PreparedQuery, PreparedSave, PreparedUpdate, first_row
from core.prepared_insert import PreparedInsert


@dataclass
class AskOutcome:
    """What ``/ask`` and ``/ask/confirm`` answer (see ``assistant.serializers``)."""

    run: AssistantRun
    status: str
    message: str
    prompt: str
    response: str
    tool_calls: list[dict[str, Any]]
    session_id: int | None = None
    confirmation_token: str = ""
    action: dict[str, Any] | None = None
    # Work left for once the answer is out (``ask_execute(meter_after_answer=True)``).
    after_answer: Callable[[], None] | None = None


# Every /ask stores one: its INSERT compiled once (core.prepared).
_RUNS: PreparedInsert[AssistantRun] = PreparedInsert(AssistantRun)


def ask_prepare(
    *,
    user: User,
    prompt: str,
    interactive: bool = False,
    confirm: bool = False,
    session_id: int | None = None,
    status: str = AssistantRun.Status.RUNNING,
) -> AssistantRun:
    """Check what can refuse ``prompt`` (another user's session, no key or credits) and
    store the run to execute (see :func:`ask_execute`); nothing is asked yet."""
    session = session_get_for_user(user=user, session_id=session_id) if session_id else None
    interactive = interactive or session is not None
    key = run_key_resolve(user=user, reveal=False)  # opened where it is used
    mode = (
        AssistantRun.Mode.CONFIRM
        if confirm
        else AssistantRun.Mode.INTERACTIVE
        if interactive
        else AssistantRun.Mode.ONE_SHOT
    )
    return _RUNS.create(
        owner=user,
        session=session,
        mode=mode,
        interactive=interactive,
        confirm=confirm,
        status=status,
        prompt=prompt,
        provider=key.provider,
        model=key.model,
        api_key=key.api_key,
    )


def ask_execute(
    *,
    run: AssistantRun,
    executor: ToolExecutor,
    on_text: TextSink | None = None,
    key: LLMKey | ApplicationError | None = None,
    meter_after_answer: bool = False,
) -> AskOutcome:
    """Execute a prepared run: the loop with the tools ``executor`` offers. A refusal
    found only now (no Jira connection, the key gone) fails the run and is raised.
    ``key``: the key (or the refusal) the caller resolved already; None: resolved here.
    ``meter_after_answer``: a completed run's calls are recorded (on credits, charged) by
    the outcome's ``after_answer``, for the caller to run once the answer is out (the run's
    end, its cost included, is stored before either)."""
    user = run.owner
    try:
        # The balance was checked when the run was stored, and the first call's hold
        # checks it again under the account's lock: not read a third time here.
        if key is None:
            key = llm_key_for(user=user)
        if isinstance(key, ApplicationError):
            raise key
        _key_record(run, key)
        tools = list(executor.tools())
    except ApplicationError as exc:
        run_fail(run=run, error=exc)
        raise
    session = run.session
    history = list(session.messages) if session else []
    conversation = Conversation(
        user=user,
        run=run,
        key=key,
        executor=executor,
        tools=tools,
        system=system_prompt_render(
            user=user, tools=tools, interactive=run.interactive, sites=executor_sites(executor)
        ),
        messages=[*history, {"role": "user", "content": run.prompt}],
        confirm=run.confirm,
        interactive=run.interactive,
        session_id=session.pk if session else None,
        on_text=on_text,
    )
    return _continue(conversation, meter_after_answer=meter_after_answer)


def ask_run(
    *,
    user: User,
    prompt: str,
    executor: ToolExecutor,
    interactive: bool = False,
    confirm: bool = False,
    session_id: int | None = None,
    on_text: TextSink | None = None,
) -> AskOutcome:
    """Answer ``prompt`` for ``user`` with the tools ``executor`` offers, in this process.

    Interactive: the session's history is sent (trimmed), and the turn is saved to it
    (a new session when ``session_id`` is None). Confirm: a write stops the run with a
    token (see :func:`ask_confirm`). Refusals (no key or credits, no connection, a
    session of someone else's) come before any model call."""
    run = ask_prepare(
        user=user, prompt=prompt, interactive=interactive, confirm=confirm, session_id=session_id
    )
    return ask_execute(run=run, executor=executor, on_text=on_text)


def _key_record(run: AssistantRun, key: LLMKey) -> None:
    """The run shows the key its calls really go out with (saved with its next write): the
    one read when it was stored may have been added, replaced or deleted since."""
    run.api_key = key.api_key
    run.provider = key.provider
    run.model = key.model


def run_fail(*, run: AssistantRun, error: ApplicationError) -> None:
    """Record why a run failed, as /ask answers it."""
    run.status = AssistantRun.Status.FAILED
    run.error_code = error.code
    run.error_message = error.message
    run.error_status = error.status
    run.finished_at = timezone.now()
    run.save()


def _continue(conversation: Conversation, *, meter_after_answer: bool = False) -> AskOutcome:
    run = conversation.run
    try:
        response, pending = conversation.drive()
    except ApplicationError as exc:
        run.tool_calls = conversation.records
        with transaction.atomic():  # the calls made are recorded with the failure
            conversation.meter()
            run_fail(run=run, error=exc)
        raise
    except BaseException:
        # A bug, or the worker interrupted: the run fails above us (or the reaper fails
        # it), its calls still recorded and charged, its holds closed.
        conversation.meter()
        raise
    # The end's transaction records (and on credits charges) the calls with the run
    # (unless they wait for the answer to go out); should it fail (rolled back), they are
    # recorded on their own, as the run fails above us.
    unpaid = conversation.unpaid()
    try:
        if pending is not None:
            return _pause(conversation, pending)
        return _finish(conversation, response, meter=not meter_after_answer)
    except BaseException:
        conversation.unmetered, conversation.holds = unpaid
        conversation.meter()  # first-wins by call_id, charged by record: never twice
        run.calls_unrecorded = None  # recorded just now: the failed run keeps none
        raise


# What running a run changes on it (the rest was stored with it, or by its claim): its
# end writes these only, not every column.
_FINISHED_FIELDS = (
    "status",
    "response",
    "tool_calls",
    "finished_at",
    "calls_unrecorded",
    "session",
    "api_key",
    "provider",
    "model",
    "llm_calls",
    "input_tokens",
    "output_tokens",
    "cost_micros",
)
_RUN_FINISHED: PreparedSave[AssistantRun] = PreparedSave(AssistantRun, _FINISHED_FIELDS)


def _finish(conversation: Conversation, response: str, *, meter: bool = True) -> AskOutcome:
    run = conversation.run
    run.status = AssistantRun.Status.COMPLETED
    run.response = response
    run.tool_calls = conversation.records
    run.finished_at = timezone.now()
    if not meter:  # kept on the run until written (for the reaper, should this worker die)
        run.calls_unrecorded = calls_as_json(conversation.unmetered) or None
    # The turn (and, unless they wait for the answer, the calls) saved with the run that
    # answered. Unless calls on credits are charged in it, a commit that need not wait
    # for the disk: should PostgreSQL crash just after it, the run reads as lost ("check
    # Jira"), which the reaper answers truthfully, and its holds are released.
    with transaction.atomic():
        if not (meter and conversation.key.billed_to_credits):
            transaction_commit_unflushed()
        if meter:
            conversation.meter()
        elif conversation.key.billed_to_credits and conversation.holds:
            # Charged just after the answer goes out: until then the run sets aside what
            # its calls cost, not their worst case, so a follow-up sent the moment the
            # answer arrives finds the rest of the balance available.
            credits_holds_lower(holds=conversation.holds, to_micros=conversation.spent_micros)
        if conversation.interactive:
            session = _session_save(conversation)
            run.session = session
            conversation.session_id = session.pk if session else None
        _RUN_FINISHED.save(run)
    return AskOutcome(
        run=run,
        status="completed",
        message=response,
        prompt=run.prompt,
        response=response,
        tool_calls=conversation.records,
        session_id=conversation.session_id,
        after_answer=partial(_record_after_answer, conversation) if run.calls_unrecorded else None,
    )


def _record_after_answer(conversation: Conversation) -> None:
    """The completed run's calls recorded (on credits, charged and its holds closed), and
    no longer kept on it.
    The run's row is locked first, as the reaper takes it (the reverse order could
    deadlock with the owner's usage lock)."""
    run_id = conversation.run.pk
    with transaction.atomic():
        if _UNRECORDED_LOCKED.first(run_id=run_id) is None:
            return  # the reaper recorded them
        conversation.meter()
        _UNRECORDED_CLEAR.run(run_id=run_id)
    conversation.run.calls_unrecorded = None


# Every completed run runs these once it has answered (core.prepared).
_UNRECORDED_LOCKED: PreparedQuery[int] = PreparedQuery(
    lambda run_id: first_row(
        AssistantRun.objects.filter(pk=run_id, calls_unrecorded__isnull=False)
        .select_for_update()
        .values_list("pk", flat=True)
    )
)
_UNRECORDED_CLEAR = PreparedUpdate(
    lambda run_id: (
        AssistantRun.objects.filter(pk=run_id, calls_unrecorded__isnull=False),
        {"calls_unrecorded": None},
    )
)


def _session_save(conversation: Conversation) -> InteractiveSession | None:
    if conversation.session_id is None:
        return InteractiveSession.objects.create(
            owner=conversation.user,
            title=" ".join(conversation.run.prompt.split())[:80],
            messages=history_cap(conversation.messages),
        )
    session = InteractiveSession.objects.filter(
        owner=conversation.user, pk=conversation.session_id
    ).first()
    if session is None:
        # Deleted while an action waited for approval: the approved write is done, so the
        # run completes (a 404 now would read as "not done" and invite a second write);
        # the deleted history is not brought back.
        return None
    session.messages = history_cap(conversation.messages)  # bounded: the newest turns
    session.save(update_fields=["messages", "updated_at"])
    return session


def _pause(conversation: Conversation, pending: ToolCall) -> AskOutcome:
    """Store the conversation and the action; the token goes to the user only."""
    run = conversation.run
    try:
        arguments = json.loads(pending.arguments or "{}")
    except (ValueError, RecursionError):
        arguments = {}
    if not isinstance(arguments, dict):
        # Shown as nothing; approved, it runs as it reads, refused as not an object.
        arguments = {}
    with transaction.atomic():
        conversation.meter()
        token = confirmation_create(
            user=conversation.user,
            run=run,
            tool=pending.name,
            arguments=arguments,
            state=conversation.state(pending),
        )
        run.status = AssistantRun.Status.PENDING_CONFIRMATION
        run.tool_calls = conversation.records
        run.save()
    return AskOutcome(
        run=run,
        status="pending_confirmation",
        message=action_describe(tool=pending.name, arguments=arguments),
        prompt=run.prompt,
        response="",
        tool_calls=conversation.records,
        session_id=conversation.session_id,
        confirmation_token=token,
        action={"tool": pending.name, "arguments": arguments},
    )


def confirm_execute(
    *, pending: PendingConfirmation, executor: ToolExecutor, on_text: TextSink | None = None
) -> AskOutcome:
    """Approve (run exactly the stored action) or cancel (tell the model) a claimed
    action, then let the model finish."""
    user = pending.owner
    approved = bool(pending.approved)
    state = pending.state
    run = pending.run
    run.status = AssistantRun.Status.RUNNING
    try:
        key = run_key_resolve(user=user)
        tools = list(executor.tools())
    except ApplicationError:
        confirm_unclaim(pending=pending)
        raise
    _key_record(run, key)
    conversation = Conversation(
        user=user,
        run=run,
        key=key,
        executor=executor,
        tools=tools,
        system=system_prompt_render(
            user=user,
            tools=tools,
            interactive=state["interactive"],
            sites=executor_sites(executor),
        ),
        messages=state["messages"],
        confirm=True,
        interactive=state["interactive"],
        session_id=state["session_id"],
        rounds=state["rounds"],
        records=state["records"],
        on_text=on_text,
    )
    call = ToolCall(**state["pending"])
    if approved:
        try:
            conversation.execute(call)
        except ApplicationError as exc:
            if getattr(exc, "maybe_done", False):
                # The server went away during the write: it may have run, so the same
                # token must not run it a second time.
                run.tool_calls = conversation.records
                run_fail(run=run, error=exc)
                raise
            # No tool could run at all (server unreachable, Jira needs reconnecting).
            confirm_unclaim(pending=pending)
            raise
    else:
        conversation.tool_message(call, DECLINED)
    try:
        outcome = _continue(conversation)
    except ApplicationError as exc:
        done = [r for r in conversation.records if r["id"] == call.id and not r["error"]]
        if approved and done:
            # The write ran: a model or credit error after it must not read as "not
            # done" (asked for again, it would run twice).
            exc.message = (
                f"The approved action ({call.name}) was done, but the assistant could not "
                f"finish: {exc.message}"
            )
            AssistantRun.objects.filter(pk=run.pk).update(error_message=exc.message)
        raise
    if outcome.status == "completed":
        outcome.message = confirmed_message(approved=approved)
        if not approved:
            run.status = AssistantRun.Status.CANCELLED
            run.save(update_fields=["status"])
    return outcome


def ask_confirm(
    *,
    user: User,
    token: str,
    approved: bool,
    executor: ToolExecutor,
    on_text: TextSink | None = None,
) -> AskOutcome:
    """Approve or cancel a pending action and let the model finish, in this process
    (see :func:`confirm_claim` and :func:`confirm_execute`)."""
    pending = confirm_claim(user=user, token=token, approved=approved)
    return confirm_execute(pending=pending, executor=executor, on_text=on_text)
