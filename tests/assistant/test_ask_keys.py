"""Which key pays: the user's own OpenAI or OpenRouter key first, never an admin key or
someone else's; else the server's key; neither → 402 before any model call."""

from __future__ import annotations

import pytest

from assistant.models import AssistantRun
from assistant.services.ask import ask_run
from assistant.services.keys import model_for
from core.errors import InsufficientCredits
from keys.models import ApiKey
from models_catalog.models import CatalogPreference
from tests.assistant.chat import SERVER_KEY
from tests.fakes.openai_chat import text
from tests.keys.factories import ApiKeyFactory, secret_for
from tests.models_catalog.factories import ModelFactory
from usage.models import MeteredLlmCall

pytestmark = pytest.mark.django_db


def _ask(user, chat, executor):
    chat.script(text("ok"))
    return ask_run(user=user, prompt="hi", executor=executor)


def test_the_users_own_openai_key_is_preferred(alice, chat, executor):
    own = ApiKeyFactory(owner=alice, provider="openai", secret=secret_for("openai", 1))
    outcome = _ask(alice, chat, executor)
    assert chat.requests[0].authorization == f"Bearer {secret_for('openai', 1)}"
    assert outcome.run.api_key == own
    assert MeteredLlmCall.objects.get().api_key == own


def test_an_openrouter_key_is_used_with_openrouters_model_ids(alice, chat, executor):
    ApiKeyFactory(owner=alice, provider="openrouter", secret=secret_for("openrouter", 2))
    _ask(alice, chat, executor)
    assert chat.requests[0].authorization == f"Bearer {secret_for('openrouter', 2)}"
    assert chat.requests[0].body["model"] == "openai/gpt-4o-mini"


def test_an_admin_key_is_never_used_for_model_calls(alice, chat, executor):
    admin = "sk-admin-TestAdminKey0000000000000000000000Ab12"
    ApiKeyFactory(owner=alice, provider="openai", secret=admin, kind=ApiKey.Kind.ADMIN)
    outcome = _ask(alice, chat, executor)
    assert chat.requests[0].authorization == f"Bearer {SERVER_KEY}"
    assert outcome.run.api_key is None


def test_another_users_key_is_never_used(alice, bob, chat, executor):
    ApiKeyFactory(owner=bob, provider="openai", secret=secret_for("openai", 3))
    _ask(alice, chat, executor)
    assert chat.requests[0].authorization == f"Bearer {SERVER_KEY}"


def test_an_environment_key_is_not_taken_for_the_users_own(alice, chat, executor, monkeypatch):
    # Development lets services fall back to OPENAI_API_KEY from the environment; the
    # assistant treats that as the server's key (billed), not as the user's.
    monkeypatch.setenv("OPENAI_API_KEY", secret_for("openai", 4))
    outcome = _ask(alice, chat, executor)
    assert chat.requests[0].authorization == f"Bearer {SERVER_KEY}"
    assert outcome.run.api_key is None


def test_no_key_and_no_server_key_is_402_before_any_model_call(alice, chat, executor, settings):
    settings.OPENAI_API_KEY = ""
    with pytest.raises(InsufficientCredits) as caught:
        ask_run(user=alice, prompt="hi", executor=executor)
    assert caught.value.status == 402
    # Credits would not help: without a server key only the user's own key can pay.
    assert "add your own OpenAI or OpenRouter key" in caught.value.message
    assert "credits" not in caught.value.message
    assert chat.requests == [] and not AssistantRun.objects.exists()


def test_the_preferred_catalog_model_is_asked_for(alice, chat, executor):
    model = ModelFactory(openrouter_id="openai/gpt-4.1-mini")
    CatalogPreference.objects.create(user=alice, preferred_model=model)
    _ask(alice, chat, executor)
    assert chat.requests[0].body["model"] == "gpt-4.1-mini"


@pytest.mark.parametrize(
    ("provider", "preferred", "expected"),
    [
        ("openai", "", "gpt-4o-mini"),
        ("openai", "openai/gpt-4.1", "gpt-4.1"),
        ("openai", "anthropic/claude-sonnet-4", "gpt-4o-mini"),  # OpenAI cannot serve it
        ("openrouter", "anthropic/claude-sonnet-4", "anthropic/claude-sonnet-4"),
        ("openrouter", "", "openai/gpt-4o-mini"),
    ],
)
def test_the_model_follows_the_provider(provider, preferred, expected, settings):
    settings.OPENAI_MODEL = "gpt-4o-mini"
    assert model_for(provider=provider, preferred_id=preferred) == expected


def test_a_run_records_the_key_its_worker_used_when_keys_changed_since_it_was_stored(
    alice, chat, executor, monkeypatch, settings
):
    """The web stores the run with the key that would pay then; the worker resolves it
    again. A key added (or replaced, or deleted) in between must show on the run as the
    key that really paid, not the one read when it was stored."""
    from assistant.selectors import run_paid_with
    from assistant.services import runs
    from assistant.services.runs import run_ask_start, run_execute

    settings.REDIS_URL = ""
    monkeypatch.setattr(runs, "tool_executor", lambda user: executor)
    chat.script(text("ok"))
    run = run_ask_start(user=alice, prompt="hi").run
    assert run.api_key is None  # stored on the server's key
    own = ApiKeyFactory(owner=alice, provider="openai", secret=secret_for("openai", 1))
    assert run_execute(run_id=run.pk) == "completed"
    assert chat.requests[0].authorization == f"Bearer {secret_for('openai', 1)}"
    run.refresh_from_db()
    assert run.api_key == own
    assert run_paid_with(user=alice, run=run) == "own"
    assert MeteredLlmCall.objects.get().api_key == own


def _queued_run(alice, executor, monkeypatch, settings):
    from assistant.services import runs
    from assistant.services.runs import run_ask_start

    settings.REDIS_URL = ""
    monkeypatch.setattr(runs, "tool_executor", lambda user: executor)
    return run_ask_start(user=alice, prompt="hi").run


def _executed(run, chat) -> str:
    from assistant.services.runs import run_execute

    chat.script(text("ok"))
    assert run_execute(run_id=run.pk) == "completed"
    return chat.requests[0].authorization


def test_the_key_the_web_chose_is_used_while_nothing_outranks_it(
    alice, chat, executor, monkeypatch, settings
):
    from keys.models import KeyAuditEvent

    chosen = ApiKeyFactory(owner=alice, provider="openai", is_default=True)
    run = _queued_run(alice, executor, monkeypatch, settings)
    assert run.api_key == chosen
    assert _executed(run, chat) == f"Bearer {chosen.get_secret()}"
    assert KeyAuditEvent.objects.filter(action="used", api_key=chosen).count() == 1


def test_a_default_replaced_while_the_run_waited_is_not_used(
    alice, chat, executor, monkeypatch, settings
):
    """Attack review 20c: the run kept the key chosen when it was stored."""
    from keys.models import KeyAuditEvent
    from keys.services import Origin
    from keys.services.api_keys import api_key_update

    first = ApiKeyFactory(owner=alice, provider="openai", is_default=True)
    run = _queued_run(alice, executor, monkeypatch, settings)
    second = ApiKeyFactory(owner=alice, provider="openai", secret=secret_for("openai", 2))
    origin = Origin(KeyAuditEvent.Source.DASHBOARD)
    api_key_update(acting_user=alice, api_key=second, origin=origin, is_default=True)
    assert _executed(run, chat) == f"Bearer {secret_for('openai', 2)}"
    assert not KeyAuditEvent.objects.filter(action="used", api_key=first).exists()


def test_a_choice_made_ambiguous_or_outranked_while_the_run_waited_is_made_again(
    alice, chat, executor, monkeypatch, settings
):
    """Attack review 20c: an OpenAI key added since outranks the OpenRouter key chosen."""
    ApiKeyFactory(owner=alice, provider="openrouter", secret=secret_for("openrouter", 1))
    run = _queued_run(alice, executor, monkeypatch, settings)
    ApiKeyFactory(owner=alice, provider="openai", secret=secret_for("openai", 2))
    assert _executed(run, chat) == f"Bearer {secret_for('openai', 2)}"
