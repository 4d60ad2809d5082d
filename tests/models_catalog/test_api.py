"""GET /api/openrouter/models-by-provider: structure, filters, sorts, caching, fallback."""

import itertools
from datetime import UTC, datetime
from decimal import Decimal
from unittest import mock

import pytest
from django.db import OperationalError
from rest_framework.test import APIClient

from models_catalog import services
from models_catalog.models import Model, Provider
from tests.helpers.queries import assert_flat_queries
from tests.models_catalog.factories import (
    ModelEndpointFactory,
    ModelFactory,
    ProviderFactory,
    offer,
)

URL = "/api/openrouter/models-by-provider"
pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def catalog(db):
    """Three providers, four models, five endpoints with distinct values per filter."""
    us = ProviderFactory(slug="openai", name="OpenAI", headquarters="US", datacenters=["US"])
    sg = ProviderFactory(
        slug="sg-host",
        name="SG Host",
        headquarters="SG",
        datacenters=["SG", "NL"],
        data_policy="zero_retention",
    )
    cn = ProviderFactory(
        slug="cn-lab", name="CN Lab", headquarters="CN", datacenters=[], data_policy="trains"
    )
    cheap = ModelEndpointFactory(
        provider=us,
        model=ModelFactory(
            openrouter_id="openai/cheap-mini",
            name="OpenAI: Cheap Mini",
            prompt_price=Decimal("0.00000015"),
            completion_price=Decimal("0.0000006"),
            context_length=128_000,
            supported_parameters=["tools", "structured_outputs"],
            input_modalities=["text", "image"],
            created=datetime(2026, 1, 1, tzinfo=UTC),
        ),
    )
    ModelEndpointFactory(
        provider=sg,
        model=cheap.model,
        tag="sg-host/fp8",
        prompt_price=Decimal("0.0000002"),
        completion_price=Decimal("0.0000008"),
    )
    offer(
        provider=us,
        openrouter_id="openai/big",
        name="OpenAI: Big",
        prompt_price=Decimal("0.00001"),
        completion_price=Decimal("0.00003"),
        context_length=1_000_000,
        supported_parameters=["tools", "reasoning"],
        created=datetime(2026, 6, 1, tzinfo=UTC),
    )
    offer(
        provider=cn,
        openrouter_id="cn-lab/open-7b",
        name="CN Lab: Open 7B",
        prompt_price=Decimal("0"),
        completion_price=Decimal("0"),
        context_length=32_000,
        supported_parameters=["temperature"],
        output_modalities=["text", "image"],
        created=datetime(2025, 3, 1, tzinfo=UTC),
    )
    offer(
        provider=sg,
        openrouter_id="sg-host/reasoner",
        name="SG: Reasoner",
        prompt_price=Decimal("0.000002"),
        completion_price=Decimal("0.000008"),
        context_length=200_000,
        supported_parameters=["reasoning", "structured_outputs"],
        created=datetime(2026, 8, 1, tzinfo=UTC),
    )


def _ids(response):
    assert response.status_code == 200, response.content
    return sorted({m["id"] for p in response.json()["providers"] for m in p["models"]})


def test_it_serves_providers_with_their_models_publicly(api, catalog):
    response = api.get(URL)
    body = response.json()
    assert body["source"] == "database"
    assert body["total_models"] == 4 and body["total_providers"] == 3
    sg = next(p for p in body["providers"] if p["slug"] == "sg-host")
    assert sg["headquarters"] == "SG" and sg["datacenters"] == ["SG", "NL"]
    assert sg["data_policy"] == {
        "policy": "zero_retention",
        "training": False,
        "retains_prompts": False,
    }
    mini = next(m for m in sg["models"] if m["id"] == "openai/cheap-mini")
    assert mini["endpoint"]["pricing"]["prompt"] == "0.0000002"  # this provider's price
    assert mini["pricing"]["prompt"] == "0.00000015"  # the model's listed price
    assert mini["endpoint"]["capabilities"] == {
        "tools": True,
        "structured_outputs": True,
        "reasoning": False,
    }
    assert mini["context_length"] == 128_000
    assert mini["architecture"]["input_modalities"] == ["text", "image"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("provider=openai", ["openai/big", "openai/cheap-mini"]),
        ("provider=cn-lab,sg-host", ["cn-lab/open-7b", "openai/cheap-mini", "sg-host/reasoner"]),
        ("location=NL", ["openai/cheap-mini", "sg-host/reasoner"]),
        ("location=cn", ["cn-lab/open-7b"]),
        ("data_policy=zero_retention", ["openai/cheap-mini", "sg-host/reasoner"]),
        ("data_policy=unknown", ["openai/big", "openai/cheap-mini"]),
        ("max_prompt_price=0.15", ["cn-lab/open-7b", "openai/cheap-mini"]),
        ("max_prompt_price=2", ["cn-lab/open-7b", "openai/cheap-mini", "sg-host/reasoner"]),
        ("max_completion_price=0.6", ["cn-lab/open-7b", "openai/cheap-mini"]),
        ("min_context=200000", ["openai/big", "sg-host/reasoner"]),
        ("input_modality=image", ["openai/cheap-mini"]),
        ("output_modality=image", ["cn-lab/open-7b"]),
        ("supports=tools", ["openai/big", "openai/cheap-mini"]),
        ("supports=reasoning&supports=structured_outputs", ["sg-host/reasoner"]),
        ("q=reasoner", ["sg-host/reasoner"]),
        ("q=CN+lab", ["cn-lab/open-7b"]),
        ("supports=tools&max_prompt_price=1&location=US", ["openai/cheap-mini"]),
    ],
)
def test_each_filter(api, catalog, query, expected):
    assert _ids(api.get(f"{URL}?{query}")) == expected


def test_price_filters_use_each_providers_price(api, catalog):
    body = api.get(f"{URL}?max_prompt_price=0.15").json()
    assert [p["slug"] for p in body["providers"]] == ["cn-lab", "openai"]  # SG charges 0.20


@pytest.mark.parametrize(
    ("sort", "first"),
    [("price", "cn-lab/open-7b"), ("context", "openai/big"), ("newest", "sg-host/reasoner")],
)
def test_sorts(api, catalog, sort, first):
    body = api.get(f"{URL}?sort={sort}").json()
    order = [m["id"] for p in body["providers"] for m in p["models"]]
    assert order[0] == first


def test_invalid_filters_are_a_400_with_field_errors(api, catalog):
    response = api.get(f"{URL}?data_policy=sometimes&min_context=lots&sort=random")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert set(error["fields"]) == {"data_policy", "min_context", "sort"}


def test_etag_and_304(api, catalog):
    first = api.get(f"{URL}?supports=tools")
    assert first["Cache-Control"] == "public, max-age=60"
    etag = first["ETag"]
    again = api.get(f"{URL}?supports=tools", HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304 and again.content == b"" and again["ETag"] == etag
    other = api.get(f"{URL}?supports=reasoning", HTTP_IF_NONE_MATCH=etag)
    assert other.status_code == 200 and other["ETag"] != etag


def test_the_etag_follows_the_data_not_the_time_it_was_built(api, catalog, time_machine):
    time_machine.move_to(datetime(2026, 9, 1, 12, 0, tzinfo=UTC))
    etag = api.get(URL)["ETag"]
    # A minute later the cached copy has expired (or another process builds its own):
    # the data is the same, so a client's copy is still current.
    time_machine.move_to(datetime(2026, 9, 1, 12, 1, 5, tzinfo=UTC))
    services.catalog_cache_invalidate()
    again = api.get(URL, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304 and again["ETag"] == etag
    Model.objects.filter(openrouter_id="openai/big").update(name="Renamed")
    services.catalog_cache_invalidate()
    changed = api.get(URL, HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and changed["ETag"] != etag
    assert "Renamed" in changed.content.decode()


def test_responses_are_cached_per_filter_set_until_a_sync_changes_the_catalog(api, catalog):
    before = api.get(f"{URL}?provider=openai").json()
    Model.objects.filter(openrouter_id="openai/big").update(name="Renamed")
    assert api.get(f"{URL}?provider=openai").json() == before  # cached for 60 s
    assert "Renamed" in api.get(f"{URL}?provider=openai&sort=name").content.decode()
    services.catalog_cache_invalidate()  # what a sync that changed something does
    assert "Renamed" in api.get(f"{URL}?provider=openai").content.decode()


def test_it_falls_back_to_the_shipped_snapshot_when_tables_are_empty(api, db):
    response = api.get(URL)
    body = response.json()
    assert body["source"] == "backup"
    assert body["total_models"] == 414  # the 2026-08-19 /models payload
    tools = api.get(f"{URL}?supports=tools&provider=anthropic").json()
    assert tools["total_models"] > 0
    assert all(
        m["endpoint"]["capabilities"]["tools"] for p in tools["providers"] for m in p["models"]
    )


def test_it_falls_back_to_the_snapshot_when_tables_are_unreadable(api, catalog):
    with mock.patch(
        "models_catalog.selectors.catalog_offers_from_db", side_effect=OperationalError("gone")
    ):
        body = api.get(URL).json()
    assert body["source"] == "backup" and body["total_models"] == 414


def test_disabled_and_inactive_models_are_not_served(api, catalog):
    Model.objects.filter(openrouter_id="openai/big").update(disabled=True)
    Model.objects.filter(openrouter_id="cn-lab/open-7b").update(is_active=False)
    assert _ids(api.get(URL)) == ["openai/cheap-mini", "sg-host/reasoner"]


def test_a_loaded_catalog_with_everything_hidden_is_not_replaced_by_the_snapshot(api, catalog):
    Model.objects.update(disabled=True)
    body = api.get(URL).json()
    assert body["source"] == "database" and body["total_models"] == 0


def test_query_count_does_not_grow_with_the_catalog(api, db):
    providers = [ProviderFactory(slug=f"p{i}") for i in range(5)]
    rows = itertools.count()

    def add_model():
        offer(provider=providers[next(rows) % 5])
        services.catalog_cache_invalidate()  # a new catalog version: the next answer is fresh

    # Besides one read of the catalog: the throttle and the response cache (a table
    # without Redis), which stores the answer in each of its three codings.
    measured = assert_flat_queries(api, f"{URL}?sort=price", add_model, at_most=30)
    assert measured.response.json()["total_models"] == 50
    assert measured.touching("models_catalog_") == (1, 1)


def test_provider_metadata_comes_from_the_provider_row(api, catalog):
    Provider.objects.filter(slug="openai").update(status_page_url="https://status.openai.com/")
    services.catalog_cache_invalidate()
    openai = next(p for p in api.get(URL).json()["providers"] if p["slug"] == "openai")
    assert openai["status_page_url"] == "https://status.openai.com/"


def test_it_still_answers_when_the_cache_and_the_tables_are_down(api, catalog):
    broken = mock.Mock(side_effect=ConnectionError("cache down"))
    with (
        mock.patch("models_catalog.api.cache.get", broken),
        mock.patch("models_catalog.api.cache.set", broken),
        mock.patch(
            "models_catalog.selectors.catalog_offers_from_db",
            side_effect=OperationalError("database down"),
        ),
    ):
        response = api.get(URL)
    assert response.status_code == 200
    assert response.json()["source"] == "backup" and response["ETag"]


def test_anonymous_clients_are_rate_limited(api, catalog):
    from models_catalog.api import CatalogAnonThrottle

    with mock.patch.object(CatalogAnonThrottle, "rate", "2/min", create=True):
        codes = [api.get(URL).status_code for _ in range(3)]
        response = api.get(URL)
    assert codes == [200, 200, 429]
    assert response.json()["error"]["code"] == "rate_limited" and response["Retry-After"]


def test_a_provider_named_after_its_slug_by_an_older_sync_gets_a_readable_name(api, db):
    offer(provider=ProviderFactory(slug="anthracite-org", name="anthracite-org"))
    provider = api.get(URL).json()["providers"][0]
    assert (provider["slug"], provider["name"]) == ("anthracite-org", "Anthracite Org")
