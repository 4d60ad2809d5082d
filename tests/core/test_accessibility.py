"""axe-core's WCAG 2.2 AA rules find no serious or critical failure on any page, at desktop
and phone widths: signed out, signed in, and the operator's pages (admin, API docs)."""

import os
from datetime import timedelta

import httpx
import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import ApiToken, SecurityEvent
from assistant.models import AssistantRun, InteractiveSession
from keys.models import KeyAuditEvent
from tests.billing.factories import CheckoutSessionFactory
from tests.browser_helpers import login, serious_accessibility_failures
from tests.conftest import DESKTOP, PHONE, SCREENSHOTS
from tests.connections.factories import (
    AccessibleResourceFactory,
    ConnectionFactory,
    cli_tokens_for,
)
from tests.keys.factories import ApiKeyFactory, ProjectFactory
from tests.models_catalog.factories import offer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.backend_independent,
    pytest.mark.django_db(transaction=True),
]

WIDTHS = [pytest.param(DESKTOP, id="desktop"), pytest.param(PHONE, id="phone")]
# A conversation with a tool step and a Markdown answer, as the Assistant page shows one.
A11Y_CONVERSATION = [
    {"role": "user", "content": "List all tickets in project KAN"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "jira_search", "arguments": '{"jql": "project = KAN"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": '{"issues": [{"key": "KAN-1"}]}'},
    {"role": "assistant", "content": "One ticket: **KAN-1** ([open](https://example.com/KAN-1))."},
]

# (screenshot name, path, status the page answers with)
SIGNED_OUT = [
    ("login", "/accounts/login/", 200),
    ("signup", "/accounts/signup/", 200),
    ("password-reset", "/accounts/password/reset/", 200),
    ("password-reset-done", "/accounts/password/reset/done/", 200),
    ("login-code", "/accounts/login/code/", 200),
    ("confirm-email-sent", "/accounts/confirm-email/", 200),
    ("oauth-callback-error", "/connections/oauth/callback", 400),
    ("not-found-signed-out", "/no-such-page/", 404),
]


def _audit(page, pages: list[tuple[str, str, int]], width: dict[str, int]) -> list[str]:
    """Open each page at ``width``, keep a screenshot, and collect axe's serious failures."""
    page.set_viewport_size(width)
    os.makedirs(SCREENSHOTS, exist_ok=True)
    failures = []
    for name, path, status in pages:
        response = page.goto(path)
        # Not sent elsewhere (a sign-in page would pass in its place).
        assert response.status == status and page.url.endswith(path), f"{path}: {page.url}"
        if path == "/api/docs/":
            page.locator(".opblock").first.wait_for()  # the schema loaded and rendered
        shot = os.path.join(SCREENSHOTS, f"a11y-{name}-{width['width']}.png")
        page.screenshot(path=shot, full_page=True)
        failures += [f"{path}: {line}" for line in serious_accessibility_failures(page)]
    return failures


@pytest.fixture
def operator_pages(live_server, staff) -> list[tuple[str, str, int]]:
    """Every page kind an operator can open, each with something on it."""
    project = ProjectFactory(owner=staff, name="Website")
    key = ApiKeyFactory(owner=staff, project=project, name="prod-openai", is_default=True)
    ApiKeyFactory(owner=staff, provider="anthropic", name="claude")
    KeyAuditEvent.objects.create(
        owner=staff,
        api_key=key,
        key_label=key.name,
        actor=staff,
        action="created",
        source="dashboard",
        ip_address="203.0.113.9",
    )
    model = offer(name="Tool Model", supported_parameters=["tools", "max_tokens"]).model
    AccessibleResourceFactory(connection=ConnectionFactory(user=staff), name="awesome-jira")
    ApiToken.objects.create(
        user=staff,
        name="laptop",
        jti_hash="0" * 64,
        version=settings.API_TOKEN_VERSION,
        expires_at=timezone.now() + timedelta(days=30),
    )
    cli_tokens_for(staff)
    CheckoutSessionFactory(user=staff, stripe_session_id="cs_test_a11y")
    conversation = InteractiveSession.objects.create(
        owner=staff, title="Sprint review", messages=A11Y_CONVERSATION
    )
    run = AssistantRun.objects.create(
        owner=staff,
        session=conversation,
        mode="interactive",
        status="completed",
        prompt="List all tickets in project KAN",
        response="One ticket: **KAN-1**.",
        tool_calls=[
            {
                "id": "call_1",
                "name": "jira_search",
                "arguments": {"jql": "project = KAN"},
                "result": '{"issues": [{"key": "KAN-1"}]}',
                "durationMs": 40,
                "error": None,
            }
        ],
    )
    SecurityEvent.objects.create(
        user=staff,
        actor=staff,
        kind="api_token_created",
        ip_address="203.0.113.9",
        detail={"token_name": "laptop"},
    )
    device = httpx.post(f"{live_server.url}/api/auth/device", json={"client_name": "kay CLI"})
    user_code = device.json()["user_code"]
    return [
        ("overview", "/dashboard/", 200),
        ("keys", "/dashboard/keys/", 200),
        ("key-new", "/dashboard/keys/new/", 200),
        ("key-detail", f"/dashboard/keys/{key.pk}/", 200),
        ("projects", "/dashboard/projects/", 200),
        ("project-detail", f"/dashboard/projects/{project.pk}/", 200),
        ("onboarding", "/dashboard/onboarding/", 200),
        ("models", "/dashboard/models/", 200),
        ("model-detail", f"/dashboard/models/{model.openrouter_id}/", 200),
        ("connections", "/dashboard/connections/", 200),
        ("tokens", "/dashboard/tokens/", 200),
        ("device", "/dashboard/device", 200),
        ("device-confirm", f"/dashboard/device?user_code={user_code}", 200),
        ("usage", "/dashboard/usage/", 200),
        ("assistant", "/dashboard/assistant/", 200),
        ("assistant-session", f"/dashboard/assistant/sessions/{conversation.pk}/", 200),
        (
            "assistant-session-delete",
            f"/dashboard/assistant/sessions/{conversation.pk}/delete/",
            200,
        ),
        ("assistant-run", f"/dashboard/assistant/runs/{run.pk}/", 200),
        ("billing", "/dashboard/billing/", 200),
        ("billing-success", "/dashboard/billing/success/?session_id=cs_test_a11y", 200),
        ("security", "/accounts/security/", 200),
        ("account-settings", "/accounts/settings/", 200),
        ("account-email", "/accounts/email/", 200),
        ("password-change", "/accounts/password/change/", 200),
        ("api-docs", "/api/docs/", 200),
        ("admin", "/admin/", 200),
        ("admin-keys", "/admin/keys/apikey/", 200),
        ("admin-key-change", f"/admin/keys/apikey/{key.pk}/change/", 200),
        ("not-found", "/no-such-page/", 404),
    ]


@pytest.mark.parametrize("width", WIDTHS)
def test_signed_out_pages_have_no_serious_accessibility_failure(page, width):
    failures = _audit(page, SIGNED_OUT, width)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("width", WIDTHS)
def test_signed_in_and_operator_pages_have_no_serious_accessibility_failure(
    page, staff, operator_pages, width
):
    login(page, staff.email)
    failures = _audit(page, operator_pages, width)
    assert not failures, "\n".join(failures)


def test_the_phone_menu_button_stays_readable_when_hovered_and_opened(page, alice):
    """A tap leaves a phone's pointer on the button: its :hover look must keep contrast."""
    login(page, alice.email)
    page.set_viewport_size(PHONE)
    page.goto("/dashboard/")
    menu = page.get_by_role("button", name="Menu")
    menu.hover()
    assert serious_accessibility_failures(page) == []
    menu.click()
    assert menu.get_attribute("aria-expanded") == "true"
    expect(page.get_by_role("link", name="Account settings")).to_be_visible()
    assert serious_accessibility_failures(page) == []


@pytest.mark.parametrize("width", WIDTHS)
def test_the_api_docs_stay_accessible_while_trying_an_operation(page, width):
    """Swagger UI draws more as it is used: an operation tried out, then the Authorize dialog."""
    page.set_viewport_size(width)
    page.goto("/api/docs/")
    page.locator("#operations-api-api_projects_create .opblock-summary-control").click()
    page.get_by_role("button", name="Try it out").click()
    page.get_by_role("textbox", name="Request body").wait_for()
    page.get_by_role("button", name="Execute").click()
    page.locator(".live-responses-table").wait_for()
    page.locator(".models .model-container").first.click()  # a schema opened
    assert serious_accessibility_failures(page) == []

    page.get_by_role("button", name="Authorize").first.click()
    page.get_by_role("dialog", name="Available authorizations").wait_for()
    assert serious_accessibility_failures(page) == []
    page.get_by_role("button", name="Close dialog").click()
    assert page.get_by_role("dialog").count() == 0


HIDDEN_CELLS = """() => [...document.querySelectorAll(".table-wrap td")]
  .filter((td) => td.getBoundingClientRect().right > window.innerWidth + 0.5
    || (td.cellIndex > 0 && !td.classList.contains("row-actions") && td.colSpan === 1
        && !td.dataset.label))
  .map((td) => td.textContent.trim())"""


@pytest.mark.parametrize("width", WIDTHS)
def test_tables_show_every_column_without_sideways_scrolling(page, staff, operator_pages, width):
    """On a phone each row is a card naming every column; nothing is hidden off-screen."""
    login(page, staff.email)
    page.set_viewport_size(width)
    for name, path, _ in operator_pages:
        if name not in ("keys", "key-detail", "projects", "project-detail", "tokens", "billing"):
            continue
        page.goto(path)
        assert page.locator(".table-wrap td").count() > 0, path
        assert page.evaluate(HIDDEN_CELLS) == [], path
        assert page.evaluate("document.documentElement.scrollWidth") <= width["width"], path
