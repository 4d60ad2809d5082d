"""The dashboard's sections: one list drives the sidebar and the section pages."""

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.urls import reverse


@dataclass(frozen=True)
class Section:
    slug: str
    label: str
    icon: str
    url_name: str
    summary: str = ""
    empty: str = ""
    staff_only: bool = False


SECTIONS = [
    Section("overview", "Overview", "◎", "dashboard:overview"),
    Section(
        "keys",
        "Keys",
        "⚷",
        "keys:list",
        "Provider API keys, encrypted at rest and shown only masked.",
        "You have not stored any provider keys. Keys you add are validated with the "
        "provider and encrypted before they are saved.",
    ),
    Section(
        "projects",
        "Projects",
        "▦",
        "keys:project_list",
        "Group keys by the product or team that uses them.",
        "No projects yet. A project holds the keys one application uses.",
    ),
    Section(
        "usage",
        "Usage",
        "∿",
        "dashboard:section",
        "Tokens and spend per provider, model and key.",
        "No usage recorded yet. Usage appears after a key with usage access is stored.",
    ),
    Section(
        "models",
        "Models",
        "◇",
        "models_catalog:list",
        "The model catalog, synced from OpenRouter.",
        "The catalog has not been loaded yet.",
    ),
    Section(
        "connections",
        "Connections",
        "⇄",
        "connections:list",
        "Jira, Confluence and Bitbucket, connected through OAuth.",
        "No services connected. Connect Jira from the CLI with `kay connect jira`.",
    ),
    Section(
        "assistant",
        "Assistant",
        "✦",
        "dashboard:section",
        "Ask Kay to search and act in Jira.",
        "No conversations yet.",
    ),
    Section(
        "billing",
        "Billing",
        "¤",
        "dashboard:section",
        "Credits for assistant use on the platform's key.",
        "No purchases yet.",
    ),
    Section(
        "tokens",
        "API tokens",
        "⌘",
        "connections:tokens",
        "Personal tokens for the `kay` CLI and editor extensions.",
        "No API tokens yet.",
    ),
]
SECTIONS_BY_SLUG = {section.slug: section for section in SECTIONS}


def section_url(section: Section) -> str:
    if section.url_name == "dashboard:section":
        return reverse(section.url_name, kwargs={"slug": section.slug})
    return reverse(section.url_name)


def nav_items(request: HttpRequest) -> list[dict[str, Any]]:
    items = []
    for section in SECTIONS:
        url = section_url(section)
        items.append(
            {
                "label": section.label,
                "icon": section.icon,
                "url": url,
                "active": request.path == url,
            }
        )
    if request.user.is_staff:
        items.append(
            {"label": "Admin", "icon": "⚙", "url": reverse("admin:index"), "active": False}
        )
    return items
