"""On the server's key each model call is paid from the user's credits: held before,
settled to the metered cost after, released when the call fails; no credits → 402
before any model call. The user's own key spends no credits."""

from __future__ import annotations

from decimal import Decimal

import pytest

from assistant.models import AssistantRun
from assistant.services.ask import ask_run
from billing.models import CreditHold, CreditLedgerEntry
from billing.selectors import billing_balance
from core.errors import InsufficientCredits, NotConfigured, ProviderUnavailable
from tests.accounts.factories import UserFactory
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
