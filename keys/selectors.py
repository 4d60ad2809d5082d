"""Reads of the key vault, always scoped to their owner (another user's object: 404)."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, OuterRef, QuerySet, Subquery

from accounts.models import User
from core.errors import ApplicationError, NotFound
from core.ids import parse_id
from keys.models import ApiKey, KeyAuditEvent, OnboardingSession, Project


def _pk(value: Any) -> int:
    pk = parse_id(value)
    if pk is None:
        raise NotFound("Not found.")
    return pk


def with_last_used(keys: QuerySet[ApiKey]) -> QuerySet[ApiKey]:
    """Annotate ``last_used_at``: the newest "used"/"fetched" audit event of each key
    (a correlated subquery on the (api_key, created_at) index, so still one query)."""
    newest_use = (
        KeyAuditEvent.objects.filter(api_key=OuterRef("pk"), action__in=KeyAuditEvent.USE_ACTIONS)
        .order_by("-created_at")
        .values("created_at")[:1]
    )
    return keys.annotate(last_used_at=Subquery(newest_use))


def api_key_list(
    *, owner: User, project_id: Any = None, provider: str | None = None
) -> QuerySet[ApiKey]:
    """The owner's keys, newest first, with their project (one query)."""
    keys = with_last_used(ApiKey.objects.filter(owner=owner).select_related("project"))
    if project_id == "none":
        keys = keys.filter(project__isnull=True)
    elif project_id not in (None, ""):
        pk = parse_id(project_id)
        if pk is None:
            raise ApplicationError(
                "project_id must be a project's id or `none`.",
                fields={"project_id": ["Not a project id."]},
            )
        keys = keys.filter(project_id=pk)
    if provider:
        keys = keys.filter(provider=provider)
    return keys


def api_key_get(*, owner: User, key_id: Any) -> ApiKey:
    """One of the owner's keys, or ``NotFound``."""
    keys = ApiKey.objects.filter(owner=owner, pk=_pk(key_id)).select_related("project")
    api_key = with_last_used(keys).first()
    if api_key is None:
        raise NotFound("Key not found.")
    return api_key


def project_list(*, owner: User) -> QuerySet[Project]:
    """The owner's projects with their number of keys (one query)."""
    return Project.objects.filter(owner=owner).annotate(key_count=Count("api_keys"))


def project_get(*, owner: User, project_id: Any) -> Project:
    """One of the owner's projects, or ``NotFound``."""
    project = project_list(owner=owner).filter(pk=_pk(project_id)).first()
    if project is None:
        raise NotFound("Project not found.")
    return project


def audit_events_for_key(*, owner: User, api_key: ApiKey, limit: int = 100) -> list[KeyAuditEvent]:
    """A key's audit trail, newest first."""
    return list(
        KeyAuditEvent.objects.filter(owner=owner, api_key=api_key).select_related("actor")[:limit]
    )


def audit_events_for_owner(*, owner: User, limit: int = 50) -> list[KeyAuditEvent]:
    """Everything that happened in the owner's vault, newest first."""
    return list(KeyAuditEvent.objects.filter(owner=owner).select_related("actor")[:limit])


def invalid_key_count(*, owner: User) -> int:
    """Keys the provider rejected (at the last check): the dashboard warns about them."""
    return ApiKey.objects.filter(owner=owner, status=ApiKey.Status.INVALID).count()


def onboarding_completed(*, user: User) -> bool:
    """Whether the user finished the key-vault onboarding (the overview hides it then)."""
    return OnboardingSession.objects.filter(user=user, completed_at__isnull=False).exists()
