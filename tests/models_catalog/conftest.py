import pytest

from models_catalog.openrouter import OpenRouterClient
from tests.fakes.openrouter import FakeOpenRouter


@pytest.fixture
def fake_openrouter(settings):
    """The fake OpenRouter on 127.0.0.1, serving the newest recorded /models body."""
    with FakeOpenRouter("2026-08-19") as fake:
        settings.OPENROUTER_BASE_URL = fake.base_url
        settings.OPENROUTER_API_KEY = ""
        yield fake


@pytest.fixture
def openrouter(fake_openrouter):
    """A client on the fake that does not sleep between retries."""
    sleeps = []
    with OpenRouterClient(sleep=sleeps.append) as client:
        client.sleeps = sleeps
        yield client
