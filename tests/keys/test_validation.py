"""Each provider's key check, through its real client (openai SDK or httpx), against fake
provider servers on 127.0.0.1: valid, rejected (401/403), server error (500), timeout."""

import pytest

from core.errors import ApplicationError
from keys.providers import PROVIDERS
from keys.providers.base import check_base_url
from tests.keys.conftest import VALID

CHECKED = [
    ("openai", "openai"),
    ("openai", "openai_admin"),
    ("anthropic", "anthropic"),
    ("gemini", "gemini"),
    ("openrouter", "openrouter"),
    ("mistral", "mistral"),
    ("groq", "groq"),
    ("exa", "exa"),
    ("openai_compatible", "openai_compatible"),
]


def run_check(fake, slug, secret):
    provider = PROVIDERS[slug]
    base = provider.base_url(fake.base_url + "/v1" if provider.needs_base_url else "")
    return provider.check(secret, base)


@pytest.mark.parametrize(("slug", "which"), CHECKED)
def test_a_valid_key_is_valid(fake_providers, slug, which):
    result = run_check(fake_providers, slug, VALID[which])
    assert result.status == "valid", result.detail
    assert fake_providers.requests, "the check must reach the provider"


@pytest.mark.parametrize(("slug", "which"), CHECKED)
def test_a_rejected_key_is_invalid(fake_providers, slug, which):
    wrong = VALID[which][:-4] + "XXXX"
    result = run_check(fake_providers, slug, wrong)
    assert result.status == "invalid"
    assert wrong not in result.detail


@pytest.mark.parametrize(("slug", "which"), CHECKED)
def test_a_server_error_leaves_the_key_unverified(fake_providers, slug, which):
    fake_providers.fail_status = 500
    result = run_check(fake_providers, slug, VALID[which])
    assert result.status == "unverified"
    assert "500" in result.detail


@pytest.mark.parametrize(
    ("slug", "which"),
    [
        ("openai", "openai"),
        ("anthropic", "anthropic"),
        ("openrouter", "openrouter"),
        ("gemini", "gemini"),
    ],
)
def test_a_timeout_leaves_the_key_unverified(fake_providers, settings, slug, which):
    settings.KEYS_VALIDATION_TIMEOUT = 0.3
    fake_providers.delay = 1.0
    result = run_check(fake_providers, slug, VALID[which])
    assert result.status == "unverified"
    assert "timed out" in result.detail


def test_an_unreachable_provider_leaves_the_key_unverified(unreachable_providers):
    result = PROVIDERS["openrouter"].check(VALID["openrouter"], PROVIDERS["openrouter"].base_url())
    assert result.status == "unverified"


def test_checks_send_the_providers_real_auth_headers(fake_providers):
    run_check(fake_providers, "anthropic", VALID["anthropic"])
    run_check(fake_providers, "gemini", VALID["gemini"])
    run_check(fake_providers, "openrouter", VALID["openrouter"])
    by_path = {r["path"]: r["headers"] for r in fake_providers.requests}
    assert by_path["/v1/models"]["x-api-key"] == VALID["anthropic"]
    assert by_path["/v1/models"]["anthropic-version"] == "2023-06-01"
    assert by_path["/v1beta/models"]["x-goog-api-key"] == VALID["gemini"]
    assert by_path["/api/v1/key"]["authorization"] == f"Bearer {VALID['openrouter']}"


def test_a_project_key_cannot_pass_as_admin_and_admin_keys_use_the_admin_api(fake_providers):
    run_check(fake_providers, "openai", VALID["openai_admin"])
    assert fake_providers.requests[-1]["path"] == "/v1/organization/projects"


def test_copilotkit_is_never_called_and_stays_unverified(fake_providers):
    result = run_check(fake_providers, "copilotkit", "ck_pub_0123456789abcdef0123")
    assert result.status == "unverified"
    assert fake_providers.requests == []


@pytest.mark.parametrize(
    ("slug", "good", "bad"),
    [
        ("openai", VALID["openai"], "pk-live-123"),
        ("anthropic", VALID["anthropic"], VALID["openai"]),
        ("gemini", VALID["gemini"], "AIza-short"),
        ("openrouter", VALID["openrouter"], VALID["openai"]),
        ("groq", VALID["groq"], VALID["openai"]),
        ("exa", VALID["exa"], "not-a-uuid"),
    ],
)
def test_format_hints(slug, good, bad):
    assert PROVIDERS[slug].matches_format(good)
    assert not PROVIDERS[slug].matches_format(bad)


def test_private_base_urls_are_refused_in_production(settings):
    settings.KEYS_ALLOW_PRIVATE_BASE_URLS = False
    for url in (
        "http://127.0.0.1:8000/v1",
        "https://127.0.0.1/v1",
        "https://localhost/v1",
        "https://10.0.0.5/v1",
        "ftp://example.com",
    ):
        with pytest.raises(ApplicationError):
            check_base_url(url)


def test_private_base_urls_are_allowed_when_configured(settings):
    settings.KEYS_ALLOW_PRIVATE_BASE_URLS = True
    assert check_base_url("http://127.0.0.1:8000/v1/") == "http://127.0.0.1:8000/v1"


def test_a_check_does_not_follow_redirects(fake_providers):
    """A public base URL that redirects into the private network must not carry the
    check (and the key) there: the SDK follows redirects unless told not to."""
    fake_providers.redirect_to = fake_providers.base_url + "/v1/models"
    result = PROVIDERS["openai_compatible"].check(
        VALID["openai_compatible"], fake_providers.base_url + "/elsewhere"
    )
    assert result.status == "unverified"
    assert [r["path"] for r in fake_providers.requests] == ["/elsewhere/models"]


@pytest.mark.parametrize("allow_private", [True, False])
def test_base_urls_with_credentials_are_refused(settings, allow_private):
    """The base URL is stored and shown in clear (key page, admin): it must hold no secret."""
    settings.KEYS_ALLOW_PRIVATE_BASE_URLS = allow_private
    for url in ("https://user:hunter2@llm.example.com/v1", "http://token@127.0.0.1:8000/v1"):
        with pytest.raises(ApplicationError) as caught:
            check_base_url(url)
        assert "hunter2" not in caught.value.message
