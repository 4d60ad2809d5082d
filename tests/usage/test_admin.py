"""Operators see usage buckets and fetch states in the admin and can change none of them;
deleting a user there still takes their usage along."""

from datetime import UTC, datetime

import pytest

from tests.keys.factories import ApiKeyFactory
from tests.usage.factories import UsageBucketFactory, bucket_row
from usage.models import UsageBucket, UsageDaily, UsageFetchState
from usage.services import usage_buckets_upsert

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client, staff):
    client.force_login(staff)
    return client


def test_operators_see_buckets_with_their_cost_in_dollars(operator, alice):
    bucket = UsageBucketFactory(owner=alice, model="gpt-4.1", cost_micros=1_234_567)
    listing = operator.get("/admin/usage/usagebucket/").content.decode()
    assert "gpt-4.1" in listing and "1.234567" in listing and alice.email in listing
    detail = operator.get(f"/admin/usage/usagebucket/{bucket.pk}/change/")
    assert detail.status_code == 200 and "proj_abc" in detail.content.decode()


def test_operators_see_where_each_keys_fetch_stands(operator, alice):
    key = ApiKeyFactory(owner=alice, name="org admin")
    state = UsageFetchState.objects.create(
        api_key=key,
        last_status="invalid_key",
        last_error="OpenAI refused the key (401).",
        last_fetched_at=datetime(2026, 3, 2, 9, tzinfo=UTC),
    )
    listing = operator.get("/admin/usage/usagefetchstate/").content.decode()
    assert "org admin" in listing and "Key refused by the provider" in listing
    assert alice.email in listing and "OpenAI refused the key (401)." in listing
    detail = operator.get(f"/admin/usage/usagefetchstate/{state.pk}/change/").content.decode()
    assert key.masked_key in detail and key.get_secret() not in detail


def test_operators_can_change_no_usage(operator, alice):
    bucket = UsageBucketFactory(owner=alice, requests=3)
    state = UsageFetchState.objects.create(api_key=ApiKeyFactory(owner=alice))
    assert operator.get("/admin/usage/usagebucket/add/").status_code == 403
    assert operator.get("/admin/usage/usagefetchstate/add/").status_code == 403
    change = operator.post(f"/admin/usage/usagebucket/{bucket.pk}/change/", {"requests": 999})
    assert change.status_code == 403
    for url in (
        f"/admin/usage/usagebucket/{bucket.pk}/delete/",
        f"/admin/usage/usagefetchstate/{state.pk}/delete/",
    ):
        assert operator.post(url, {"post": "yes"}).status_code == 403
    bulk = operator.post(
        "/admin/usage/usagebucket/",
        {"action": "delete_selected", "_selected_action": [bucket.pk], "post": "yes"},
    )
    assert bulk.status_code in (200, 302)
    assert UsageBucket.objects.get().requests == 3
    assert UsageFetchState.objects.filter(pk=state.pk).exists()


def test_deleting_a_user_in_the_admin_takes_their_usage_along(operator, alice):
    key = ApiKeyFactory(owner=alice)
    usage_buckets_upsert(owner=alice, source="openai_admin", rows=[bucket_row(api_key_id=key.pk)])
    UsageFetchState.objects.create(api_key=key)
    response = operator.post(f"/admin/accounts/user/{alice.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not UsageBucket.objects.exists()
    assert not UsageDaily.objects.exists()
    assert not UsageFetchState.objects.exists()
