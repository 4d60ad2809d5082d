"""Usage rows for tests: stored buckets, and the BucketRows fetchers hand over."""

from datetime import UTC, datetime

import factory

from tests.accounts.factories import UserFactory
from tests.keys.factories import ProjectFactory
from usage.models import Budget, Source, UsageBucket
from usage.records import BucketRow

START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday, 00:00 UTC


class UsageBucketFactory(factory.django.DjangoModelFactory):
    """A stored hourly bucket of fetched OpenAI usage."""

    class Meta:
        model = UsageBucket

    owner = factory.SubFactory(UserFactory)
    source = Source.OPENAI_ADMIN
    provider = "openai"
    model = "gpt-4o-mini-2024-07-18"
    external_project_id = "proj_abc"
    external_key_id = factory.Sequence(lambda n: f"key_{n:04d}")
    bucket_start = START
    granularity = "hour"
    input_tokens = 1000
    output_tokens = 500
    cached_tokens = 0
    requests = 3
    cost_micros = 1200
    cost_source = "provider"


def bucket_row(**fields) -> BucketRow:
    """One hour of OpenAI usage as a fetcher reports it (provider cost given)."""
    values = {
        "provider": "openai",
        "model": "gpt-4o-mini-2024-07-18",
        "bucket_start": START,
        "granularity": "hour",
        "input_tokens": 1000,
        "output_tokens": 500,
        "cached_tokens": 200,
        "requests": 4,
        "cost_micros": 2500,
        "external_project_id": "proj_abc",
        "external_key_id": "key_abc",
    }
    values.update(fields)
    return BucketRow(**values)


class BudgetFactory(factory.django.DjangoModelFactory):
    """A $50 monthly budget of one of the owner's projects."""

    class Meta:
        model = Budget

    owner = factory.SubFactory(UserFactory)
    project = factory.LazyAttribute(lambda budget: ProjectFactory(owner=budget.owner))
    api_key = None
    monthly_limit_micros = 50_000_000
