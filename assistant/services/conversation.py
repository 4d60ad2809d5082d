"""One run's conversation with the model: a bounded loop of model rounds and tool calls.

Ask the model; if it wants tools, run them (several at once when it asks for several) and
feed every result back, errors included, so it can correct itself or explain; stop when it
answers in words, or after ``ASSISTANT_MAX_TOOL_ROUNDS``. In confirm mode read-only tools
run, and the first tool that changes data stops the loop until the user approves or
cancels it (see :mod:`assistant.services.confirm`)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from assistant.llm import ChatClient, Completion, ToolCall
from assistant.models import AssistantRun
from assistant.services.history import history_trim, tokens_estimate
from assistant.services.keys import LLMKey, llm_key_for
from assistant.services.tools import Tool, ToolExecutor, openai_tools
from billing.models import CreditHold
from billing.selectors import billing_balance
from billing.services import (
    charge_micros,
    credits_charge,
    credits_reserve,
    reserve_estimate_micros,
)
from billing.services.credits import NO_CREDITS
from core.errors import ApplicationError, InsufficientCredits
from core.storable import storable_json, storable_text
from usage.services.metering import LlmCall, usage_record_llm_calls
from usage.services.pricing import Pair, Price, catalog_prices

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


class RunTooLong(ApplicationError):
    status = 504
    code = "run_too_long"


def calls_as_json(calls: list[LlmCall]) -> list[dict[str, Any]]:
    """Calls to record, as a run stores them until they are (``calls_unrecorded``)."""
    return [{**asdict(call), "at": call.at.isoformat() if call.at else None} for call in calls]


def calls_from_json(rows: list[dict[str, Any]]) -> list[LlmCall]:
    return [
        LlmCall(**{**row, "at": datetime.fromisoformat(row["at"]) if row.get("at") else None})
        for row in rows
    ]


def _no_nan(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e999
        raise ValueError("a number past a float's range")
    return number


def _summary(text: str) -> str:
    return text if len(text) <= RESULT_SUMMARY else text[: RESULT_SUMMARY - 1] + "…"


@dataclass
class Conversation:
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
    # Catalog prices looked up in this run: each model is priced once, not at every call.
    prices: dict[Pair, Price | None] = field(default_factory=dict)
    # One model client for the run's calls (opened by the first), so they share a connection.
    client: ChatClient | None = None
    # Calls not recorded yet: they are metered together (see ``meter``), not one
    # transaction each; on the server's key, charged with them.
    unmetered: list[LlmCall] = field(default_factory=list)
    # On the server's key: the credits the run holds for its calls (``_hold_cover``), and
    # what its calls so far will be charged of them.
    holds: list[CreditHold] = field(default_factory=list)
    spent_micros: int = 0
    fixed_tokens: int | None = None  # see ``_fixed_tokens``

    def __post_init__(self) -> None:
        if self.key.price is not None:  # priced when the key was chosen: not looked up again
            self.prices.setdefault((self.key.provider, self.key.model), self.key.price)

    def _tool(self, name: str) -> Tool | None:
        return next((tool for tool in self.tools if tool.name == name), None)

    def _fixed_tokens(self, system: dict[str, Any], tools: list[dict[str, Any]]) -> int:
        """The system prompt's and the tools' estimate: the same for every call of a run,
        so estimated once."""
        if self.fixed_tokens is None:
            self.fixed_tokens = tokens_estimate([system, *tools])
        return self.fixed_tokens

    def _history_budget(self, system: dict[str, Any], tools: list[dict[str, Any]]) -> int:
        """``ASSISTANT_HISTORY_TOKENS``, less when the model's context window (from the
        catalog) cannot hold that beside the prompt, the tools and the answer."""
        budget = int(settings.ASSISTANT_HISTORY_TOKENS)
        if self.key.context_tokens:
            fixed = self._fixed_tokens(system, tools) + int(settings.OPENAI_MAX_TOKENS)
            budget = min(budget, self.key.context_tokens - fixed)
        return budget

    def _price(self, pair: Pair) -> Price | None:
        if pair not in self.prices:
            self.prices.update(catalog_prices(pairs={pair}))
        return self.prices[pair]

    def _worst_cost_micros(self, input_tokens: int) -> int:
        """What one call can cost at most (the prompt as estimated, a whole answer) at the
        catalog's price with the margin, and never less than ``BILLING_RESERVE_USD``: a
        fixed hold below what a pricey model costs let a burst of parallel calls spend
        many times the balance (the charge past it is written off, not owed)."""
        price = self._price((self.key.provider, self.key.model))
        floor = reserve_estimate_micros()
        if price is None:
            return floor
        worst = price.cost_micros(
            input_tokens=input_tokens,
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
        if self.key.billed_to_credits:
            # The server's key spends the user's credits: held before the call, so
            # parallel runs cannot spend the same balance; charged once the run answers.
            sent = self._fixed_tokens(system, tools) + tokens_estimate(history)
            self._hold_cover(self._worst_cost_micros(sent), call_id)
        if self.client is None:
            self.client = ChatClient(
                api_key=self.key.secret,
                base_url=self.key.base_url,
                user_host=self.key.user_host,
            )
        # A failed call costs nothing: the run's holds are closed with its end (``meter``).
        completion = self.client.complete(
            model=self.key.model,
            messages=[system, *history],
            tools=tools,
            on_text=self.on_text,
        )
        model = completion.model or self.key.model
        run = self.run
        run.llm_calls += 1
        run.input_tokens += completion.input_tokens
        run.output_tokens += completion.output_tokens
        call = LlmCall(
            call_id=call_id,
            provider=self.key.provider,
            model=model,
            input_tokens=completion.input_tokens,
            output_tokens=completion.output_tokens,
            cached_tokens=completion.cached_tokens,
            at=timezone.now(),
        )
        # Its cost is counted now, at the price its record will use; the record (and on
        # credits the charge) is written with, or just after, the run's end.
        price = self._price((self.key.provider, model))
        if price is None and self.key.billed_to_credits:
            # Answered under a name the catalog cannot price (a dated snapshot, say):
            # priced as the model asked for, which its holds were sized at, not free.
            price = self.prices[(self.key.provider, model)] = self._price(
                (self.key.provider, self.key.model)
            )
        if price is not None:
            cost = price.cost_micros(
                input_tokens=call.input_tokens,
                output_tokens=call.output_tokens,
                cached_tokens=call.cached_tokens,
            )
            run.cost_micros += cost
            if self.key.billed_to_credits:
                self.spent_micros += charge_micros(cost)
        self.unmetered.append(call)
        self.messages.append(completion.as_message())
        return completion

    def _hold_cover(self, worst_micros: int, reference: str) -> None:
        """Make what the run holds cover its next call at the worst. A hold sets aside two
        calls' worth (most runs make two: a tool round, then the answer), so a run
        usually holds once. When what is left of its holds (less what its calls so far
        cost) no longer covers the next call, those calls are charged first (closing the
        holds), and the run holds again out of the balance as it now stands:
        ``InsufficientCredits`` when nothing is available, as for any call. A remainder
        short of the worst case is never spent on its own: every parallel run could spend
        one past the balance."""
        held = sum(hold.amount_micros for hold in self.holds)
        if held - self.spent_micros >= worst_micros:
            return
        if self.holds:
            self.meter()
        self.holds.append(
            credits_reserve(user=self.user, estimate_micros=2 * worst_micros, reference=reference)
        )

    def meter(self) -> None:
        """Record the calls not recorded yet (their cost is on the run already, counted as
        each was made, at the price the record uses) and, on the server's key, charge
        them and close the run's holds, in one transaction: with the run's end or pause,
        or just after its answer went out (``ask_execute``'s ``meter_after_answer``). A
        worker killed mid-run loses them, and the reaper releases its holds (the
        provider's own usage, fetched by the Usage sync, still has the calls)."""
        if not self.unmetered and not self.holds:
            return
        with transaction.atomic(savepoint=False):  # a call recorded is a call charged
            metered = usage_record_llm_calls(
                owner=self.user, api_key=self.key.api_key, calls=self.unmetered, prices=self.prices
            )
            if self.key.billed_to_credits:
                credits_charge(holds=self.holds, metered_calls=metered)
        # Forgotten once written only: a failed write leaves them for the run's end.
        self.unmetered, self.holds, self.spent_micros = [], [], 0

    def unpaid(self) -> tuple[list[LlmCall], list[CreditHold]]:
        """What ``meter`` would write, to give back should its transaction roll back."""
        return list(self.unmetered), list(self.holds)

    def execute(self, call: ToolCall) -> None:
        """Run one tool call and append its result (or its error) for the model."""
        started = timezone.now()
        arguments: Any = {}
        error = ""
        text = ""
        duration: float = 0
        try:
            # The model's text: it may nest thousands deep, hold NaN (no JSON), or escape
            # a NUL (no column stores one: made U+FFFD, as in its text).
            arguments = storable_json(
                json.loads(call.arguments or "{}", parse_constant=_no_nan, parse_float=_finite)
            )
        except (ValueError, RecursionError):
            error = "The arguments were not valid JSON."
        if not error and not isinstance(arguments, dict):
            error = "The arguments must be a JSON object."
        if not error and self._tool(call.name) is None:
            error = f"There is no tool named {call.name!r} available to this user."
        if not error:
            result = self.executor.call(call.name, arguments)
            text, duration = storable_text(result.text), float(result.duration_ms)
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
        try:
            return self._rounds()
        finally:
            if self.client is not None:
                self.client.close()
                self.client = None

    def _deadline_check(self) -> None:
        """No new round past the task's soft time limit. A thread-pool worker (the one the
        assistant queue runs on) enforces no time limit, and the reaper fails a run still
        running past the hard one: stopping here first means a live run is never reaped."""
        started = self.run.started_at
        limit = settings.CELERY_TASK_SOFT_TIME_LIMIT
        if started is not None and (timezone.now() - started).total_seconds() > limit:
            raise RunTooLong(
                f"The assistant stopped after {limit // 60} minutes without finishing. The "
                "steps it took are listed; ask a narrower question to go on."
            )

    def _rounds(self) -> tuple[str, ToolCall | None]:
        while self.rounds < settings.ASSISTANT_MAX_TOOL_ROUNDS:
            self._deadline_check()
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


def run_key_resolve(*, user: User, reveal: bool = True) -> LLMKey:
    """The key a run spends, refused (no key, no credits) before the model is called
    (``reveal``: see :func:`llm_key_for`)."""
    key = llm_key_for(user=user, reveal=reveal)
    if key.billed_to_credits and billing_balance(user=user) <= 0:
        raise InsufficientCredits(f"Your credit balance is used up: {NO_CREDITS}.")
    return key
