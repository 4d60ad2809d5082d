"""``/ask`` and ``/ask/confirm``: the model, its tools, and the user's approval of writes.

One run is a bounded loop: ask the model; if it wants tools, run them (several at once
when it asks for several) and feed every result back, errors included, so it can correct
itself or explain; stop when it answers in words, or after ``ASSISTANT_MAX_TOOL_ROUNDS``.
In confirm mode read-only tools run, and the first tool that changes data stops the run
until the user approves or cancels it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from assistant.llm import Completion, ToolCall, chat_complete
from assistant.models import AssistantRun, InteractiveSession, PendingConfirmation
from assistant.selectors import session_get_for_user
from assistant.services.history import history_trim, tokens_estimate
from assistant.services.keys import LLMKey, llm_key_for
from assistant.services.prompts import system_prompt_render
from assistant.services.tools import Tool, ToolExecutor, openai_tools
from billing.selectors import billing_balance
from billing.services import (
    charge_micros,
    credits_release,
    credits_reserve,
    credits_settle,
    reserve_estimate_micros,
)
from billing.services.credits import NO_CREDITS
from core.errors import ApplicationError, Conflict, InsufficientCredits, NotFound
from usage.services.metering import usage_record_llm_call
from usage.services.pricing import catalog_prices

CONFIRMATION_TTL = timedelta(minutes=10)
TOKEN_PREFIX = "confirm_"
# What the model reads of one tool result, and what the run keeps to show the user.
RESULT_FOR_MODEL = 20_000
RESULT_SUMMARY = 500
DECLINED = "The user declined this action, so it was not run. Do not try it again."
ONE_AT_A_TIME = (
    "Not run: only one change can wait for the user's approval at a time. "
    "Ask for this one again after the first is settled."
)

TextSink = Callable[[str], None]


class ToolRoundLimit(ApplicationError):
    status = 422
    code = "tool_round_limit"


class ConfirmationGone(ApplicationError):
    status = 410
    code = "confirmation_expired"


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


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _summary(text: str) -> str:
    return text if len(text) <= RESULT_SUMMARY else text[: RESULT_SUMMARY - 1] + "…"


@dataclass
class _Conversation:
    """One run's state while it runs; ``state()``/``restore`` carry it across a pause."""

    user: User
    run: AssistantRun
    key: LLMKey
    executor: ToolExecutor
    tools: list[Tool]
    system: str
    messages: list[dict[str, Any]]
    confirm: bool
    interactive: bool
    session_id: int | None = None
    rounds: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)
    on_text: TextSink | None = None

    def _tool(self, name: str) -> Tool | None:
        return next((tool for tool in self.tools if tool.name == name), None)

    def _history_budget(self, system: dict[str, Any], tools: list[dict[str, Any]]) -> int:
        """``ASSISTANT_HISTORY_TOKENS``, less when the model's context window (from the
        catalog) cannot hold that beside the prompt, the tools and the answer."""
        budget = int(settings.ASSISTANT_HISTORY_TOKENS)
        if self.key.context_tokens:
            fixed = tokens_estimate([system, *tools]) + int(settings.OPENAI_MAX_TOKENS)
            budget = min(budget, self.key.context_tokens - fixed)
        return budget

    def _worst_cost_micros(self, sent: list[dict[str, Any]]) -> int:
        """What one call can cost at most (the prompt as estimated, a whole answer) at the
        catalog's price with the margin, and never less than ``BILLING_RESERVE_USD``: a
        fixed hold below what a pricey model costs let a burst of parallel calls spend
        many times the balance (the charge past it is written off, not owed)."""
        pair = (self.key.provider, self.key.model)
        price = catalog_prices(pairs={pair})[pair]
        floor = reserve_estimate_micros()
        if price is None:
            return floor
        worst = price.cost_micros(
            input_tokens=tokens_estimate(sent),
            output_tokens=int(settings.OPENAI_MAX_TOKENS),
            cached_tokens=0,
        )
        return max(floor, charge_micros(worst))

    def llm_call(self) -> Completion:
        """One model round over the trimmed history, metered once."""
        self.rounds += 1
        system = {"role": "system", "content": self.system}
        tools = openai_tools(self.tools)
        history = history_trim(self.messages, budget=self._history_budget(system, tools))
        call_id = f"assistant-run-{self.run.pk}-{self.rounds}"
        # The server's key spends the user's credits: hold an estimate first, so parallel
        # runs cannot spend the same balance; settle to the metered cost after.
        hold = (
            credits_reserve(
                user=self.user,
                estimate_micros=self._worst_cost_micros([system, *history, *tools]),
                reference=call_id,
            )
            if self.key.billed_to_credits
            else None
        )
        try:
            completion = chat_complete(
                api_key=self.key.secret,
                base_url=self.key.base_url,
                model=self.key.model,
                messages=[system, *history],
                tools=tools,
                user_host=self.key.user_host,
                on_text=self.on_text,
            )
        except ApplicationError:
            if hold is not None:
                credits_release(hold=hold)
            raise
        metered = usage_record_llm_call(
            owner=self.user,
            call_id=call_id,
            api_key=self.key.api_key,
            provider=self.key.provider,
            model=completion.model or self.key.model,
            input_tokens=completion.input_tokens,
            output_tokens=completion.output_tokens,
            cached_tokens=completion.cached_tokens,
        )
        if hold is not None:
            credits_settle(hold=hold, metered_call=metered)
        run = self.run
        run.llm_calls += 1
        run.input_tokens += completion.input_tokens
        run.output_tokens += completion.output_tokens
        run.cost_micros += metered.cost_micros
        self.messages.append(completion.as_message())
        return completion

    def execute(self, call: ToolCall) -> None:
        """Run one tool call and append its result (or its error) for the model."""
        started = timezone.now()
        arguments: Any = {}
        error = ""
        text = ""
        duration: float = 0
        try:
            arguments = json.loads(call.arguments or "{}")
        except (ValueError, RecursionError):  # the model's text: may nest thousands deep
            error = "The arguments were not valid JSON."
        if not error and not isinstance(arguments, dict):
            error = "The arguments must be a JSON object."
        if not error and self._tool(call.name) is None:
            error = f"There is no tool named {call.name!r} available to this user."
        if not error:
            result = self.executor.call(call.name, arguments)
            text, duration = result.text, float(result.duration_ms)
            if result.is_error:
                error = text or "The tool failed without saying why."
        else:
            duration = (timezone.now() - started).total_seconds() * 1000
        self.records.append(
            {
                "id": call.id,
                "name": call.name,
                "arguments": arguments if isinstance(arguments, dict) else call.arguments,
                "result": _summary(text),
                "durationMs": round(duration),
                "error": error or None,
            }
        )
        content = f"Error: {error}" if error else text
        self.tool_message(call, content[:RESULT_FOR_MODEL])

    def tool_message(self, call: ToolCall, content: str) -> None:
        self.messages.append({"role": "tool", "tool_call_id": call.id, "content": content})

    def drive(self) -> tuple[str, ToolCall | None]:
        """Rounds until the model answers in words (its text, None) or a write waits
        for approval ("", that call)."""
        while self.rounds < settings.ASSISTANT_MAX_TOOL_ROUNDS:
            completion = self.llm_call()
            if not completion.tool_calls:
                return completion.content, None
            pending: ToolCall | None = None
            for call in completion.tool_calls:
                tool = self._tool(call.name)
                if self.confirm and tool is not None and not tool.read_only:
                    if pending is None:
                        pending = call
                    else:
                        self.tool_message(call, ONE_AT_A_TIME)
                    continue
                self.execute(call)
            if pending is not None:
                return "", pending
        raise ToolRoundLimit(
            f"Tool-round limit reached: the assistant used {self.rounds} rounds of tool calls "
            "without finishing. Ask a narrower question or split it into steps."
        )

    def state(self, pending: ToolCall) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "rounds": self.rounds,
            "records": self.records,
            "pending": {"id": pending.id, "name": pending.name, "arguments": pending.arguments},
            "interactive": self.interactive,
            "session_id": self.session_id,
        }


def _start(*, user: User) -> LLMKey:
    """The key the run spends, refused (no key, no credits) before the model is called."""
    key = llm_key_for(user=user)
    if key.billed_to_credits and billing_balance(user=user) <= 0:
        raise InsufficientCredits(f"Your credit balance is used up: {NO_CREDITS}.")
    return key


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
    key = _start(user=user)
    mode = (
        AssistantRun.Mode.CONFIRM
        if confirm
        else AssistantRun.Mode.INTERACTIVE
        if interactive
        else AssistantRun.Mode.ONE_SHOT
    )
    return AssistantRun.objects.create(
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
    *, run: AssistantRun, executor: ToolExecutor, on_text: TextSink | None = None
) -> AskOutcome:
    """Execute a prepared run: the loop with the tools ``executor`` offers. A refusal
    found only now (no Jira connection, the key gone) fails the run and is raised."""
    user = run.owner
    try:
        key = _start(user=user)
        tools = list(executor.tools())
    except ApplicationError as exc:
        run_fail(run=run, error=exc)
        raise
    session = run.session
    history = list(session.messages) if session else []
    conversation = _Conversation(
        user=user,
        run=run,
        key=key,
        executor=executor,
        tools=tools,
        system=system_prompt_render(user=user, tools=tools, interactive=run.interactive),
        messages=[*history, {"role": "user", "content": run.prompt}],
        confirm=run.confirm,
        interactive=run.interactive,
        session_id=session.pk if session else None,
        on_text=on_text,
    )
    return _continue(conversation)


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


def run_fail(*, run: AssistantRun, error: ApplicationError) -> None:
    """Record why a run failed, as /ask answers it."""
    run.status = AssistantRun.Status.FAILED
    run.error_code = error.code
    run.error_message = error.message
    run.error_status = error.status
    run.finished_at = timezone.now()
    run.save()


def _continue(conversation: _Conversation) -> AskOutcome:
    run = conversation.run
    try:
        response, pending = conversation.drive()
    except ApplicationError as exc:
        run.tool_calls = conversation.records
        run_fail(run=run, error=exc)
        raise
    if pending is not None:
        return _pause(conversation, pending)
    return _finish(conversation, response)


def _finish(conversation: _Conversation, response: str) -> AskOutcome:
    run = conversation.run
    with transaction.atomic():
        if conversation.interactive:
            session = _session_save(conversation)
            run.session = session
            conversation.session_id = session.pk if session else None
        run.status = AssistantRun.Status.COMPLETED
        run.response = response
        run.tool_calls = conversation.records
        run.finished_at = timezone.now()
        run.save()
    return AskOutcome(
        run=run,
        status="completed",
        message=response,
        prompt=run.prompt,
        response=response,
        tool_calls=conversation.records,
        session_id=conversation.session_id,
    )


def _session_save(conversation: _Conversation) -> InteractiveSession | None:
    if conversation.session_id is None:
        return InteractiveSession.objects.create(
            owner=conversation.user,
            title=" ".join(conversation.run.prompt.split())[:80],
            messages=conversation.messages,
        )
    session = InteractiveSession.objects.filter(
        owner=conversation.user, pk=conversation.session_id
    ).first()
    if session is None:
        # Deleted while an action waited for approval: the approved write is done, so the
        # run completes (a 404 now would read as "not done" and invite a second write);
        # the deleted history is not brought back.
        return None
    session.messages = conversation.messages
    session.save(update_fields=["messages", "updated_at"])
    return session


def _pause(conversation: _Conversation, pending: ToolCall) -> AskOutcome:
    """Store the conversation and the action; the token goes to the user only."""
    run = conversation.run
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        arguments = json.loads(pending.arguments or "{}")
    except (ValueError, RecursionError):
        arguments = {}
    if not isinstance(arguments, dict):
        # Shown as nothing; approved, it runs as it reads, refused as not an object.
        arguments = {}
    with transaction.atomic():
        PendingConfirmation.objects.create(
            owner=conversation.user,
            run=run,
            token_hash=_hash(token),
            tool=pending.name,
            arguments=arguments,
            state=conversation.state(pending),
            expires_at=timezone.now() + CONFIRMATION_TTL,
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


def action_describe(*, tool: str, arguments: dict[str, Any]) -> str:
    """The action in plain words: ``jira_create_issue`` → "create issue in Jira"."""
    service, _, verb = tool.partition("_")
    what = verb.replace("_", " ") if verb else service
    place = f" in {service.capitalize()}" if verb else ""
    details = ", ".join(
        f"{name.replace('_', ' ')}: {json.dumps(value) if not isinstance(value, str) else value}"
        for name, value in arguments.items()
    )
    sentence = f"Kay wants to {what}{place}"
    sentence += f" with {details}." if details else "."
    return sentence + " Approve to go ahead, or cancel."


def _claim(*, user: User, token: str) -> PendingConfirmation:
    """The pending action this token names, claimed for this request only: one
    conditional UPDATE, so of two racing requests exactly one gets it."""
    digest = _hash(token)
    now = timezone.now()
    claimed = PendingConfirmation.objects.filter(
        owner=user, token_hash=digest, used_at__isnull=True, expires_at__gt=now
    ).update(used_at=now)
    row = PendingConfirmation.objects.filter(owner=user, token_hash=digest).first()
    if row is None:
        # Someone else's token is as unknown as a made-up one.
        raise NotFound(
            "No pending action has this confirmation token.", code="confirmation_not_found"
        )
    if not claimed:
        if row.used_at is not None:
            raise Conflict(
                "This action was already confirmed or cancelled.", code="confirmation_used"
            )
        raise ConfirmationGone("This confirmation expired (they last 10 minutes): ask again.")
    return row


def confirm_claim(*, user: User, token: str, approved: bool) -> PendingConfirmation:
    """Use up ``token`` for ``user`` with their answer, the run left queued for
    :func:`confirm_execute`. The token works once, for its owner, for 10 minutes; the
    key is checked before it is used up."""
    _start(user=user)
    pending = _claim(user=user, token=token)
    pending.approved = approved
    pending.save(update_fields=["approved"])
    AssistantRun.objects.filter(pk=pending.run_id).update(status=AssistantRun.Status.QUEUED)
    return pending


def _unclaim(pending: PendingConfirmation) -> None:
    """Nothing was done: the action waits again for a retry with the same token."""
    PendingConfirmation.objects.filter(pk=pending.pk).update(used_at=None, approved=None)
    AssistantRun.objects.filter(pk=pending.run_id).update(
        status=AssistantRun.Status.PENDING_CONFIRMATION
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
        key = _start(user=user)
        tools = list(executor.tools())
    except ApplicationError:
        _unclaim(pending)
        raise
    conversation = _Conversation(
        user=user,
        run=run,
        key=key,
        executor=executor,
        tools=tools,
        system=system_prompt_render(user=user, tools=tools, interactive=state["interactive"]),
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
            _unclaim(pending)
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


def confirmed_message(*, approved: bool) -> str:
    return "Action confirmed and executed successfully" if approved else "Action cancelled"


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


def confirmations_purge() -> int:
    """Delete pending actions past their expiry or already settled; how many went."""
    deleted, _ = PendingConfirmation.objects.filter(
        Q(expires_at__lte=timezone.now()) | Q(used_at__isnull=False)
    ).delete()
    return deleted
