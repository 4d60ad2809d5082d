"""The Models pages, preferences and the admin."""

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from html import escape
from unittest import mock

import pytest
from django.urls import reverse

from core.errors import ApplicationError
from models_catalog import selectors, services
from models_catalog.models import CatalogPreference, Model, ModelEndpoint, Provider
from tests.fakes.openrouter import MODELS, PROVIDERS
from tests.fakes.server import DATA
from tests.helpers.queries import assert_flat_queries
from tests.models_catalog.factories import (
    ModelEndpointFactory,
    ModelFactory,
    ProviderFactory,
    offer,
)

LIST = "/dashboard/models/"
pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog(db):
    openai = ProviderFactory(slug="openai", name="OpenAI", headquarters="US")
    deepinfra = ProviderFactory(slug="deepinfra", name="DeepInfra", headquarters="US")
    tools = offer(
        provider=openai,
        openrouter_id="openai/gpt-tools",
        name="OpenAI: GPT Tools",
        description="Calls tools.\n\nSecond paragraph.",
        supported_parameters=["tools"],
        prompt_price=Decimal("0.00000125"),
        completion_price=Decimal("0.00001"),
        context_length=400_000,
    )
    offer(
        provider=deepinfra,
        openrouter_id="meta-llama/llama-plain",
        name="Meta: Llama Plain",
        prompt_price=Decimal("0.0000001"),
        completion_price=Decimal("0.0000002"),
    )
    return tools.model


def test_the_models_page_requires_sign_in(client, catalog):
    response = client.get(LIST)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_models_page_lists_and_filters(alice_browser, catalog):
    page = alice_browser.get(LIST).content.decode()
    assert "OpenAI: GPT Tools" in page and "Meta: Llama Plain" in page
    assert "<strong>2</strong> models" in page
    assert 'href="/dashboard/models/openai/gpt-tools/"' in page
    assert "$1.25" in page and "$10.00" in page  # per million tokens

    filtered = alice_browser.get(LIST, {"supports": "tools"}).content.decode()
    assert "<strong>1</strong> model" in filtered and "Llama Plain" not in filtered


def test_htmx_requests_get_only_the_results(alice_browser, catalog):
    response = alice_browser.get(
        LIST, {"max_prompt_price": "0.5"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="results"
    )
    body = response.content.decode()
    assert "<html" not in body and 'id="result-count"' in body
    assert "Llama Plain" in body and "GPT Tools" not in body


def test_invalid_filters_show_an_error_and_all_models(alice_browser, catalog):
    body = alice_browser.get(LIST, {"min_context": "huge"}).content.decode()
    assert "Some filters are not valid" in body and "<strong>2</strong> models" in body


def test_invalid_filters_are_reported_in_an_htmx_update_too(alice_browser, catalog):
    response = alice_browser.get(
        LIST, {"max_prompt_price": "-1"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="results"
    )
    body = response.content.decode()
    assert "<html" not in body and 'role="alert"' in body and "Some filters are not valid" in body
    assert "<strong>2</strong> models" in body


def test_the_models_page_falls_back_to_the_snapshot(alice_browser, db):
    body = alice_browser.get(LIST).content.decode()
    assert "<strong>414</strong> models" in body and "From the backup snapshot" in body


def test_the_list_page_query_count_is_flat(alice_browser, db):
    provider = ProviderFactory()
    assert_flat_queries(alice_browser, LIST, lambda: offer(provider=provider), at_most=14)


def test_a_model_page_shows_description_prices_and_endpoints(alice_browser, catalog):
    body = alice_browser.get("/dashboard/models/openai/gpt-tools/").content.decode()
    assert "<p>Calls tools.</p>" in body and "<p>Second paragraph.</p>" in body
    assert "$1.25" in body and "$10.00" in body and "400K" in body
    assert 'data-provider="openai"' in body and "Up</span>" in body


def test_an_unknown_model_is_a_404(alice_browser, catalog):
    assert alice_browser.get("/dashboard/models/nobody/nothing/").status_code == 404


def test_allowing_a_model_with_htmx_swaps_the_button(alice_browser, alice, bob, catalog):
    url = reverse("models_catalog:allow", args=["openai/gpt-tools"])
    response = alice_browser.post(url, {"allowed": "1"}, HTTP_HX_REQUEST="true")
    assert "Allowed ✓" in response.content.decode()
    assert selectors.preferences_for(user=alice).allowed_models == {"openai/gpt-tools"}
    # Another user's preferences are their own.
    assert selectors.preferences_for(user=bob).allowed_models == frozenset()
    alice_browser.post(url, {"allowed": "0"})
    assert selectors.preferences_for(user=alice).allowed_models == frozenset()


def test_allowing_a_provider_allows_its_models(alice_browser, alice, catalog):
    url = reverse("models_catalog:provider-allow", args=["deepinfra"])
    response = alice_browser.post(url, {"allowed": "1", "next": "https://evil.example/"})
    assert response["Location"] == LIST  # never redirects off-site
    assert selectors.allowed_model_ids_for(user=alice) == {"meta-llama/llama-plain"}
    body = alice_browser.get(LIST, {"allowed": "1"}).content.decode()
    assert "Llama Plain" in body and "GPT Tools" not in body


def test_filtering_on_one_provider_offers_to_allow_it(alice_browser, alice, catalog):
    body = alice_browser.get(LIST, {"provider": "deepinfra"}).content.decode()
    assert "Allow all DeepInfra models" in body
    assert "Allow all" not in alice_browser.get(LIST).content.decode()


def test_choosing_the_assistant_model(alice_browser, alice, bob, catalog):
    assert selectors.preferred_model_for(user=alice) is None
    alice_browser.post(reverse("models_catalog:prefer", args=["openai/gpt-tools"]))
    assert selectors.preferred_model_for(user=alice) == catalog
    assert selectors.preferred_model_for(user=bob) is None
    body = alice_browser.get("/dashboard/models/openai/gpt-tools/").content.decode()
    assert "The assistant uses this model for you." in body


def test_the_preferred_model_must_be_allowed_when_the_user_restricts(alice, catalog):
    services.preference_provider_allow(
        user=alice, provider=Provider.objects.get(slug="deepinfra"), allowed=True
    )
    with pytest.raises(ApplicationError, match="not in your allowed models"):
        services.preference_preferred_set(user=alice, model=catalog)
    services.preference_model_allow(user=alice, model=catalog, allowed=True)
    services.preference_preferred_set(user=alice, model=catalog)
    assert selectors.preferred_model_for(user=alice) == catalog


def test_a_hidden_preferred_model_is_not_used(alice, catalog):
    services.preference_preferred_set(user=alice, model=catalog)
    services.models_disable(models=[catalog], disabled=True)
    assert selectors.preferred_model_for(user=alice) is None
    assert CatalogPreference.objects.get(user=alice).preferred_model == catalog


def test_preference_writes_need_sign_in_and_post(client, alice_browser, catalog):
    url = reverse("models_catalog:allow", args=["openai/gpt-tools"])
    assert client.post(url, {"allowed": "1"}).status_code == 302
    assert alice_browser.get(url).status_code == 405
    assert alice_browser.post(reverse("models_catalog:allow", args=["x/y"])).status_code == 404


# --- Admin -------------------------------------------------------------------------------


def _save_provider_in_the_admin(client, provider, **changed):
    """An operator saves a provider's admin form: its stored values, with ``changed``."""
    stored = {
        "name": provider.name,
        "data_policy": provider.data_policy,
        "headquarters": provider.headquarters,
        "datacenters": json.dumps(provider.datacenters),
        "privacy_policy_url": provider.privacy_policy_url,
        "terms_of_service_url": provider.terms_of_service_url,
        "status_page_url": provider.status_page_url,
    }
    url = f"/admin/models_catalog/provider/{provider.pk}/change/"
    response = client.post(url, {**stored, **changed})
    assert response.status_code == 302, response.content
    provider.refresh_from_db()


def test_operators_see_and_curate_the_catalog(client, staff, catalog):
    client.force_login(staff)
    assert (
        client.get("/admin/models_catalog/provider/?data_policy__exact=unknown").status_code == 200
    )
    assert client.get("/admin/models_catalog/model/?is_active__exact=1").status_code == 200
    assert client.get(f"/admin/models_catalog/model/{catalog.pk}/change/").status_code == 200
    provider = Provider.objects.get(slug="openai")
    _save_provider_in_the_admin(
        client,
        provider,
        data_policy="zero_retention",
        datacenters='["US", "IE"]',
        location_curated="on",
    )
    assert provider.data_policy == "zero_retention" and provider.datacenters == ["US", "IE"]


def test_a_curated_policy_reaches_the_api_without_waiting_for_the_cache(
    client, staff, catalog, api_client
):
    url = "/api/openrouter/models-by-provider?data_policy=zero_retention"
    assert api_client.get(url).json()["total_models"] == 0
    client.force_login(staff)
    provider = Provider.objects.get(slug="openai")
    response = client.post(
        "/admin/models_catalog/provider/",
        {
            "form-TOTAL_FORMS": "2",
            "form-INITIAL_FORMS": "2",
            "form-0-id": str(provider.pk),
            "form-0-data_policy": "zero_retention",
            "form-1-id": str(Provider.objects.get(slug="deepinfra").pk),
            "form-1-data_policy": "unknown",
            "_save": "Save",
        },
    )
    assert response.status_code == 302, response.content
    assert api_client.get(url).json()["total_models"] == 1


def test_operators_can_hide_and_feature_models(client, staff, catalog, api_client):
    client.force_login(staff)
    url = "/admin/models_catalog/model/"
    client.post(url, {"action": "feature", "_selected_action": [catalog.pk]})
    assert Model.objects.get(pk=catalog.pk).is_featured
    client.post(url, {"action": "disable", "_selected_action": [catalog.pk]})
    body = api_client.get("/api/openrouter/models-by-provider").json()
    assert "openai/gpt-tools" not in {m["id"] for p in body["providers"] for m in p["models"]}


def test_operators_can_start_a_sync(client, staff, django_capture_on_commit_callbacks):
    client.force_login(staff)
    with (
        mock.patch("models_catalog.tasks.sync_models.delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = client.post("/admin/models_catalog/syncrun/start/")
    assert response.status_code == 302
    delay.assert_called_once()
    assert client.get("/admin/models_catalog/syncrun/").status_code == 200


def test_non_staff_cannot_reach_the_catalog_admin(alice_browser, catalog):
    assert alice_browser.get("/admin/models_catalog/model/").status_code == 302


def test_an_operators_location_edit_is_kept_by_later_syncs(client, staff, catalog):
    client.force_login(staff)
    provider = Provider.objects.get(slug="openai")
    _save_provider_in_the_admin(client, provider, headquarters="de", datacenters="")
    # Stored as the filters expect it, and marked curated so the next sync keeps it.
    assert provider.headquarters == "DE" and provider.datacenters == []
    assert provider.location_curated
    services.catalog_sync_from_files(
        models_path=DATA / MODELS["2026-08-19"], providers_path=DATA / PROVIDERS
    )
    provider.refresh_from_db()
    assert provider.headquarters == "DE" and provider.datacenters == []
    body = client.get("/api/openrouter/models-by-provider?location=DE").json()
    assert "openai" in {p["slug"] for p in body["providers"]}


def test_third_party_text_is_escaped(alice_browser, alice, catalog):
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    Model.objects.filter(pk=catalog.pk).update(name=f"Evil {evil}", description=f"Hi {evil}")
    services.catalog_cache_invalidate()
    for url in (LIST, "/dashboard/models/openai/gpt-tools/"):
        body = alice_browser.get(url).content.decode()
        assert "Evil" in body and "<script>alert" not in body and "<img src=x" not in body
    response = alice_browser.post(
        reverse("models_catalog:allow", args=["openai/gpt-tools"]), {"allowed": "1"}, follow=True
    )
    assert "Evil &lt;script&gt;" in response.content.decode()
    assert "<script>alert" not in response.content.decode()


def test_a_router_whose_price_varies_says_so(alice_browser, catalog):
    varies = {"prompt": "-1", "completion": "-1"}
    model = ModelFactory(
        openrouter_id="openrouter/auto",
        name="Auto Router",
        prompt_price=None,
        completion_price=None,
        pricing=varies,
    )
    ModelEndpointFactory(model=model, provider=ProviderFactory(), pricing=varies)
    row = alice_browser.get(LIST, {"q": "auto router"}).content.decode()
    detail = alice_browser.get("/dashboard/models/openrouter/auto/").content.decode()
    for body in (row, detail.split('id="providers"')[1]):
        assert 'class="num">varies</td>' in body, body


# --- The list page's filters, order and wording -------------------------------------------


def _options(body: str, select: str) -> list[tuple[str, str, bool]]:
    """(value, label, selected) of a <select>'s options in the page."""
    block = body[body.index(f'<select name="{select}"') :]
    block = block[: block.index("</select>")]
    return [
        (value, label, bool(selected))
        for value, selected, label in re.findall(
            r'<option value="([^"]*)"( selected)?>([^<]*)</option>', block
        )
    ]


def test_the_provider_filter_lists_display_names_once(alice_browser, db):
    offer(provider=ProviderFactory(slug="meta-llama", name="Meta"), openrouter_id="meta-llama/a")
    offer(provider=ProviderFactory(slug="meta", name="Meta"), openrouter_id="meta/b")
    # An older sync named providers it knew only from a model after their slug.
    offer(provider=ProviderFactory(slug="microsoft", name="microsoft"), openrouter_id="microsoft/c")
    options = _options(alice_browser.get(LIST).content.decode(), "provider")
    assert [(value, label) for value, label, _ in options] == [
        ("", "All providers"),
        ("meta,meta-llama", "Meta"),
        ("microsoft", "Microsoft"),
    ]
    body = alice_browser.get(LIST, {"provider": "meta-llama,meta"}).content.decode()
    assert ("meta,meta-llama", "Meta", True) in _options(body, "provider")
    assert "<strong>2</strong> models" in body
    assert "Microsoft" in alice_browser.get(f"{LIST}microsoft/c/").content.decode()


def test_with_nothing_featured_the_list_is_newest_first_and_says_so(alice_browser, db):
    offer(openrouter_id="a/old", name="A Old", created=datetime(2024, 1, 1, tzinfo=UTC))
    offer(openrouter_id="z/new", name="Z New", created=datetime(2026, 1, 1, tzinfo=UTC))
    body = alice_browser.get(LIST).content.decode()
    sorts = _options(body, "sort")
    assert ("newest", "Newest first", True) in sorts
    assert "featured" not in [value for value, _, _ in sorts]
    assert body.index("Z New") < body.index("A Old")


def test_once_a_model_is_featured_the_list_starts_with_it(alice_browser, db):
    offer(openrouter_id="a/plain", name="A Plain", created=datetime(2026, 1, 1, tzinfo=UTC))
    offer(openrouter_id="z/star", name="Z Star", created=datetime(2024, 1, 1, tzinfo=UTC))
    Model.objects.filter(openrouter_id="z/star").update(is_featured=True)
    body = alice_browser.get(LIST).content.decode()
    assert ("featured", "Featured, then name", True) in _options(body, "sort")
    assert body.index("Z Star") < body.index("A Plain")


def test_only_models_i_allow_is_not_among_the_capabilities(alice_browser, catalog):
    body = alice_browser.get(LIST).content.decode()
    supports = body[body.index('<fieldset class="catalog-checks">') :]
    supports = supports[: supports.index("</fieldset>")]
    assert "Only models I allow" not in supports and "Only models I allow" in body
    assert "You allow every model until you choose some" in body


def test_ids_may_wrap_after_their_slash(alice_browser, catalog):
    body = alice_browser.get(LIST).content.decode()
    assert '<div class="mono muted catalog-id">openai/<wbr>gpt-tools</div>' in body


# --- The model page's providers -------------------------------------------------------------


def test_the_model_page_explains_an_unknown_data_policy_and_a_listing_row(alice_browser, db):
    endpoint = offer(
        provider=ProviderFactory(slug="maker", privacy_policy_url="https://maker.example/p"),
        openrouter_id="maker/m",
    )
    ModelEndpoint.objects.filter(pk=endpoint.pk).update(inferred=True)
    body = alice_browser.get("/dashboard/models/maker/m/").content.decode()
    assert body.count("Data policy unknown") == 2  # the pill and its note
    assert body.count("From the model listing") == 2
    assert "have not reviewed this provider yet" in body
    assert 'href="https://maker.example/p" rel="nofollow noopener noreferrer"' in body


def test_a_reviewed_provider_needs_no_notes(alice_browser, db):
    offer(provider=ProviderFactory(slug="zr", data_policy="zero_retention"), openrouter_id="zr/m")
    body = alice_browser.get("/dashboard/models/zr/m/").content.decode()
    assert "Zero retention" in body
    assert "Data policy unknown" not in body and "catalog-notes" not in body


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "http://maker.example/p", "data:text/html,<script>x</script>"]
)
def test_a_providers_privacy_link_is_shown_only_for_https(alice_browser, db, url):
    offer(provider=ProviderFactory(slug="maker", privacy_policy_url=url), openrouter_id="maker/m")
    body = alice_browser.get("/dashboard/models/maker/m/").content.decode()
    assert "Privacy policy" not in body
    assert url not in body and escape(url) not in body
