"""Attack review 23: a run on the server's key holds credits once for its calls and charges
them together once it has answered (commits 04ac742 and 6dfdb55).

Probed: parallel runs of one user each going ahead on what is left of their own hold; a
BaseException mid-run; the provider answering with a model the catalog does not price;
a completed run's calls left for the reaper once its holds are no longer open; the end
metered twice; a hold reference of another run whose id starts the same
(``assistant-run-1-`` / ``assistant-run-12-``) or of another user; confirm mode (the pause
charges, a cancel's answer is charged, the key changed while the action waits); the soft
time limit (``RunTooLong``); the reaper and a late worker; parallel runs in threads on
PostgreSQL. ``_HELD`` against the ORM: tests/billing/test_attack_review23_credits.py.

Found (tests marked "Found by the review", each failing on the code reviewed), fixed:
- parallel runs of one user each went ahead on a remainder of their own hold when nothing
  more was available, so what is written off grew with the number of runs (about one
  call's worst case each, up to half the balance) instead of one call's worth. Fixed: a
  run whose holds run short charges its calls so far and holds again out of the balance
  as it stands, as any call does (402 when nothing is available);
- a BaseException mid-run (not an Exception) left the run's holds open and its calls
  made so far neither recorded nor charged (before, each call was charged as made).
  Fixed: the run's end meters on any exception;
- a call the provider answers under a model name the catalog cannot price was charged
  nothing, while the run's hold was sized at the configured model's price (this was so
  before the change too). Fixed: on credits it is priced as the model asked for;
- the reaper dropped (cleared without recording or charging) a completed run's calls on
  credits once its holds were no longer open. Fixed: a run without a key of the user's
  that opened holds since its last claim, open or not, is on credits.
Found by the author since, fixed: a charge failing mid-run (before a further hold) lost
the calls from memory (tests/assistant/test_ask_credits.py); a run resumed on a key added
during its pause would, with holds of any age counted, have had its calls charged.
The rest guard what was probed and found handled."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from assistant.models import AssistantRun
from assistant.services import conversation as conversation_module
from assistant.services import reaper
from assistant.services.ask import ask_confirm, ask_run
from assistant.services.conversation import RunTooLong
from assistant.services.reaper import runs_reap
from assistant.services.runs import run_ask_start, run_execute
from billing.models import BillingAccount, CreditHold, CreditLedgerEntry
from billing.selectors import billing_balance
from core.errors import InsufficientCredits
from tests.accounts.factories import UserFactory
from tests.assistant.chat import LocalResult
from tests.fakes.openai_chat import FakeOpenAIChat, text, tool_calls
from tests.keys.factories import ApiKeyFactory
from tests.models_catalog.factories import ModelFactory
from usage.models import MeteredLlmCall

pytestmark = pytest.mark.django_db

SEARCH = ("jira_search", {"jql": "project = KAN"})
CREATE = {"project_key": "KAN", "summary": "Fix login bug", "issue_type": "Task"}
FLOOR = 100_000  # BILLING_RESERVE_USD "0.10": above these calls' own worst case
# 600,000 input tokens and 20 output of gpt-4o-mini: 90,012 µ$, nine tenths of FLOOR
NEAR_WORST = {"input_tokens": 600_000, "output_tokens": 20}


@pytest.fixture
def priced(settings):
    """gpt-4o-mini in the catalog, no margin, a call's worst case FLOOR."""
    settings.BILLING_MARGIN_PERCENT = "0"
    settings.BILLING_RESERVE_USD = "0.10"
    return ModelFactory(
        openrouter_id="openai/gpt-4o-mini",
        prompt_price=Decimal("0.00000015"),
        completion_price=Decimal("0.0000006"),
    )


def _funded(settings, usd: str, email: str = "dora@example.com"):
    settings.BILLING_STARTER_GRANT_USD = usd
    return UserFactory(email=email)


def _open_holds(user) -> list[CreditHold]:
    return list(CreditHold.objects.filter(account__user=user, status="open"))


def _charged(user) -> int:
    return -sum(
        CreditLedgerEntry.objects.filter(account__user=user, kind="usage").values_list(
            "amount_micros", flat=True
        )
    )


def _cost(user) -> int:
    return sum(MeteredLlmCall.objects.filter(owner=user).values_list("cost_micros", flat=True))


def _ask_or_402(**kwargs) -> str:
    """How the run ended: refused for credits mid-way is an answer too."""
    try:
        return ask_run(**kwargs).status
    except InsufficientCredits:
        return "402"


# --- Findings ------------------------------------------------------------------------------


def test_parallel_runs_write_off_no_more_than_one_calls_worst_case(
    chat, executor, priced, settings
):
    """Found by the review. Two runs of one user at once, each holding two calls' worst
    case (the balance is exactly both holds), each call costing nine tenths of its worst
    case (the estimate is honest). Each run goes ahead on the remainder of its own hold
    when nothing more is available: three calls on a hold for two, in both runs, so the
    calls cost 1.35 times the balance and 1.4 calls' worth is written off. Before (a hold
    per call) a call went ahead only on something available, and what parallel runs could
    spend past the balance stayed within one call's worst case, however many ran."""
    dora = _funded(settings, "0.40")  # 400,000 µ$: two runs' holds of 200,000
    nested = {}

    def search(arguments):
        if not nested:  # run A's first tool round: run B runs, start to end, meanwhile
            nested["b"] = "started"
            nested["b"] = _ask_or_402(user=dora, prompt="List KAN too", executor=executor)
        return LocalResult('{"issues": []}')

    executor.answers["jira_search"] = search
    chat.script(
        tool_calls(SEARCH, **NEAR_WORST),  # A1 (A holds 200,000)
        tool_calls(SEARCH, **NEAR_WORST),  # B1 (B holds 200,000: nothing left)
        tool_calls(SEARCH, **NEAR_WORST),  # B2
        text("B done.", **NEAR_WORST),  # B3: 20,000 left of B's hold, none available
        tool_calls(SEARCH, **NEAR_WORST),  # A2
        text("A done.", **NEAR_WORST),  # A3: the same for A
    )
    a = _ask_or_402(user=dora, prompt="List KAN", executor=executor)
    assert not _open_holds(dora)
    assert billing_balance(user=dora) >= 0
    written_off = _cost(dora) - _charged(dora)
    assert written_off <= FLOOR, (
        f"runs {a}/{nested['b']} made {len(chat.requests)} calls costing "
        f"{_cost(dora)} µ$ on a balance of 400,000: {written_off} µ$ written off"
    )


class WorkerStopped(BaseException):
    """Not an Exception: a worker's shutdown, an interrupt, a green thread's timeout."""


def test_a_base_exception_mid_run_still_charges_the_calls_made_and_closes_its_holds(
    alice, chat, executor, priced
):
    """Found by the review. The first call was made (and cost something); the tool round
    after it is interrupted by a BaseException. Before, that call had been charged as it
    was made (and the hold of a call interrupted released); now its record and charge wait
    for the run's end, which ``_continue`` writes on an ``Exception`` only: the hold stays
    open (the balance locked for an hour, or until the reaper calls the run lost and
    releases it) and the call is never charged."""

    def stopped(arguments):
        raise WorkerStopped

    executor.answers["jira_search"] = stopped
    chat.script(tool_calls(SEARCH, input_tokens=10_000), text("never asked"))
    with pytest.raises(WorkerStopped):
        ask_run(user=alice, prompt="List KAN", executor=executor)
    assert len(chat.requests) == 1
    assert not _open_holds(alice), "the run's hold was left open"
    assert MeteredLlmCall.objects.filter(owner=alice).count() == 1, "the call made is free"
    assert _charged(alice) == _cost(alice) > 0


def test_a_call_answered_under_a_model_the_catalog_cannot_price_is_still_charged(
    alice, chat, executor, priced, monkeypatch
):
    """Found by the review (as before the change). The run's hold is sized at the
    configured model's price (gpt-4o-mini, priced), but the call is priced, counted
    against the hold and charged under the model the provider answers with: one the
    catalog does not know (a new snapshot's name) costs 0, so the call is free and the run
    never holds again however many rounds it makes."""
    monkeypatch.setattr(FakeOpenAIChat, "MODEL", "gpt-4o-mini-2026-preview")
    chat.script(tool_calls(SEARCH, input_tokens=100_000), text("None.", input_tokens=100_000))
    outcome = ask_run(user=alice, prompt="List KAN", executor=executor)
    assert outcome.status == "completed" and len(chat.requests) == 2
    assert outcome.run.cost_micros > 0, "two calls of 100,000 input tokens cost nothing"
    assert _charged(alice) > 0


def test_the_reaper_charges_a_completed_runs_calls_on_credits_whose_holds_are_closed(
    alice, chat, executor, priced, monkeypatch
):
    """Found by the review. A completed run's calls on credits wait on the run for the
    reaper (its after-answer step failed) while its holds are no longer open (the lost-run
    pass released them while its worker was slow past the time limit, or anything else
    closing them): the reaper takes "no open hold" for "the user's own key, deleted" and
    clears the calls without recording or charging them (nor logging anything)."""
    record = conversation_module.usage_record_llm_calls

    def dies(**kwargs):
        raise RuntimeError("the worker was killed")

    monkeypatch.setattr(conversation_module, "usage_record_llm_calls", dies)
    monkeypatch.setattr("assistant.services.runs.tool_executor", lambda user: executor)
    chat.script(tool_calls(SEARCH, input_tokens=10_000), text("KAN has none."))
    run = run_ask_start(user=alice, prompt="List KAN").run
    assert run_execute(run_id=run.pk) == "completed"
    monkeypatch.setattr(conversation_module, "usage_record_llm_calls", record)
    run.refresh_from_db()
    assert run.api_key is None and len(run.calls_unrecorded) == 2
    reaper._holds_close(run)  # its holds released (as the lost-run pass does)
    AssistantRun.objects.filter(pk=run.pk).update(
        finished_at=timezone.now() - timedelta(seconds=61)
    )
    runs_reap()
    run.refresh_from_db()
    assert MeteredLlmCall.objects.filter(owner=alice).count() == 2, "the calls were dropped"
    assert _charged(alice) == _cost(alice) == run.cost_micros > 0


# --- Guards: probed, found handled ------------------------------------------------------------


def test_metering_the_end_twice_records_and_charges_each_call_once(alice, chat, executor, priced):
    """``_continue`` gives a failed end's calls and holds back and meters them again: a
    second meter of calls already written finds their records (first-wins by call id)
    and charges nothing more (a charge names its record)."""
    seen = {}
    original = conversation_module.Conversation.meter

    def meter_twice(self):
        seen["unpaid"] = self.unpaid()
        original(self)
        self.unmetered, self.holds = seen["unpaid"]
        original(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conversation_module.Conversation, "meter", meter_twice)
        chat.script(tool_calls(SEARCH, input_tokens=10_000), text("None."))
        outcome = ask_run(user=alice, prompt="List KAN", executor=executor)
    assert len(seen["unpaid"][0]) == 2
    assert MeteredLlmCall.objects.filter(owner=alice).count() == 2
    assert _charged(alice) == _cost(alice) == outcome.run.cost_micros > 0
    assert not _open_holds(alice)


def test_the_reaper_closes_only_this_runs_holds_not_one_whose_id_starts_the_same(
    alice, bob, chat, executor, priced
):
    """``assistant-run-<id>-`` ends with the dash: run 1's holds are not run 12's; and
    another user's hold under this run's prefix is not touched."""
    chat.script(text("Hi."))
    run = ask_run(user=alice, prompt="hi", executor=executor).run
    account = CreditHold.objects.get(reference=f"assistant-run-{run.pk}-1").account
    longer = CreditHold.objects.create(
        account=account, amount_micros=7, reference=f"assistant-run-{run.pk}2-1"
    )
    mine = CreditHold.objects.create(
        account=account, amount_micros=5, reference=f"assistant-run-{run.pk}-9"
    )
    bobs = CreditHold.objects.create(
        account=BillingAccount.objects.get(user=bob),
        amount_micros=3,
        reference=f"assistant-run-{run.pk}-x",
    )
    assert [h.pk for h in reaper._holds_of(run, status="open")] == [mine.pk]
    reaper._holds_close(run)
    statuses = dict(CreditHold.objects.values_list("pk", "status"))
    assert statuses[mine.pk] == "released"
    assert statuses[longer.pk] == statuses[bobs.pk] == "open"


def test_the_soft_time_limit_mid_run_charges_the_calls_made(alice, chat, executor, priced):
    """``RunTooLong`` is raised before the next round: the calls made are recorded and
    charged with the run's failure, its holds closed."""

    def late(arguments):
        # The run started long ago: the next round is past the soft time limit.
        executor.run.started_at = timezone.now() - timedelta(hours=1)
        return LocalResult('{"issues": []}')

    executor.answers["jira_search"] = late
    original = conversation_module.Conversation.llm_call

    def remember(self):
        executor.run = self.run
        return original(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conversation_module.Conversation, "llm_call", remember)
        chat.script(tool_calls(SEARCH, input_tokens=10_000), text("never asked"))
        with pytest.raises(RunTooLong):
            ask_run(user=alice, prompt="List KAN", executor=executor)
    assert len(chat.requests) == 1
    assert AssistantRun.objects.get().status == "failed"
    assert _charged(alice) == _cost(alice) > 0 and not _open_holds(alice)


def _paused(user, chat, executor):
    chat.script(
        tool_calls(SEARCH, input_tokens=10_000),
        tool_calls(("jira_create_issue", CREATE), input_tokens=10_000),
    )
    return ask_run(user=user, prompt="Create KAN ticket", executor=executor, confirm=True)


def test_a_pause_charges_its_calls_and_a_cancels_answer_is_charged_too(
    alice, chat, executor, priced
):
    outcome = _paused(alice, chat, executor)
    assert outcome.status == "pending_confirmation"
    assert not _open_holds(alice) and _charged(alice) == _cost(alice) > 0
    paused_cost = _cost(alice)
    chat.script(text("OK, not created.", input_tokens=10_000))
    done = ask_confirm(
        user=alice, token=outcome.confirmation_token, approved=False, executor=executor
    )
    assert done.status == "completed" and AssistantRun.objects.get().status == "cancelled"
    assert _cost(alice) > paused_cost
    assert _charged(alice) == _cost(alice) == done.run.cost_micros
    assert not _open_holds(alice)
    references = set(CreditHold.objects.values_list("reference", flat=True))
    assert len(references) == 2  # the resumed run held afresh, under its next round


def test_a_key_added_while_the_action_waits_pays_the_rest_and_credits_only_the_first_part(
    alice, chat, executor, priced
):
    outcome = _paused(alice, chat, executor)
    charged = _charged(alice)
    ApiKeyFactory(owner=alice, provider="openai")
    chat.script(text("Created KAN-1.", input_tokens=10_000))
    done = ask_confirm(
        user=alice, token=outcome.confirmation_token, approved=True, executor=executor
    )
    assert done.status == "completed"
    assert _charged(alice) == charged > 0
    own = MeteredLlmCall.objects.filter(owner=alice, api_key__isnull=False)
    assert own.count() == 1 and not _open_holds(alice)


def test_a_key_deleted_while_the_action_waits_puts_the_rest_on_credits(
    alice, chat, executor, priced
):
    key = ApiKeyFactory(owner=alice, provider="openai")
    outcome = _paused(alice, chat, executor)
    assert not CreditHold.objects.exists() and _charged(alice) == 0
    key.delete()
    chat.script(text("Created KAN-1.", input_tokens=10_000))
    done = ask_confirm(
        user=alice, token=outcome.confirmation_token, approved=True, executor=executor
    )
    assert done.status == "completed"
    # The first part's records lost their key with it; the last call is on credits.
    last = MeteredLlmCall.objects.get(owner=alice, call_id=f"assistant-run-{done.run.pk}-3")
    assert last.api_key_id is None
    assert _charged(alice) == last.cost_micros > 0 and not _open_holds(alice)
    assert CreditLedgerEntry.objects.get(kind="usage").metered_call_id == last.pk


def test_a_lost_run_releases_its_holds_and_a_late_worker_still_charges_its_calls(
    alice, chat, executor, priced
):
    """The reaper takes a run past the time limit for lost and releases its holds; should
    its worker only have been slow, the calls it goes on to meter are still charged (a
    released hold stays released, the charge names the call's record)."""
    original = conversation_module.Conversation.meter

    def reaped_first(self):
        AssistantRun.objects.filter(pk=self.run.pk).update(
            started_at=timezone.now() - timedelta(hours=1)
        )
        assert runs_reap() == 1
        assert not _open_holds(alice)
        original(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conversation_module.Conversation, "meter", reaped_first)
        chat.script(tool_calls(SEARCH, input_tokens=10_000), text("None."))
        ask_run(user=alice, prompt="List KAN", executor=executor)
    assert _charged(alice) == _cost(alice) > 0
    assert set(CreditHold.objects.values_list("status", flat=True)) == {"released"}


def test_a_second_run_finds_the_first_runs_hold_taken(chat, executor, priced, settings):
    """The first run's one hold (two calls' worth) is set aside for all its rounds: a run
    started while it holds finds only the rest available."""
    dora = _funded(settings, "0.30")  # 300,000: the first holds 200,000
    seen = {}

    def search(arguments):
        if "second" not in seen:
            seen["second"] = "started"
            seen["second"] = ask_run(user=dora, prompt="again", executor=executor)
        return LocalResult('{"issues": []}')

    executor.answers["jira_search"] = search
    chat.script(
        tool_calls(SEARCH),  # first run, round 1
        text("second done"),  # the second run: holds the 100,000 left
        text("first done"),
    )
    first = ask_run(user=dora, prompt="List KAN", executor=executor)
    assert first.status == seen["second"].status == "completed"
    amounts = sorted(CreditHold.objects.values_list("amount_micros", flat=True))
    assert amounts == [100_000, 200_000]
    assert billing_balance(user=dora) == 300_000 - _cost(dora)


def test_a_run_refused_with_nothing_available_makes_no_call(chat, executor, priced, settings):
    dora = _funded(settings, "0.20")  # one run's hold, exactly
    refused = {}

    def search(arguments):
        with pytest.raises(InsufficientCredits):
            ask_run(user=dora, prompt="again", executor=executor)
        refused["calls"] = len(chat.requests)
        return LocalResult('{"issues": []}')

    executor.answers["jira_search"] = search
    chat.script(tool_calls(SEARCH), text("done"))
    ask_run(user=dora, prompt="List KAN", executor=executor)
    assert refused["calls"] == 1  # the second run made none
    failed = AssistantRun.objects.get(owner=dora, prompt="again")
    assert failed.status == "failed" and failed.error_status == 402 and failed.llm_calls == 0
    assert not _open_holds(dora)


def test_the_reaper_records_calls_on_a_key_added_after_a_paused_credits_part_uncharged(
    alice, priced
):
    """A run on credits until its pause (its hold opened then), resumed on a key the user
    added meanwhile, whose end's calls wait for the reaper: they are the key's, recorded
    on it, and charged nothing; holds from before its last claim say nothing of them."""
    key = ApiKeyFactory(owner=alice, provider="openai")
    earlier = timezone.now() - timedelta(seconds=300)
    run = AssistantRun.objects.create(
        owner=alice,
        prompt="Create it",
        status="completed",
        api_key=key,
        started_at=earlier + timedelta(seconds=120),  # claimed again by the approval
        finished_at=earlier + timedelta(seconds=130),
        calls_unrecorded=[
            {
                "call_id": "placeholder",
                "provider": "openai",
                "model": "gpt-4o-mini",
                "input_tokens": 10_000,
                "output_tokens": 20,
                "cached_tokens": 0,
                "at": None,
            }
        ],
    )
    run.calls_unrecorded[0]["call_id"] = f"assistant-run-{run.pk}-3"
    AssistantRun.objects.filter(pk=run.pk).update(calls_unrecorded=run.calls_unrecorded)
    before_pause = credits_reserve_for(alice, f"assistant-run-{run.pk}-1")
    CreditHold.objects.filter(pk=before_pause.pk).update(created_at=earlier, status="settled")
    runs_reap()
    recorded = MeteredLlmCall.objects.get(owner=alice)
    assert recorded.api_key_id == key.pk
    assert _charged(alice) == 0 and billing_balance(user=alice) == 1_000_000
    # The same run with the key deleted since: its calls go with the key, not to credits.
    AssistantRun.objects.filter(pk=run.pk).update(
        api_key=None, calls_unrecorded=[{**run.calls_unrecorded[0], "call_id": "x-4"}]
    )
    runs_reap()
    assert MeteredLlmCall.objects.filter(owner=alice).count() == 1 and _charged(alice) == 0
    assert AssistantRun.objects.get(pk=run.pk).calls_unrecorded is None


def credits_reserve_for(user, reference):
    from billing.services import credits_reserve

    return credits_reserve(user=user, estimate_micros=1000, reference=reference)
