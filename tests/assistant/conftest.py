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
