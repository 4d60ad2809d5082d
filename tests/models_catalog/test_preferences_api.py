"""GET/PUT /api/models/preferences for the CLI and extensions."""

import pytest

from models_catalog import selectors
from models_catalog.models import CatalogPreference
from tests.helpers.queries import assert_flat_queries
from tests.models_catalog.factories import ProviderFactory, offer

URL = "/api/models/preferences"
pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog(db):
    groq = ProviderFactory(slug="groq", name="Groq")
    offer(provider=groq, openrouter_id="meta-llama/llama-fast")
    offer(provider=ProviderFactory(slug="openai"), openrouter_id="openai/gpt-x")


def test_it_needs_a_signed_in_user(api_client, catalog):
    assert api_client.get(URL).status_code == 401
    assert api_client.put(URL, {}, format="json").status_code in (401, 403)


def test_a_new_user_allows_everything(alice_api, catalog):
    assert alice_api.get(URL).json() == {
        "allowed_models": [],
        "allowed_providers": [],
        "preferred_model": None,
        "restricted": False,
    }


def test_replace_preferences(alice_api, alice, bob, catalog):
    response = alice_api.put(
        URL,
        {
            "allowed_models": ["openai/gpt-x"],
            "allowed_providers": ["groq"],
            "preferred_model": "meta-llama/llama-fast",
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["restricted"] is True
    assert selectors.preferred_model_for(user=alice).openrouter_id == "meta-llama/llama-fast"
    assert selectors.allowed_model_ids_for(user=alice) == {"openai/gpt-x", "meta-llama/llama-fast"}
    # Bob's preferences are untouched by Alice's.
    assert selectors.allowed_model_ids_for(user=bob) is None


def test_unknown_ids_are_rejected_and_nothing_changes(alice_api, alice, catalog):
    alice_api.put(URL, {"allowed_models": ["openai/gpt-x"]}, format="json")
    response = alice_api.put(
        URL, {"allowed_models": ["nope/none"], "allowed_providers": ["nobody"]}, format="json"
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["fields"] == {
        "allowed_models": ["Unknown model: nope/none"],
        "allowed_providers": ["Unknown provider: nobody"],
    }
    assert alice_api.get(URL).json()["allowed_models"] == ["openai/gpt-x"]


def test_the_preferred_model_must_be_allowed(alice_api, catalog):
    response = alice_api.put(
        URL, {"allowed_providers": ["groq"], "preferred_model": "openai/gpt-x"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "model_not_allowed"
    assert alice_api.get(URL).json()["allowed_providers"] == []  # rolled back


def test_reading_preferences_costs_the_same_for_1_or_50_allowed_models(alice_api, alice):
    preference = CatalogPreference.objects.create(user=alice)
    measured = assert_flat_queries(
        alice_api, URL, lambda: preference.allowed_models.add(offer().model)
    )
    assert len(measured.response.json()["allowed_models"]) == 50
