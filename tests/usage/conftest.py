from decimal import Decimal

import pytest
from celery.signals import task_retry

from config.celery import app as celery_app
from tests.models_catalog.factories import ModelEndpointFactory, ModelFactory, ProviderFactory

# Per-token prices of the catalog the usage tests price from (OpenRouter's, 2026-08).
GPT_4O_MINI = {"prompt": "0.00000015", "completion": "0.0000006", "input_cache_read": "0.000000075"}
CLAUDE_SONNET = {"prompt": "0.000003", "completion": "0.000015", "input_cache_read": "0.0000003"}


def catalog_model(openrouter_id: str, pricing: dict[str, str]):
    model = ModelFactory(
        openrouter_id=openrouter_id,
        prompt_price=Decimal(pricing["prompt"]),
        completion_price=Decimal(pricing["completion"]),
        pricing=pricing,
    )
    ModelEndpointFactory(model=model, provider=ProviderFactory(slug=openrouter_id.split("/")[0]))
    return model


@pytest.fixture
def catalog(db):
    """A synced catalog knowing two models (and so not the shipped snapshot)."""
    return {
        "gpt-4o-mini": catalog_model("openai/gpt-4o-mini", GPT_4O_MINI),
        "claude-sonnet-4.5": catalog_model("anthropic/claude-sonnet-4.5", CLAUDE_SONNET),
    }


@pytest.fixture
def retry_delays():
    """The countdown of every retry the usage fetch task asks for."""
    from usage import tasks

    delays = []

    def record(sender=None, reason=None, **kwargs):
        if sender.name == tasks.fetch_usage_for_key.name:
            delays.append(reason.when)

    task_retry.connect(record, weak=False)
    yield delays
    task_retry.disconnect(record)


@pytest.fixture
def eager():
    """``apply_async`` runs the task in this process (as ``CELERY_TASK_ALWAYS_EAGER``)."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous
