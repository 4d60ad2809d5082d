"""Fixtures for the assistant's tests: the fake chat server and a local tool layer
(``chat.py``); the MCP fixtures live in ``mcp/conftest.py``."""

import pytest

from config.celery import app as celery_app
from tests.assistant.chat import chat, executor  # noqa: F401


@pytest.fixture(autouse=True)
def _runs_in_this_process(request):
    """/ask's runs execute in this process (Celery eager), against the test database;
    tests marked ``worker`` run them in a real worker instead."""
    if request.node.get_closest_marker("worker"):
        yield
        return
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture
def own_host(alice, chat, executor, monkeypatch, settings):  # noqa: F811 (fixtures by name)
    """Alice's own OpenAI key with a base URL she gave (the fake, on 127.0.0.1), runs
    executed in-process with ``executor``'s tools and no Redis."""
    from assistant.services import runs
    from tests.keys.factories import ApiKeyFactory

    monkeypatch.setattr(runs, "tool_executor", lambda user: executor)
    settings.REDIS_URL = ""
    settings.KEYS_ALLOW_PRIVATE_BASE_URLS = True
    return ApiKeyFactory(owner=alice, provider="openai", base_url=chat.base_url)
