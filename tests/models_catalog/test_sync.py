"""The OpenRouter sync against the fake OpenRouter server serving the recorded payloads."""

import json
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.errors import Conflict, ProviderError
from models_catalog import services
from models_catalog.models import Model, ModelEndpoint, Provider, SyncRun
from models_catalog.openrouter import OpenRouterClient
from tests.fakes.openrouter import MODELS
from tests.fakes.server import DATA

pytestmark = pytest.mark.django_db


def _ids(snapshot):
    body = json.loads((DATA / MODELS[snapshot]).read_text())
    return {m["id"]: m for m in body["data"]}


NEWEST = len(_ids("2026-08-19"))  # models in the snapshot the fake serves by default


def test_sync_follows_three_real_snapshots_added_changed_vanished(fake_openrouter, openrouter):
    old, mid, new = _ids("2025-05-23"), _ids("2026-05-20"), _ids("2026-08-19")

    fake_openrouter.use_models("2025-05-23")
    first = services.catalog_sync(client=openrouter)
    assert first.counts["models"]["added"] == len(old) == Model.objects.count()
    devstral = Model.objects.get(openrouter_id="mistralai/devstral-small")
    assert devstral.prompt_price == Decimal("0.00000007")

    fake_openrouter.use_models("2026-05-20")
    second = services.catalog_sync(client=openrouter)
    assert second.counts["models"]["added"] == len(set(mid) - set(old))
    assert second.counts["models"]["deactivated"] == len(set(old) - set(mid))
    devstral.refresh_from_db()
    assert devstral.prompt_price == Decimal("0.0000001")  # price changed upstream
    gone = Model.objects.get(openrouter_id=next(iter(set(old) - set(mid))))
    assert not gone.is_active
    assert gone.last_seen == SyncRun.objects.get(pk=first.run_id).started_at

    fake_openrouter.use_models("2026-08-19")
    third = services.catalog_sync(client=openrouter)
    assert third.counts["models"]["added"] == len(set(new) - set(mid))
    assert Model.objects.filter(is_active=True).count() == len(new)
    # Never deletes: every model ever seen is still there.
    assert Model.objects.count() == len(set(old) | set(mid) | set(new))
    assert third.failed == 0
    assert SyncRun.objects.filter(status="succeeded").count() == 3


def test_second_sync_with_the_same_data_writes_nothing(fake_openrouter, openrouter):
    services.catalog_sync(client=openrouter)
    with CaptureQueriesContext(connection) as queries:
        again = services.catalog_sync(client=openrouter)
    for kind in ("models", "endpoints", "providers"):
        numbers = again.counts[kind]
        assert numbers["added"] == numbers["updated"] == numbers["deactivated"] == 0, kind
        assert numbers["unchanged"] > 0
    catalog_writes = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith(("INSERT", "UPDATE", "DELETE"))
        and "models_catalog_syncrun" not in q["sql"]
        and "kay_cache" not in q["sql"]
    ]
    assert catalog_writes == []


def test_the_sync_stores_real_endpoints_per_provider(fake_openrouter, openrouter):
    fake_openrouter.use_models("2025-05-23")
    services.catalog_sync(client=openrouter)
    gemini = ModelEndpoint.objects.filter(model__openrouter_id="google/gemini-2.5-pro-preview")
    rows = {e.provider.slug: e for e in gemini.select_related("provider")}
    assert set(rows) == {"google-vertex", "google-ai-studio"}  # the recorded body
    vertex = rows["google-vertex"]
    assert vertex.max_completion_tokens == 65535
    assert vertex.prompt_price == Decimal("0.00000125")
    assert vertex.completion_price == Decimal("0.00001")
    assert vertex.status == 0 and not vertex.inferred
    assert rows["google-ai-studio"].provider.name == "Google AI Studio"
    assert rows["google-ai-studio"].provider.listed  # also in /providers


def test_malformed_json_fails_and_leaves_rows_untouched(fake_openrouter, openrouter):
    services.catalog_sync(client=openrouter)
    before = list(Model.objects.order_by("pk").values_list("openrouter_id", "prompt_price"))

    fake_openrouter.malformed_models = True
    with pytest.raises(ProviderError) as caught:
        services.catalog_sync(client=openrouter)

    assert "invalid JSON" in caught.value.message
    assert list(Model.objects.order_by("pk").values_list("openrouter_id", "prompt_price")) == before
    assert SyncRun.objects.first().status == "failed"


@pytest.mark.parametrize(
    "body",
    [
        {"models": []},
        {"data": [{"name": "no id"}]},
        {"data": [{"id": "a/b", "pricing": {"prompt": "cheap"}}]},
        {"data": [{"id": "a/b", "context_length": "long"}]},
        # Numbers our columns cannot hold are malformed too, not a database error mid-sync.
        {"data": [{"id": "a/b", "pricing": {"prompt": "1e30"}}]},
        {"data": [{"id": "a/b", "pricing": {"completion": "12345678901"}}]},
        {"data": [{"id": "a/b", "context_length": 10**12}]},
        {"data": [{"id": "a/b", "top_provider": {"max_completion_tokens": float("inf")}}]},
    ],
)
def test_a_malformed_payload_is_rejected_before_any_write(fake_openrouter, openrouter, body):
    services.catalog_sync(client=openrouter)
    count = Model.objects.filter(is_active=True).count()
    fake_openrouter.use_models(body)
    with pytest.raises(ProviderError):
        services.catalog_sync(client=openrouter)
    assert Model.objects.filter(is_active=True).count() == count


def test_unknown_fields_and_missing_optional_ones_are_tolerated(fake_openrouter, openrouter):
    fake_openrouter.use_models(
        {"data": [{"id": "new/model", "brand_new_field": {"x": 1}}, {"id": "a/b", "name": "AB"}]}
    )
    summary = services.catalog_sync(client=openrouter)
    assert summary.counts["models"]["added"] == 2
    model = Model.objects.get(openrouter_id="new/model")
    assert model.name == "new/model" and model.prompt_price is None


def test_rate_limit_then_success(fake_openrouter, openrouter):
    fake_openrouter.retry_after = "7"
    fake_openrouter.fail("/models", 429, 503)
    summary = services.catalog_sync(client=openrouter)
    assert summary.counts["models"]["added"] == NEWEST
    assert fake_openrouter.paths().count("/models") == 3
    # Retry-After is honoured; without it, exponential backoff with jitter (2nd try: 1-2 s).
    assert openrouter.sleeps[0] == 7.0
    assert 1.0 <= openrouter.sleeps[1] <= 2.0


def test_endpoint_calls_run_with_bounded_concurrency(fake_openrouter, openrouter):
    fake_openrouter.delay = 0.005
    fake_openrouter.use_models(
        {"data": [m for m in fake_openrouter.models_body["data"] if m["id"].startswith("openai/")]}
    )
    services.catalog_sync(client=openrouter, concurrency=3)
    assert 1 < fake_openrouter.max_in_flight <= 3


def test_giving_up_after_repeated_errors(fake_openrouter):
    fake_openrouter.fail("/models", 500, 500, 500)
    with (
        OpenRouterClient(max_attempts=3, sleep=lambda s: None) as client,
        pytest.raises(ProviderError, match="after 3 attempts"),
    ):
        services.catalog_sync(client=client)
    assert not Model.objects.exists()


def test_one_models_endpoints_failing_does_not_fail_the_sync(fake_openrouter, openrouter):
    services.catalog_sync(client=openrouter)
    model_id = "qwen/qwen3.8-27b"
    before = set(ModelEndpoint.objects.filter(model__openrouter_id=model_id).values_list("tag"))
    assert len(before) == 3  # first party + two hosts in the fake
    endpoints = ModelEndpoint.objects.count()

    fake_openrouter.fail(f"/models/{model_id}/endpoints", 500, 500, 500, 500)
    summary = services.catalog_sync(client=openrouter)

    assert summary.failed == 1 and model_id in summary.failures[0]
    assert summary.counts["endpoints"]["unchanged"] == endpoints - len(before)
    # The last good data is kept rather than wiped.
    rows = ModelEndpoint.objects.filter(model__openrouter_id=model_id, is_active=True)
    assert set(rows.values_list("tag")) == before
    assert SyncRun.objects.first().failed == 1


def test_one_models_malformed_endpoints_do_not_fail_the_sync(fake_openrouter, openrouter):
    model_id = "qwen/qwen3.8-27b"
    real = fake_openrouter.endpoints_body

    def endpoints_body(requested):
        body = real(requested)
        if requested == model_id:
            body["data"]["endpoints"][0]["pricing"]["prompt"] = "1e30"
        else:
            body["data"]["endpoints"][0]["uptime_last_30m"] = 12345.6
        return body

    fake_openrouter.endpoints_body = endpoints_body
    summary = services.catalog_sync(client=openrouter)

    assert summary.failed == 1 and model_id in summary.failures[0]
    assert summary.counts["models"]["added"] == NEWEST
    assert ModelEndpoint.objects.get(model__openrouter_id=model_id).inferred
    # An uptime that is not a percentage is not shown, and does not fail the model.
    assert not ModelEndpoint.objects.filter(uptime_last_30m__gt=100).exists()


def test_a_new_model_whose_endpoints_fail_is_listed_from_its_listing(fake_openrouter, openrouter):
    model_id = "anthropic/claude-opus-5"
    fake_openrouter.fail(f"/models/{model_id}/endpoints", 404)
    services.catalog_sync(client=openrouter)
    endpoint = ModelEndpoint.objects.get(model__openrouter_id=model_id)
    assert endpoint.inferred and endpoint.provider.slug == "anthropic"


def test_a_provider_that_stops_serving_a_model_is_deactivated(fake_openrouter, openrouter):
    services.catalog_sync(client=openrouter)
    body = fake_openrouter.endpoints_body("qwen/qwen3.8-27b")
    dropped = body["data"]["endpoints"].pop()
    fake_openrouter.endpoints_body = lambda model_id, real=fake_openrouter.endpoints_body: (
        body if model_id == "qwen/qwen3.8-27b" else real(model_id)
    )
    summary = services.catalog_sync(client=openrouter)
    assert summary.counts["endpoints"]["deactivated"] == 1
    assert not ModelEndpoint.objects.get(
        tag=dropped["tag"], model__openrouter_id="qwen/qwen3.8-27b"
    ).is_active


def test_api_key_is_sent_only_when_configured(fake_openrouter, settings):
    with OpenRouterClient() as client:
        client.providers()
    settings.OPENROUTER_API_KEY = "sk-or-v1-test"
    with OpenRouterClient() as client:
        client.providers()
    first, second = (headers for _, headers in fake_openrouter.requests)
    assert "Authorization" not in first
    assert second["Authorization"] == "Bearer sk-or-v1-test"


def test_a_failing_providers_call_is_counted_and_models_still_sync(fake_openrouter, openrouter):
    fake_openrouter.fail("/providers", 401)
    summary = services.catalog_sync(client=openrouter)
    assert summary.failed == 1 and "providers" in summary.failures[0]
    assert Model.objects.count() == NEWEST


def test_curated_location_survives_a_sync(fake_openrouter, openrouter):
    services.catalog_sync(client=openrouter)
    Provider.objects.filter(slug="openai").update(
        headquarters="IE",
        datacenters=["IE"],
        location_curated=True,
        data_policy="zero_retention",
        fingerprint="stale",
    )
    services.catalog_sync(client=openrouter)
    openai = Provider.objects.get(slug="openai")
    assert (openai.headquarters, openai.datacenters, openai.data_policy) == (
        "IE",
        ["IE"],
        "zero_retention",
    )


def test_a_sync_refuses_to_run_twice_at_once(fake_openrouter, openrouter):
    from django.core.cache import cache

    cache.add(services.LOCK_KEY, "other", 60)
    with pytest.raises(Conflict):
        services.catalog_sync(client=openrouter)


def test_a_sync_that_changes_prices_refreshes_the_cached_api_answer(fake_openrouter, openrouter):
    from rest_framework.test import APIClient

    api, url = APIClient(), "/api/openrouter/models-by-provider?provider=mistral"
    services.catalog_sync(client=openrouter)
    first = api.get(url)
    services.catalog_sync(client=openrouter)  # nothing changed: the cached answer stands
    assert api.get(url, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304

    body = json.loads(json.dumps(fake_openrouter.models_body))
    model = next(m for m in body["data"] if m["id"].startswith("mistralai/"))
    model["pricing"]["prompt"] = "0.000123"
    fake_openrouter.use_models(body)
    services.catalog_sync(client=openrouter)

    changed = api.get(url, HTTP_IF_NONE_MATCH=first["ETag"])
    assert changed.status_code == 200 and changed["ETag"] != first["ETag"]
    prices = {
        m["id"]: m["pricing"]["prompt"] for p in changed.json()["providers"] for m in p["models"]
    }
    assert prices[model["id"]] == "0.000123"


def test_models_with_unsafe_ids_are_skipped_and_the_models_page_still_renders(
    fake_openrouter, openrouter, alice_browser
):
    body = json.loads(json.dumps(fake_openrouter.models_body))
    good = body["data"][0]
    body["data"] += [
        {**good, "id": "evil/new\nline", "name": "Evil: Newline"},
        {**good, "id": "evil/<b>bold</b>", "name": "Evil: Markup"},
        {**good, "id": "evil/space d", "name": "Evil: Space"},
    ]
    fake_openrouter.use_models(body)
    summary = services.catalog_sync(client=openrouter)

    assert summary.counts["models"]["added"] == NEWEST and summary.failed == 0
    assert not Model.objects.filter(openrouter_id__startswith="evil/").exists()
    assert not any("evil" in path for path in fake_openrouter.paths())  # never fetched
    page = alice_browser.get("/dashboard/models/")
    assert page.status_code == 200
    assert f"<strong>{NEWEST}</strong> models" in page.content.decode()
    assert "Evil" not in page.content.decode()


def test_providers_known_only_from_models_get_readable_names_whatever_the_order(tmp_path):
    listing = {
        "data": [
            {"id": "microsoft/phi-4", "name": "Microsoft: Phi 4"},
            {"id": "microsoft/wizardlm-2-8x22b", "name": "WizardLM-2 8x22B"},  # no "Maker:"
            {"id": "undi95/remm-slerp-l2-13b", "name": "ReMM SLERP 13B"},
            {"id": "anthracite-org/magnum-v4-72b", "name": "Magnum v4 72B"},
        ]
    }
    path = tmp_path / "models.json"
    path.write_text(json.dumps(listing))
    services.catalog_sync_from_files(models_path=path)
    names = dict(Provider.objects.values_list("slug", "name"))
    assert names == {
        "microsoft": "Microsoft",
        "undi95": "Undi95",
        "anthracite-org": "Anthracite Org",
    }
