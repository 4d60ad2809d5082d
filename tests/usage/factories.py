"""Usage rows for tests: stored buckets, and the BucketRows fetchers hand over."""

from datetime import UTC, datetime, timedelta

import factory

from keys.models import ApiKey
from tests.accounts.factories import UserFactory
from tests.keys.factories import ApiKeyFactory, ProjectFactory
from usage.models import Budget, Source, UsageBucket
from usage.records import BucketRow
from usage.services import usage_buckets_upsert

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


def two_keys_usage(owner) -> dict[str, ApiKey]:
    """Stored usage of two keys in two projects ("web" and "batch") on START's day: web on
    two models, batch on one, and web's the day before (a one-day view's previous period)."""
    web = ApiKeyFactory(owner=owner, name="web", project=ProjectFactory(owner=owner, name="Web"))
    batch = ApiKeyFactory(
        owner=owner, name="batch", project=ProjectFactory(owner=owner, name="Batch")
    )
    usage_buckets_upsert(
        owner=owner,
        source="openai_admin",
        rows=[
            bucket_row(api_key_id=web.pk, external_key_id="k_web", cost_micros=3_000_000),
            bucket_row(
                api_key_id=web.pk,
                external_key_id="k_web",
                bucket_start=START + timedelta(hours=5),
                model="gpt-4.1",
                input_tokens=50,
                cached_tokens=0,
                output_tokens=5,
                requests=1,
                cost_micros=1_000_000,
            ),
            bucket_row(api_key_id=batch.pk, external_key_id="k_batch", cost_micros=500_000),
            bucket_row(
                api_key_id=web.pk,
                external_key_id="k_web",
                bucket_start=START - timedelta(hours=3),
                cost_micros=2_000_000,
            ),
        ],
    )
    return {"web": web, "batch": batch}


class BudgetFactory(factory.django.DjangoModelFactory):
    """A $50 monthly budget of one of the owner's projects."""

    class Meta:
        model = Budget

    owner = factory.SubFactory(UserFactory)
    project = factory.LazyAttribute(lambda budget: ProjectFactory(owner=budget.owner))
    api_key = None
    monthly_limit_micros = 50_000_000
