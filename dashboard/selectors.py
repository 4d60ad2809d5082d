"""The overview's checklist, read from each feature app through its selectors."""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import reverse

from accounts.models import User
from accounts.selectors import api_tokens_for, cli_sessions_for
from connections.selectors import service_statuses_for
from keys.selectors import api_key_list, project_list


@dataclass(frozen=True)
class Step:
    title: str
    text: str
    url: str
    action: str
    done: bool


def onboarding_steps(*, user: User) -> list[Step]:
    """Each step is done when the thing it asks for exists, however it was made."""
    jira = next(s for s in service_statuses_for(user=user) if s.spec.name == "jira")
    return [
        Step(
            "Create a project",
            "A project groups the keys one application or team uses.",
            reverse("keys:project_list"),
            "Go to projects",
            project_list(owner=user).exists(),
        ),
        Step(
            "Add a provider key",
            "Store your OpenAI, Anthropic, OpenRouter or other keys in the encrypted vault.",
            reverse("keys:onboarding"),
            "Add a key",
            api_key_list(owner=user).exists(),
        ),
        Step(
            "Connect Jira",
            "Let the assistant search and act in Jira with your own Atlassian account.",
            reverse("connections:list"),
            "Go to connections",
            jira.state == "connected",
        ),
        Step(
            "Sign in the CLI or create an API token",
            "Use the kay CLI and editor extensions: run “kay connect jira” in a terminal, or "
            "create a personal token.",
            reverse("accounts:tokens"),
            "Go to API tokens",
            api_tokens_for(user=user).exists() or cli_sessions_for(user=user).exists(),
        ),
    ]
