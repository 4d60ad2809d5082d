"""The dashboard's sections: one list drives the sidebar and the placeholder pages.

A new app adds its ``Section`` here (and, if it has something to show on the overview,
a card in ``dashboard/selectors.py``); accounts and core never name feature apps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.urls import reverse

PLACEHOLDER = "dashboard:section"


@dataclass(frozen=True)
class Section:
    slug: str
    label: str
    icon: str
    url_name: str
    summary: str = ""
    # For a section whose app has not landed yet: what it will do, and what to do now.
    coming: str = ""
    next_label: str = ""
    next_url_name: str = ""

    @property
    def url(self) -> str:
        if self.url_name == PLACEHOLDER:
            return reverse(PLACEHOLDER, kwargs={"slug": self.slug})
        return reverse(self.url_name)

    @property
    def next_url(self) -> str:
        return reverse(self.next_url_name) if self.next_url_name else ""


SECTIONS = [
    Section("overview", "Overview", "◎", "dashboard:overview"),
    Section(
        "keys",
        "Keys",
        "⚷",
        "keys:list",
        "Provider API keys, encrypted at rest and shown only masked.",
    ),
    Section(
        "projects",
        "Projects",
        "▦",
        "keys:project_list",
        "Group keys by the product or team that uses them.",
    ),
    Section(
        "usage",
        "Usage",
        "∿",
        "usage:page",
        "Tokens and spend per provider, model, project and key.",
    ),
    Section(
        "models",
        "Models",
        "◇",
        "models_catalog:list",
        "The model catalog, synced from OpenRouter.",
    ),
    Section(
        "connections",
        "Connections",
        "⇄",
        "connections:list",
        "Jira, Confluence and Bitbucket, connected through OAuth.",
    ),
    Section(
        "assistant",
        "Assistant",
        "✦",
        "assistant:page",
        "Ask Kay to search and act in Jira.",
    ),
    Section(
        "billing",
        "Billing",
        "¤",
        "billing:index",
        "Credits for assistant use on the platform's key.",
    ),
    Section(
        "tokens",
        "API tokens",
        "⌘",
        "accounts:tokens",
        "Personal tokens for the kay CLI and editor extensions.",
    ),
]
SECTIONS_BY_SLUG = {section.slug: section for section in SECTIONS}


def nav_items(request: HttpRequest) -> list[dict[str, Any]]:
    """The sidebar's links, the current one marked; operators also get the admin."""
    items = [
        {
            "label": section.label,
            "icon": section.icon,
            "url": section.url,
            "active": request.path == section.url,
        }
        for section in SECTIONS
    ]
    if request.user.is_staff:
        items.append(
            {"label": "Admin", "icon": "⚙", "url": reverse("admin:index"), "active": False}
        )
    return items
