"""The Markdown system prompts, rendered for one user and their tools (seed 003 "Prompts")."""

from __future__ import annotations

import pytest

from assistant.services.prompts import system_prompt_render
from tests.assistant.chat import LocalExecutor
from tests.connections.factories import AccessibleResourceFactory, ConnectionFactory

pytestmark = pytest.mark.django_db


def test_it_names_the_user_their_sites_and_each_tool(alice):
    connection = ConnectionFactory(user=alice)
    AccessibleResourceFactory(
        connection=connection, name="KYG Trade", url="https://kyg.atlassian.net"
    )
    prompt = system_prompt_render(user=alice, tools=LocalExecutor().tools(), interactive=False)
    assert "You are Kay, the AI assistant from KYG Trade" in prompt
    assert "- Name: Alice Owner" in prompt and "- Email: alice@example.com" in prompt
    assert "KYG Trade (https://kyg.atlassian.net) — access: read:jira-work" in prompt
    # One line per tool: its first paragraph, and whether it reads or writes.
    assert "- `jira_search` (reads): Search Jira issues using JQL (Jira Query Language)." in prompt
    assert "- `jira_create_issue` (changes data): " in prompt
    assert "Args:" not in prompt
    assert "## When to use tools" in prompt


def test_bobs_sites_are_not_in_alices_prompt(alice, bob):
    AccessibleResourceFactory(connection=ConnectionFactory(user=bob), name="Bob's site")
    prompt = system_prompt_render(user=alice, tools=[], interactive=False)
    assert "Bob's site" not in prompt
    assert "connect Jira first (`kay connect jira`)" in prompt


def test_without_tools_it_says_so(alice):
    prompt = system_prompt_render(user=alice, tools=[], interactive=True)
    assert "No tools are available" in prompt and "## When to use tools" not in prompt
    assert "ongoing conversation" in prompt


def test_nothing_is_html_escaped(alice):
    alice.name = "O'Brien & <Co>"
    prompt = system_prompt_render(user=alice, tools=[], interactive=False)
    assert "O'Brien & <Co>" in prompt
