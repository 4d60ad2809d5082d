"""On the server's key a run's model calls are paid from the user's credits: held before
(one hold for two calls), each charged its metered cost once the run has answered, the
holds released when nothing was made; no credits → 402 before any model call. The
user's own key spends no credits."""

from __future__ import annotations

from decimal import Decimal

import pytest

from assistant.models import AssistantRun
from assistant.services.ask import ask_run
from billing.models import CreditHold, CreditLedgerEntry
from billing.selectors import billing_balance
from core.errors import ApplicationError, InsufficientCredits, NotConfigured, ProviderUnavailable
from tests.accounts.factories import UserFactory
from tests.assistant.chat import LocalResult
from tests.fakes.openai_chat import error, text, tool_calls
from tests.keys.factories import ApiKeyFactory
from tests.models_catalog.factories import ModelFactory
from usage.models import MeteredLlmCall

pytestmark = pytest.mark.django_db

STARTER = 1_000_000  # BILLING_STARTER_GRANT_USD's default, in micro-dollars


@pytest.fixture
def priced(settings):
    """gpt-4o-mini in the catalog, so its calls cost something."""
    settings.BILLING_MARGIN_PERCENT = "0"
    return ModelFactory(
        openrouter_id="openai/gpt-4o-mini",
        prompt_price=Decimal("0.00000015"),
        completion_price=Decimal("0.0000006"),
    )


def test_each_call_is_charged_its_metered_cost(alice, chat, executor, priced):
    assert billing_balance(user=alice) == STARTER
    chat.script(
        tool_calls(("jira_search", {"jql": "project = KAN"}), input_tokens=1000, output_tokens=100),
        text("Done.", input_tokens=2000, output_tokens=50),
    )
    outcome = ask_run(user=alice, prompt="List KAN", executor=executor)
    metered = MeteredLlmCall.objects.filter(owner=alice).order_by("pk")
    costs = [call.cost_micros for call in metered]
    assert all(cost > 0 for cost in costs) and len(costs) == 2
    usage = CreditLedgerEntry.objects.filter(kind="usage").order_by("pk")
    assert [(e.amount_micros, e.metered_call_id) for e in usage] == [
        (-cost, call.pk) for cost, call in zip(costs, metered, strict=True)
    ]
    assert billing_balance(user=alice) == STARTER - sum(costs)
    assert outcome.run.cost_micros == sum(costs)
    assert set(CreditHold.objects.values_list("status", flat=True)) == {"settled"}


def test_no_credits_is_402_before_any_model_call(chat, executor, settings):
    settings.BILLING_STARTER_GRANT_USD = "0"
    dora = UserFactory(email="dora@example.com")
    with pytest.raises(InsufficientCredits) as caught:
        ask_run(user=dora, prompt="hi", executor=executor)
    assert caught.value.status == 402
    assert "add credits or add your own OpenAI key" in caught.value.message
    assert chat.requests == [] and not AssistantRun.objects.exists()


def test_a_failed_call_releases_its_hold_and_charges_nothing(alice, chat, executor, priced):
    chat.script(error(503))
    with pytest.raises(ProviderUnavailable):
        ask_run(user=alice, prompt="hi", executor=executor)
    assert list(CreditHold.objects.values_list("status", flat=True)) == ["released"]
    assert billing_balance(user=alice) == STARTER
    assert not CreditLedgerEntry.objects.filter(kind="usage").exists()


def test_the_users_own_key_spends_no_credits(alice, chat, executor, priced):
    ApiKeyFactory(owner=alice, provider="openai")
    chat.script(text("ok", input_tokens=1000, output_tokens=100))
    ask_run(user=alice, prompt="hi", executor=executor)
    assert billing_balance(user=alice) == STARTER
    assert not CreditHold.objects.exists()


def test_a_user_with_no_credits_but_their_own_key_may_ask(chat, executor, settings):
    settings.BILLING_STARTER_GRANT_USD = "0"
    dora = UserFactory(email="dora@example.com")
    ApiKeyFactory(owner=dora, provider="openai")
    chat.script(text("ok"))
    assert ask_run(user=dora, prompt="hi", executor=executor).status == "completed"


def test_a_model_the_catalog_cannot_price_never_runs_on_the_servers_key(
    alice, chat, executor, settings
):
    # Charged at the catalog's price, an unpriced model would run for free on Kay's key.
    settings.OPENAI_MODEL = "gpt-not-in-the-catalog"
    with pytest.raises(NotConfigured) as caught:
        ask_run(user=alice, prompt="hi", executor=executor)
    assert caught.value.code == "model_not_priced" and caught.value.status == 503
    assert "Add your own OpenAI or OpenRouter key" in caught.value.message
    assert chat.requests == [] and not AssistantRun.objects.exists()
    assert billing_balance(user=alice) == STARTER


def test_the_users_own_key_may_use_a_model_the_catalog_cannot_price(
    alice, chat, executor, settings
):
    settings.OPENAI_MODEL = "gpt-not-in-the-catalog"
    ApiKeyFactory(owner=alice, provider="openai")
    chat.script(text("ok", input_tokens=10, output_tokens=1))
    ask_run(user=alice, prompt="hi", executor=executor)
    assert len(chat.requests) == 1 and billing_balance(user=alice) == STARTER


def _open_held() -> list[int]:
    return list(CreditHold.objects.filter(status="open").values_list("amount_micros", flat=True))


def test_a_run_holds_once_while_its_hold_covers_the_next_call_and_again_when_not(
    alice, chat, executor, priced, settings
):
    """A hold sets two calls' worst case aside; a call is made on it while what is left
    of it (less what the run's calls cost so far) covers that call's worst case. When
    not, the calls so far are charged (the hold closed) and the run holds again. Every
    call is charged its own metered cost, and every hold closed, by the run's end."""
    settings.BILLING_RESERVE_USD = "0.10"  # above these calls' worst case: a call's worth
    seen: list[list[int]] = []

    def search(arguments):
        seen.append(_open_held())
        charged.append(CreditLedgerEntry.objects.filter(kind="usage").count())
        return LocalResult('{"issues": []}')

    charged: list[int] = []
    executor.answers["jira_search"] = search
    search_kan = ("jira_search", {"jql": "project = KAN"})
    chat.script(
        tool_calls(search_kan, input_tokens=100),
        tool_calls(search_kan, input_tokens=1_000_000),  # 150,000 µ$: half a hold and more
        tool_calls(search_kan, input_tokens=100),
        text("Nothing in KAN."),
    )
    run = ask_run(user=alice, prompt="List KAN", executor=executor).run
    assert seen == [[200_000], [200_000], [200_000]]
    assert charged == [0, 0, 2]  # the first two calls charged before the third's hold
    holds = CreditHold.objects.order_by("pk")
    assert [h.reference for h in holds] == [
        f"assistant-run-{run.pk}-1",
        f"assistant-run-{run.pk}-3",
    ]
    assert set(holds.values_list("status", flat=True)) == {"settled"}
    costs = list(MeteredLlmCall.objects.order_by("pk").values_list("cost_micros", flat=True))
    assert len(costs) == 4 and all(costs)
    charged = CreditLedgerEntry.objects.filter(kind="usage").values_list("amount_micros", flat=True)
    assert sorted(charged) == sorted(-cost for cost in costs)
    assert billing_balance(user=alice) == STARTER - sum(costs) == STARTER - run.cost_micros


def test_a_run_holding_all_that_was_available_still_makes_its_next_call(
    alice, chat, executor, priced, settings
):
    """A hold takes what is available when that is less than two calls' worth: the next
    call goes ahead on what the run still holds, as a call with little available always
    could, and a parallel run finds nothing left to hold."""
    settings.BILLING_RESERVE_USD = "0.40"  # two calls' worth: 800,000 of the 1,000,000
    other = {}

    def search(arguments):
        other["held"] = _open_held()
        with pytest.raises(InsufficientCredits):  # a second run of dora's, meanwhile
            ask_run(user=dora, prompt="hi", executor=executor)
        return LocalResult('{"issues": []}')

    settings.BILLING_STARTER_GRANT_USD = "0.50"
    dora = UserFactory(email="dora@example.com")
    executor.answers["jira_search"] = search
    chat.script(tool_calls(("jira_search", {"jql": "project = KAN"})), text("None."))
    outcome = ask_run(user=dora, prompt="List KAN", executor=executor)
    assert outcome.status == "completed"
    assert other["held"] == [500_000]
    assert billing_balance(user=dora) == 500_000 - outcome.run.cost_micros


def test_a_run_whose_holds_are_spent_with_nothing_more_available_stops_with_402(
    alice, chat, executor, priced, settings
):
    """Its first call cost more than all it could hold: the second is refused before it
    is made, and what the first cost is charged, never below zero."""
    settings.BILLING_STARTER_GRANT_USD = "0.001"  # 1,000 µ$
    dora = UserFactory(email="dora@example.com")
    chat.script(
        tool_calls(("jira_search", {"jql": "project = KAN"}), input_tokens=10_000),
        text("never asked"),
    )
    with pytest.raises(InsufficientCredits):
        ask_run(user=dora, prompt="List KAN", executor=executor)
    assert len(chat.requests) == 1
    run = AssistantRun.objects.get(owner=dora)
    assert run.status == "failed" and run.error_status == 402
    assert MeteredLlmCall.objects.get(owner=dora).cost_micros > 1_000
    assert billing_balance(user=dora) == 0
    assert list(CreditHold.objects.values_list("status", flat=True)) == ["settled"]


def test_a_run_failing_after_a_call_is_charged_for_that_call_only(alice, chat, executor, priced):
    chat.script(tool_calls(("jira_search", {"jql": "project = KAN"})), error(400))
    with pytest.raises(ApplicationError):
        ask_run(user=alice, prompt="List KAN", executor=executor)
    recorded = MeteredLlmCall.objects.get(owner=alice)
    entry = CreditLedgerEntry.objects.get(kind="usage")
    assert entry.metered_call_id == recorded.pk and entry.amount_micros == -recorded.cost_micros
    assert billing_balance(user=alice) == STARTER - recorded.cost_micros
    assert list(CreditHold.objects.values_list("status", flat=True)) == ["settled"]


@pytest.mark.django_db(transaction=True)  # the failed charge rolls back its own transaction
def test_a_charge_that_fails_mid_run_leaves_the_calls_for_the_runs_end(
    alice, chat, executor, priced, settings, monkeypatch
):
    """The charge before a further hold fails (the connection went away): the run fails,
    and its end still records and charges the calls made and closes the hold."""
    from assistant.services import conversation

    settings.BILLING_RESERVE_USD = "0.10"
    charge = conversation.credits_charge
    failures = [RuntimeError("the connection went away")]

    def fails_once(**kwargs):
        if failures:
            raise failures.pop()
        return charge(**kwargs)

    monkeypatch.setattr(conversation, "credits_charge", fails_once)
    search_kan = ("jira_search", {"jql": "project = KAN"})
    chat.script(
        tool_calls(search_kan, input_tokens=1_000_000),  # 150,000 µ$: the hold runs short
        tool_calls(search_kan),
        text("never asked"),
    )
    with pytest.raises(RuntimeError):
        ask_run(user=alice, prompt="List KAN", executor=executor)
    assert len(chat.requests) == 1 and not failures
    recorded = MeteredLlmCall.objects.get(owner=alice)
    assert CreditLedgerEntry.objects.get(kind="usage").metered_call_id == recorded.pk
    assert billing_balance(user=alice) == STARTER - recorded.cost_micros
    assert list(CreditHold.objects.values_list("status", flat=True)) == ["settled"]


@pytest.mark.django_db(transaction=True)
def test_a_follow_up_sent_before_the_last_runs_charge_finds_the_rest_available(
    alice, chat, executor, priced, monkeypatch, settings
):
    """The answer goes out before its calls are charged and its hold closed: a request
    sent in between must not find the whole hold (here the whole starter balance) still
    set aside, only what the answered run's calls cost (CI saw the 402)."""
    from assistant.services import ask, runs
    from assistant.services.runs import run_ask_start, run_execute

    settings.REDIS_URL = ""
    monkeypatch.setattr(runs, "tool_executor", lambda user: executor)
    later = []  # the first run's charge, held back as if its worker had not got to it
    monkeypatch.setattr(ask, "_record_after_answer", later.append)
    chat.script(text("First.", input_tokens=2000, output_tokens=50))
    first = run_ask_start(user=alice, prompt="one").run
    assert run_execute(run_id=first.pk) == "completed"
    (hold,) = CreditHold.objects.filter(status="open")
    cost = AssistantRun.objects.get(pk=first.pk).cost_micros
    assert 0 < hold.amount_micros == cost < STARTER  # lowered from the whole balance

    monkeypatch.undo()
    monkeypatch.setattr(runs, "tool_executor", lambda user: executor)
    chat.script(text("Second.", input_tokens=2000, output_tokens=50))
    second = run_ask_start(user=alice, prompt="two").run
    assert run_execute(run_id=second.pk) == "completed"
    ask._record_after_answer(later[0])  # the first run's charge, at last
    assert set(CreditHold.objects.values_list("status", flat=True)) == {"settled"}
    assert billing_balance(user=alice) == STARTER - 2 * cost
