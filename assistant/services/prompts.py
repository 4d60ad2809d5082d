"""The system prompts (``assistant/prompts/*.md``), rendered for one user and tool list."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from django.template import Context, Engine

from accounts.models import User
from assistant.services.tools import Tool
from connections.selectors import accessible_resources_for

PROMPTS = Path(__file__).resolve().parents[1] / "prompts"


@cache
def _engine() -> Engine:
    # Plain text for a model, not HTML: nothing to escape.
    return Engine(dirs=[str(PROMPTS)], autoescape=False)


def system_prompt_render(
    *,
    user: User,
    tools: Sequence[Tool],
    interactive: bool,
    sites: list[dict[str, Any]] | None = None,
) -> str:
    """``system.md`` (one-shot) or ``interactive.md`` with the user's name, email and
    Atlassian sites (``sites`` when the caller read them, else read here), and each tool
    with whether it reads or changes data."""
    context: dict[str, Any] = {
        "name": user.name,
        "email": user.email,
        "sites": accessible_resources_for(user=user) if sites is None else sites,
        "tools": [
            {"name": t.name, "read_only": t.read_only, "summary": _first_line(t.description)}
            for t in tools
        ],
    }
    name = "interactive.md" if interactive else "system.md"
    return _engine().get_template(name).render(Context(context, autoescape=False)).strip() + "\n"


def _first_line(text: str) -> str:
    """A tool's description up to its first blank line: the rest is detail for the schema."""
    return " ".join((text or "").strip().split("\n\n")[0].split()) or "(no description)"
