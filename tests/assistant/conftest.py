"""Fixtures for the assistant's tests: the fake chat server and a local tool layer
(``chat.py``); the MCP fixtures live in ``mcp/conftest.py``."""

from tests.assistant.chat import chat, executor  # noqa: F401
