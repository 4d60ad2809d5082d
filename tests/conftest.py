"""Shared fixtures: alice (owner), bob (another account), charlie (no access).

alice owns what a test makes; bob has his own account and objects and must never reach
alice's; charlie has an account and nothing else (no objects, no role).
"""

import asyncio
import os
import sys

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import Client, override_settings
from rest_framework.test import APIClient

from assistant.services.executor import access_memo_forget
from assistant.services.mcp import mcp_status_memo_forget
from tests.accounts.factories import UserFactory
from usage.services.pricing import price_memo_forget

# Playwright's sync API runs an event loop in the test thread; Django's ORM is safe here.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True, scope="session")
def _fast_password_hashing():
    """Passwords hashed and checked at one PBKDF2 iteration (tests.helpers.hashers)."""
    with override_settings(PASSWORD_HASHERS=["tests.helpers.hashers.OneIterationPBKDF2"]):
        yield


@pytest.fixture(autouse=True)
def _no_request_threads_kept():
    """Kay's ASGI application keeps request threads (core.asgi_handler), each with its own
    database connection; SQLite's in-memory test database ignores close(), so a thread kept
    from one test served a later test's request with that test's connection (and hit
    pytest-django's database blocker). Each test starts with none kept."""
    yield
    asgi = sys.modules.get("config.asgi")
    if asgi is not None:
        asgi.application.threads.forget_idle()


@pytest.fixture(autouse=True)
def _clean_cache(request):
    """Throttle counters and cached pages never leak between tests.

    Without Redis the cache is a database table, so only tests with database access
    touch it (after their database fixture is ready). What processes keep in memory is
    forgotten for every test.
    """
    mcp_status_memo_forget()
    access_memo_forget()
    price_memo_forget()
    if not settings.REDIS_URL:
        wanted = [name for name in ("transactional_db", "db") if name in request.fixturenames]
        if wanted:
            request.getfixturevalue(wanted[0])
        elif not request.node.get_closest_marker("django_db"):
            yield
            return
    cache.clear()
    yield
    if settings.REDIS_URL:  # a database cache is rolled back with the test
        cache.clear()


@pytest.fixture
def one_rate_window(time_machine):
    """The clock moved to the start of this hour, so a test's requests fall in one window.

    core.ratelimit counts in fixed windows (minute, hour); a test that straddles a
    window's end would see its budget come back halfway through.
    """
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    time_machine.move_to(now.replace(minute=0, second=1, microsecond=0), tick=True)


@pytest.fixture
def alice(db):
    return UserFactory(email="alice@example.com", name="Alice Owner")


@pytest.fixture
def bob(db):
    return UserFactory(email="bob@example.com", name="Bob Other")


@pytest.fixture
def charlie(db):
    """The stranger: signed in, owning nothing (tests/core/test_isolation_walk.py)."""
    return UserFactory(email="charlie@example.com", name="Charlie Nobody")


@pytest.fixture
def staff(db):
    return UserFactory(
        email="ops@example.com", name="Olive Operator", is_staff=True, is_superuser=True
    )


@pytest.fixture
def api_client():
    return APIClient(enforce_csrf_checks=True)


def _api_as(user):
    """An API client authenticated as ``user``, with no token."""
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def alice_api(alice):
    return _api_as(alice)


@pytest.fixture
def alice_browser(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def bob_api(bob):
    return _api_as(bob)


@pytest.fixture
def bob_browser(bob):
    """bob's own browser, so a test can hold alice's (``client``) beside it."""
    browser = Client()
    browser.force_login(bob)
    return browser


# --- Browser tests (Playwright driving Debian's Chromium) ---------------------------------

CHROMIUM = os.environ.get("KAY_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "artifacts", "screenshots")
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="session")
def chromium():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture(autouse=True)
def _playwright_loop_set_aside(request):
    """Playwright's sync API (the session's ``chromium``) leaves its event loop marked as
    running in this thread for the rest of the session, and Django's test clients then
    refuse async views (async_to_sync under a running loop). A test that does not drive
    the browser sets that loop aside and gives it back afterwards."""
    loop = asyncio._get_running_loop()
    if loop is None or "chromium" in request.fixturenames:
        yield
        return
    asyncio._set_running_loop(None)
    try:
        yield
    finally:
        asyncio._set_running_loop(loop)


@pytest.fixture
def page(chromium, live_server):
    # Playwright's wait_for_function polls with eval(), which Kay's Content-Security-Policy
    # refuses; tests/core/test_csp.py drives a page that obeys the policy.
    context = chromium.new_context(base_url=live_server.url, viewport=DESKTOP, bypass_csp=True)
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def screenshot():
    """Save a full-page screenshot at desktop and phone widths: artifacts/screenshots/."""
    os.makedirs(SCREENSHOTS, exist_ok=True)

    def take(page, name: str) -> None:
        page.screenshot(path=os.path.join(SCREENSHOTS, f"{name}-desktop.png"), full_page=True)
        page.set_viewport_size(PHONE)
        page.screenshot(path=os.path.join(SCREENSHOTS, f"{name}-phone.png"), full_page=True)
        page.set_viewport_size(DESKTOP)

    return take
