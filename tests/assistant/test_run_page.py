"""A run's page (/dashboard/assistant/runs/<id>/): what was asked, answered and called,
the model, the key that paid, tokens, cost and timings, for its owner only; and the
Billing ledger's usage charges linking to it (the call id the assistant writes is the one
billing reads)."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from assistant.models import AssistantRun
from assistant.services.ask import ask_run
from billing.models import CreditLedgerEntry
from tests.assistant.chat import LocalResult
from tests.browser_helpers import login
from tests.conftest import PHONE
from tests.fakes.openai_chat import text, tool_calls
from tests.keys.factories import ApiKeyFactory
from tests.models_catalog.factories import ModelFactory

pytestmark = pytest.mark.django_db

SEARCH = {"jql": "project = KAN"}
ISSUES = json.dumps({"issues": [{"key": "KAN-1"}, {"key": "KAN-2"}]})


def page(run_id: int) -> str:
    return f"/dashboard/assistant/runs/{run_id}/"


@pytest.fixture
def priced(settings):
    """gpt-4o-mini in the catalog, so its calls cost something."""
    settings.BILLING_MARGIN_PERCENT = "0"
    return ModelFactory(
        openrouter_id="openai/gpt-4o-mini",
        prompt_price=Decimal("0.00000015"),
        completion_price=Decimal("0.0000006"),
    )


@pytest.fixture
def answered(alice, chat, executor, priced) -> AssistantRun:
    """alice asked on Kay's key: one search, then an answer in Markdown."""
    executor.answers["jira_search"] = lambda arguments: LocalResult(ISSUES, duration_ms=42)
    chat.script(
        tool_calls(("jira_search", SEARCH), input_tokens=1000, output_tokens=100),
        text("Two tickets: **KAN-1** and KAN-2.", input_tokens=2000, output_tokens=50),
    )
    return ask_run(user=alice, prompt="List all tickets in project KAN", executor=executor).run


def test_the_owner_sees_what_was_asked_answered_called_and_spent(alice_browser, answered):
    run = AssistantRun.objects.get(pk=answered.pk)
    response = alice_browser.get(page(run.pk))
    assert response.status_code == 200
    html = response.content.decode()
    assert "List all tickets in project KAN" in html
    assert "Two tickets: <strong>KAN-1</strong> and KAN-2." in html
    assert "One-shot" in html and 'data-testid="run-status">Completed<' in html
    assert f"<code>{run.model}</code>" in html
    assert "Kay's key — charged to your credits" in html
    assert "3000 in · 150 out" in html and "(2 model calls)" in html
    # The cost the ledger charged, in dollars, exact.
    charged = -sum(
        CreditLedgerEntry.objects.filter(kind="usage").values_list("amount_micros", flat=True)
    )
    assert run.cost_micros == charged > 0
    assert f'data-testid="run-cost">${Decimal(charged).scaleb(-6).normalize():f}' in html
    assert re.search(r"<dt>Time</dt><dd>\d+\.\d s", html)
    assert 'href="/dashboard/billing/?month=' in html
    assert 'href="/dashboard/assistant/">Ask again</a>' in html


def test_each_tool_call_is_an_expandable_step_with_arguments_result_and_duration(
    alice_browser, answered
):
    html = alice_browser.get(page(answered.pk)).content.decode()
    step = re.search(r'<details class="step">.*?</details>', html, re.S)
    assert step is not None
    assert '<span class="step-name">jira_search</span>' in step[0]
    assert '<span class="step-meta">42 ms</span>' in step[0]
    assert "&quot;jql&quot;: &quot;project = KAN&quot;" in step[0]
    assert "KAN-2" in step[0]
    assert "1 tool call:" in html


def test_a_failed_tool_call_shows_as_a_failed_step(alice, alice_browser, chat, executor):
    executor.answers["jira_search"] = lambda arguments: LocalResult("JQL is invalid", True, 7)
    chat.script(tool_calls(("jira_search", SEARCH)), text("The search failed."))
    run = ask_run(user=alice, prompt="List KAN", executor=executor).run
    html = alice_browser.get(page(run.pk)).content.decode()
    assert '<details class="step failed">' in html
    assert '<span class="step-meta">failed · 7 ms</span>' in html
    assert '<pre class="step-error">JQL is invalid</pre>' in html


def test_html_in_the_models_answer_and_the_tools_results_is_neutralised(alice, alice_browser):
    run = AssistantRun.objects.create(
        owner=alice,
        mode="one_shot",
        status="completed",
        prompt="<b>bold</b> question",
        response="<script>alert(1)</script> <img src=x onerror=alert(1)> [x](javascript:alert(1))",
        tool_calls=[
            {
                "id": "call_1",
                "name": "jira_search",
                "arguments": {"jql": "<svg onload=alert(1)>"},
                "result": "<img src=x onerror=alert(2)>",
                "durationMs": 3,
                "error": None,
            }
        ],
    )
    html = alice_browser.get(page(run.pk)).content.decode()
    assert "<script>alert(1)" not in html and "&lt;script&gt;" in html
    assert "<img src=x" not in html and "<svg" not in html and "<b>bold</b>" not in html
    assert 'href="javascript' not in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html


def test_a_run_on_the_users_own_key_names_that_key_and_never_its_secret(
    alice, alice_browser, chat, executor
):
    key = ApiKeyFactory(owner=alice, provider="openai", name="team-openai")
    chat.script(text("ok", input_tokens=10, output_tokens=2))
    run = ask_run(user=alice, prompt="hi", executor=executor).run
    html = alice_browser.get(page(run.pk)).content.decode()
    assert f'Your key <a href="/dashboard/keys/{key.pk}/">team-openai</a>' in html
    assert "charged to your credits" not in html and "billed by your provider" in html
    assert key.secret not in html


def test_a_run_whose_key_was_deleted_since_is_not_said_to_be_paid_by_credits(
    alice, alice_browser, chat, executor
):
    key = ApiKeyFactory(owner=alice, provider="openai", name="old-openai")
    chat.script(text("ok", input_tokens=10, output_tokens=2))
    run = ask_run(user=alice, prompt="hi", executor=executor).run
    key.delete()
    html = alice_browser.get(page(run.pk)).content.decode()
    assert "One of your keys, since deleted" in html
    assert "charged to your credits" not in html


def test_a_conversations_run_links_back_to_it(alice, alice_browser, chat, executor):
    chat.script(text("Hello Alice."))
    outcome = ask_run(user=alice, prompt="hi", interactive=True, executor=executor)
    html = alice_browser.get(page(outcome.run.pk)).content.decode()
    conversation = f"/dashboard/assistant/sessions/{outcome.session_id}/"
    assert f'href="{conversation}">Back to the conversation</a>' in html
    assert "Conversation ·" in html


def test_a_failed_run_says_why(alice, alice_browser):
    now = timezone.now()
    run = AssistantRun.objects.create(
        owner=alice,
        mode="confirm",
        confirm=True,
        status="failed",
        prompt="Create a ticket",
        error_code="mcp_unavailable",
        error_message="Kay could not reach the Jira tools: try again in a minute.",
    )
    # Queued at ``now``: a worker started it 1.5 s later, and it failed 2 s after that.
    AssistantRun.objects.filter(pk=run.pk).update(
        created_at=now,
        started_at=now + timedelta(seconds=1.5),
        finished_at=now + timedelta(seconds=3.5),
    )
    html = alice_browser.get(page(run.pk)).content.decode()
    assert 'data-testid="run-status">Failed<' in html and "Ask first" in html
    assert "Kay could not reach the Jira tools: try again in a minute." in html
    assert '3.5 s <span class="muted">(1.5 s waiting for a worker)</span>' in html


def test_a_run_still_waiting_for_a_worker_says_so(alice, alice_browser):
    run = AssistantRun.objects.create(owner=alice, mode="one_shot", status="queued", prompt="hi")
    html = alice_browser.get(page(run.pk)).content.decode()
    assert "Waiting for a worker to pick it up." in html and "not started" in html


def test_bob_gets_a_404_for_alices_run(bob_browser, answered):
    assert bob_browser.get(page(answered.pk)).status_code == 404


def test_an_unknown_run_is_a_404_and_a_stranger_must_sign_in(alice_browser, client, answered):
    assert alice_browser.get(page(answered.pk + 1000)).status_code == 404
    client.logout()
    response = client.get(page(answered.pk))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_page_reads_the_run_in_a_fixed_number_of_queries(
    alice_browser, answered, django_assert_max_num_queries
):
    # The session, the user, the run with its key and conversation, whether credits paid;
    # the dashboard's two banners (low balance, budgets). The tool calls are in the run.
    with django_assert_max_num_queries(6):
        alice_browser.get(page(answered.pk))


def test_the_ledgers_usage_charges_link_to_the_run_that_made_them(alice_browser, answered):
    """The call id the assistant meters with is the one billing reads back."""
    ledger = alice_browser.get("/dashboard/billing/").content.decode()
    links = re.findall(r'<a class="ledger-run" href="([^"]+)">', ledger)
    assert links == [page(answered.pk)] * 2  # one per model round, newest first
    html = alice_browser.get(links[0]).content.decode()
    assert "List all tickets in project KAN" in html and "Two tickets" in html


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_in_the_browser_the_ledger_leads_to_the_run_and_its_steps_open(
    page, alice, answered, screenshot
):
    login(page, alice.email)
    page.goto("/dashboard/billing/")
    page.locator("a.ledger-run").first.click()
    page.get_by_role("heading", name=f"Assistant run {answered.pk}").wait_for()
    assert page.locator(".answer strong").inner_text() == "KAN-1"
    step = page.locator("details.step")
    expect(step.locator("pre").first).to_be_hidden()
    step.locator("summary").click()
    assert "project = KAN" in step.locator("pre").first.inner_text()
    screenshot(page, "assistant-run")
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
