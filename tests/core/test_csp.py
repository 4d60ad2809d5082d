"""Content-Security-Policy: every page forbids inline and foreign scripts and styles, and the
pages (Swagger UI and the admin included) still work under it."""

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser_helpers import login
from tests.keys.factories import ApiKeyFactory, ProjectFactory
from tests.models_catalog.factories import offer

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_DIRS = [ROOT / "templates", ROOT / "models_catalog" / "templates"]


def _policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    directives = (part.split() for part in header.split(";") if part.strip())
    return {name: values for name, *values in directives}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "/accounts/login/",
        "/dashboard/",
        "/dashboard/keys/",
        "/dashboard/models/",
        "/dashboard/assistant/",
        "/api/docs/",
    ],
)
def test_pages_send_a_policy_that_allows_no_inline_script_or_style(client, alice, url):
    if url != "/accounts/login/":
        client.force_login(alice)
    response = client.get(url)
    assert response.status_code == 200
    policy = _policy(response)
    assert policy["default-src"] == ["'self'"]
    assert "'unsafe-inline'" not in policy["script-src"]
    assert "'unsafe-eval'" not in policy["script-src"]
    assert policy["style-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]


@pytest.mark.django_db
def test_form_action_allows_the_oauth_servers_the_connect_forms_redirect_to(
    alice_browser, settings
):
    settings.ATLASSIAN_AUTH_URL = "https://auth.example-atlassian.test/oauth"
    settings.BITBUCKET_AUTH_URL = "http://127.0.0.1:8123/site/oauth2"
    policy = _policy(alice_browser.get("/dashboard/connections/"))
    assert sorted(policy["form-action"]) == [
        "'self'",
        "http://127.0.0.1:8123",
        "https://auth.example-atlassian.test",
    ]


@pytest.mark.django_db
def test_the_swagger_ui_set_up_script_carries_the_nonce_of_its_response(client):
    first, second = client.get("/api/docs/"), client.get("/api/docs/")
    nonce = re.search(r"'nonce-([^']+)'", first["Content-Security-Policy"]).group(1)
    html = first.content.decode()
    assert f'<script nonce="{nonce}">' in html
    assert "SwaggerUIBundle(" in html
    assert nonce not in second["Content-Security-Policy"]  # a new nonce per response


@pytest.mark.django_db
def test_pages_without_inline_scripts_send_no_nonce(alice_browser):
    assert "nonce" not in alice_browser.get("/dashboard/")["Content-Security-Policy"]


INLINE = [
    (re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*\bnonce=)(?![^>]*application/json)[^>]*>"), "a"),
    (re.compile(r"<style\b"), "a <style> block"),
    (re.compile(r"\sstyle="), "a style attribute"),
    (re.compile(r"\son[a-z]+=", re.IGNORECASE), "an on… event handler"),
    (re.compile(r"hx-on", re.IGNORECASE), "an hx-on handler (needs eval)"),
    (re.compile(r"javascript:", re.IGNORECASE), "a javascript: URL"),
]


def test_no_template_has_inline_script_or_style():
    """The policy would block them: scripts and styles live in static/ (or carry the nonce)."""
    found = []
    for directory in TEMPLATE_DIRS:
        for path in directory.rglob("*.html"):
            text = path.read_text()
            for pattern, what in INLINE:
                if pattern.search(text):
                    found.append(f"{path.relative_to(ROOT)}: {what}")
    assert found == []


# --- In Chromium: no page reports a violation ----------------------------------------------

LISTEN = """
document.addEventListener("securitypolicyviolation", (e) => {
  const where = `${e.sourceFile}:${e.lineNumber}`;
  window.kayCspViolation(`${e.violatedDirective} ${e.blockedURI || "inline"} ${where}`);
});
"""


def _console_error(seen: list[str], message) -> None:
    # A missing /favicon.ico on admin pages is a 404, not a broken page.
    if message.type == "error" and not message.text.startswith("Failed to load resource"):
        seen.append(f"console: {message.text}")


@pytest.fixture
def strict_page(chromium, live_server):
    """A page that obeys the policy (the shared ``page`` fixture bypasses it)."""
    context = chromium.new_context(base_url=live_server.url)
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


@pytest.fixture
def violations(strict_page):
    """Every CSP violation, console error and uncaught script error, across navigations."""
    page = strict_page
    seen: list[str] = []
    page.expose_function("kayCspViolation", lambda text: seen.append(text))
    page.add_init_script(LISTEN)
    page.on("console", lambda message: _console_error(seen, message))
    page.on("pageerror", lambda error: seen.append(f"script error: {error}"))
    return seen


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_pages_work_in_chromium_with_no_policy_violation(strict_page, violations, staff):
    page = strict_page
    offer(name="Tool Model", supported_parameters=["tools", "max_tokens"])
    project = ProjectFactory(owner=staff, name="Website")
    key = ApiKeyFactory(owner=staff, project=project, name="prod-openai")
    login(page, staff.email)  # the sign-in page and the overview

    page.goto("/dashboard/keys/")
    page.get_by_role("link", name="prod-openai").first.wait_for()
    page.goto(f"/dashboard/keys/{key.pk}/")
    page.goto("/dashboard/keys/new/")
    page.get_by_label("Provider", exact=True).select_option("anthropic")  # an htmx swap
    page.wait_for_selector("text=Starts with sk-ant-")
    page.goto("/dashboard/projects/")

    page.goto("/dashboard/models/")
    page.get_by_label("Tools").check()  # an htmx request with its indicator
    page.wait_for_url(re.compile(r"tools"))
    expect(page.locator(".htmx-request")).to_have_count(0)
    page.goto("/dashboard/connections/")
    page.goto("/dashboard/tokens/")

    page.goto("/api/docs/")
    page.locator(".swagger-ui .info .title").get_by_text("Kay API").wait_for()
    page.locator(".opblock").first.wait_for()  # the schema loaded and rendered

    page.goto("/admin/")
    page.get_by_role("link", name="Key audit events").first.click()
    page.wait_for_url("**/admin/keys/keyauditevent/")
    page.goto("/admin/models_catalog/syncrun/")
    page.get_by_role("button", name="Sync from OpenRouter now").wait_for()
    page.goto(f"/admin/keys/apikey/{key.pk}/change/")
    page.locator("#content-main form").wait_for()

    assert violations == []
