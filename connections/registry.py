"""The services a user can connect, in code (seed 003: jira, confluence, bitbucket).

Jira and Confluence share Atlassian's OAuth 2.0 (3LO) app, each with its own scopes plus
``offline_access`` (refresh tokens) and ``read:me`` (the profile). Bitbucket Cloud has its
own OAuth consumer; its scopes are set on the consumer, not in the request.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import ApplicationError


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    label: str
    provider: str  # a module in connections.providers
    scopes: tuple[str, ...]
    description: str
    pkce: bool  # send an S256 code challenge and the verifier


_ATLASSIAN_COMMON = ("offline_access", "read:me")

SERVICES: dict[str, ServiceSpec] = {
    spec.name: spec
    for spec in (
        ServiceSpec(
            "jira",
            "Jira",
            "atlassian",
            ("read:jira-work", "write:jira-work", "read:jira-user", *_ATLASSIAN_COMMON),
            "Search, create and update issues with the assistant.",
            pkce=True,
        ),
        ServiceSpec(
            "confluence",
            "Confluence",
            "atlassian",
            (
                "read:confluence-content.all",
                "write:confluence-content",
                "read:confluence-space.summary",
                "search:confluence",
                *_ATLASSIAN_COMMON,
            ),
            "Read and write pages and spaces.",
            pkce=True,
        ),
        ServiceSpec(
            "bitbucket",
            "Bitbucket",
            "bitbucket",
            (),
            "Repositories and pull requests in Bitbucket Cloud.",
            pkce=False,
        ),
    )
}


def service_get(name: str | None) -> ServiceSpec:
    """The spec for ``name``, or a 400 naming the services that exist."""
    if not (name or "").strip():
        raise ApplicationError(
            f"Name the service: ?service= one of {', '.join(SERVICES)}.",
            code="validation_error",
            fields={"service": ["This field is required."]},
        )
    spec = SERVICES.get((name or "").strip().lower())
    if spec is None:
        # Never repeat the raw value: it is attacker-chosen text.
        raise ApplicationError(
            f"Unknown service. Use one of: {', '.join(SERVICES)}.",
            code="unknown_service",
            fields={"service": ["Not a known service."]},
        )
    return spec
