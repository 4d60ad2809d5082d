"""The Models pages in headless Chromium: filter without reloading, open a model, and
how the list and a model page read at desktop and phone widths."""

import re
from decimal import Decimal

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from tests.accounts.factories import UserFactory
from tests.browser_helpers import login
from tests.models_catalog.factories import ModelEndpointFactory, ModelFactory, ProviderFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_filter_to_tool_capable_models_under_a_price_and_open_one(page, screenshot):
    call_command("sync_models", "--from-backup", "--no-progress", stdout=None)
    UserFactory(email="dana@example.com")
    login(page, "dana@example.com")

    page.get_by_role("link", name="Models").click()
    page.wait_for_url("**/dashboard/models/")
    count = page.locator("#result-count")
    assert re.search(r"\b414 models\b", count.inner_text())
    page.evaluate("window.kayNoReload = true")

    page.get_by_label("Tools").check()
    page.wait_for_function("!document.querySelector('#result-count').innerText.startsWith('414 ')")
    page.get_by_label("Max input $/M tokens").fill("1")
    page.get_by_label("Max input $/M tokens").dispatch_event("change")
    page.wait_for_url(re.compile(r"max_prompt_price=1"))
    page.wait_for_function(
        "document.querySelector('#result-count strong') && !document.querySelector('.htmx-request')"
    )
    shown = int(count.locator("strong").inner_text())
    assert 0 < shown < 414
    assert page.evaluate("window.kayNoReload") is True  # htmx swapped, no full reload
    for price in page.locator("td[data-label='Input $/M']").all_inner_texts():
        assert price == "Free" or float(price.strip("$").replace(",", "")) <= 1
    screenshot(page, "models-filtered")

    first = page.locator("a.catalog-name").first
    name = first.inner_text()
    first.click()
    page.wait_for_url(re.compile(r"/dashboard/models/.+/"))
    assert page.get_by_role("heading", level=1).inner_text() == name
    assert page.locator("table.catalog-endpoints tbody tr").count() >= 1
    assert "per million tokens" in page.content()
    page.get_by_role("button", name="Use for the assistant").click()
    page.get_by_text("The assistant uses this model for you.").wait_for()
    screenshot(page, "model-detail")


def test_keyboard_and_screen_reader_users_keep_their_place(page):
    call_command("sync_models", "--from-backup", "--no-progress", stdout=None)
    UserFactory(email="erin@example.com")
    login(page, "erin@example.com")
    page.goto("/dashboard/models/?provider=anthropic")

    # The result count is announced from a live region that stays in the page.
    status = page.locator("#result-status")
    assert status.get_attribute("role") == "status"
    page.get_by_label("Tools").check()
    page.wait_for_function(
        "document.querySelector('#result-status').innerText.includes('model')"
        " && !document.querySelector('.htmx-request')"
    )
    assert status.inner_text() == page.locator("#result-count").inner_text()

    # Allowing a model from the keyboard swaps the button and keeps the focus on it.
    button = page.locator("tr.catalog-row").first.get_by_role("button", name="Allow")
    button.focus()
    page.keyboard.press("Enter")
    page.locator("tr.catalog-row").first.locator("button[aria-pressed=true]").wait_for()
    focused = page.evaluate("document.activeElement.getAttribute('aria-pressed')")
    assert focused == "true"


# Characters after which an id may wrap: its slash (<wbr>) and the hyphens between words.
ID_BREAKS = """() => [...document.querySelectorAll('.catalog-id')].flatMap((el) => {
  const chars = [];
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (let i = 0; i < node.length; i++) {
      const range = document.createRange();
      range.setStart(node, i);
      range.setEnd(node, i + 1);
      chars.push([node.data[i], range.getBoundingClientRect().top]);
    }
  }
  const before = [];  // the character ending each line but the last
  for (let i = 1; i < chars.length; i++) {
    if (chars[i][1] > chars[i - 1][1] + 2) before.push(chars[i - 1][0]);
  }
  return before;
})"""
NO_SIDEWAYS_SCROLL = "document.documentElement.scrollWidth <= document.documentElement.clientWidth"


def _ids_wrap_only_between_words(page) -> None:
    assert set(page.evaluate(ID_BREAKS)) <= {"/", "-"}


def test_the_list_and_a_model_page_read_well_on_desktop_and_phone(page, screenshot):
    call_command("sync_models", "--from-backup", "--no-progress", stdout=None)
    UserFactory(email="fay@example.com")
    login(page, "fay@example.com")
    page.goto("/dashboard/models/")

    # Providers by name, each once: no "Meta" twice, no lowercase slugs.
    options = page.locator("#id_provider option").all_inner_texts()
    assert options.count("Meta") == 1
    assert not {"microsoft", "openrouter", "gryphe", "undi95", "anthracite-org"} & set(options)
    assert "Microsoft" in options and "OpenRouter" in options
    page.locator("#id_provider").select_option(label="Meta")
    page.wait_for_url(re.compile(r"provider=meta%2Cmeta-llama"))
    page.wait_for_function("!document.querySelector('.htmx-request')")
    assert int(page.locator("#result-count strong").inner_text()) == 11  # 8 + 3
    page.goto("/dashboard/models/")

    # Nothing is featured, so the default order says what it is and no "Featured" choice.
    assert page.locator("#id_sort option:checked").inner_text() == "Newest first"
    assert "Featured" not in page.locator("#id_sort").inner_text()
    # "Only models I allow" is a choice of its own, not a capability.
    assert page.locator(".catalog-checks").get_by_label("Only models I allow").count() == 0
    expect(page.get_by_label("Only models I allow")).to_be_visible()
    # Where the catalog came from, in words; no file name.
    synced = page.locator(".catalog-synced").inner_text()
    assert "shipped with Kay" in synced and ".json" not in page.content()
    _ids_wrap_only_between_words(page)
    assert page.evaluate(NO_SIDEWAYS_SCROLL)
    screenshot(page, "models-list")
    page.set_viewport_size({"width": 390, "height": 844})
    _ids_wrap_only_between_words(page)
    assert page.evaluate(NO_SIDEWAYS_SCROLL)
    page.set_viewport_size({"width": 1280, "height": 860})

    page.goto("/dashboard/models/openai/gpt-4o-mini/")
    # The description's Markdown is rendered, and its link leads to our own page.
    about = page.locator(".catalog-description")
    assert "[GPT-4 Omni]" not in about.inner_text()
    # The four price cards line up.
    tops = page.locator(".catalog-facts .card").evaluate_all(
        "cards => cards.map(card => Math.round(card.getBoundingClientRect().top))"
    )
    assert len(tops) == 4 and len(set(tops)) == 1
    # Every column of the providers table shows beside the sidebar at 1280 px.
    assert page.locator("table.catalog-endpoints").evaluate(
        "table => table.scrollWidth <= table.parentElement.clientWidth"
    )
    # The pills say what they mean, and the notes below explain them.
    row = page.locator("table.catalog-endpoints tbody tr").first
    expect(row.get_by_text("Data policy unknown")).to_be_visible()
    expect(row.get_by_text("From the model listing")).to_be_visible()
    notes = page.locator(".catalog-notes").inner_text()
    assert "have not reviewed this provider" in notes and "model’s own listing" in notes
    screenshot(page, "model-description")
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate(NO_SIDEWAYS_SCROLL)
    page.set_viewport_size({"width": 1280, "height": 860})

    about.get_by_role("link", name="GPT-4 Omni").click()
    page.wait_for_url("**/dashboard/models/openai/gpt-4o/")
    assert page.get_by_role("heading", level=1).inner_text() == "OpenAI: GPT-4o"


def test_a_model_with_many_providers_shows_every_column_at_1280(page, screenshot):
    model = ModelFactory(openrouter_id="google/gemma-3-27b-it", name="Google: Gemma 3 27B")
    for slug, name, status in [
        ("google-vertex-europe", "Google Vertex (Europe)", 0),
        ("deepinfra", "DeepInfra", 0),
        ("novita", "NovitaAI", 2),
        ("chutes", "Chutes", None),
    ]:
        ModelEndpointFactory(
            model=model,
            provider=ProviderFactory(slug=slug, name=name, datacenters=["US", "NL", "SG"]),
            quantization="fp8",
            uptime_last_30m=Decimal("99.51"),
            status=status,
        )
    UserFactory(email="gil@example.com")
    login(page, "gil@example.com")
    page.goto("/dashboard/models/google/gemma-3-27b-it/")
    assert page.locator("table.catalog-endpoints tbody tr").count() == 4
    assert page.locator("table.catalog-endpoints").evaluate(
        "table => table.scrollWidth <= table.parentElement.clientWidth"
    )
    expect(page.get_by_text("Degraded (2)")).to_be_visible()
    expect(page.get_by_text("Not reported")).to_be_visible()
    screenshot(page, "model-providers")
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate(NO_SIDEWAYS_SCROLL)
