import pytest
from django.conf import settings as django_settings

from tests.fakes.providers import FakeProviders

VALID = {
    "openai": "sk-proj-ValidOpenAIKey0000000000000000000000Wx9z",
    "openai_admin": "sk-admin-ValidAdminKey000000000000000000000Ab12",
    "anthropic": "sk-ant-api03-ValidAnthropicKey000000000000000000000",
    "gemini": "AIzaSyValidGeminiKey" + "0" * 19,
    "openrouter": "sk-or-v1-" + "a1" * 32,
    "mistral": "ValidMistralKey0000000000000000A",
    "groq": "gsk_ValidGroqKey000000000000000000000000000000000000",
    "exa": "1a2b3c4d-0000-4000-8000-123456789abc",
    "openai_compatible": "local-llm-token-1234567890",
}


@pytest.fixture
def fake_providers(settings):
    fake = FakeProviders(set(VALID.values())).start()
    fake.configure(settings)
    yield fake
    fake.stop()


@pytest.fixture
def unreachable_providers(settings):
    """Every provider base URL points at a closed port: checks cannot connect."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    for name in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "OPENROUTER_BASE_URL"):
        setattr(settings, name, f"http://127.0.0.1:{port}")
    settings.KEYS_VALIDATION_TIMEOUT = 1.0
    return port


@pytest.fixture
def locmem_cache(settings):
    """A cache that costs no database queries (as Redis in production)."""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "k"}
    }
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def server_auth():
    return {"HTTP_AUTHORIZATION": f"Bearer {django_settings.SERVER_SECRET_KEY}"}
