"""Reads for accounts: CLI sessions, personal API tokens, the security trail and the
linked Atlassian identity, each scoped to its owner."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import ApiToken, AtlassianProfile, CliSession, SecurityEvent, User
from core.errors import NotFound


def api_tokens_for(*, user: Any) -> QuerySet[ApiToken]:
    """The user's tokens that still work (not revoked, not expired, current version)."""
    return ApiToken.objects.filter(
        user=user,
        revoked_at__isnull=True,
        expires_at__gt=timezone.now(),
        version=settings.API_TOKEN_VERSION,
    ).order_by("-created_at")


def api_token_get_for_user(*, user: Any, token_id: Any) -> ApiToken:
    found = ApiToken.objects.filter(user=user, pk=token_id).first()
    if found is None:
        raise NotFound("No such API token.")
    return found


def cli_session_for(*, user: Any, public_id: str) -> CliSession | None:
    try:
        uuid.UUID(public_id)
    except ValueError:
        return None
    return CliSession.objects.filter(user=user, public_id=public_id).first()


def cli_sessions_for(*, user: Any) -> QuerySet[CliSession]:
    return CliSession.objects.filter(
        user=user, revoked_at__isnull=True, expires_at__gt=timezone.now()
    ).order_by("-created_at")


def security_events_for(*, user: Any) -> QuerySet[SecurityEvent]:
    """The user's security trail, newest first (with the acting user for display)."""
    return (
        SecurityEvent.objects.filter(user=user)
        .select_related("actor")
        .order_by("-created_at", "-pk")
    )


def atlassian_profile_for(*, user: Any) -> AtlassianProfile | None:
    """The Atlassian identity linked to ``user`` (signed in through a connection), if any."""
    return AtlassianProfile.objects.filter(user=user).first()


def user_deletion_summary(*, user: User) -> list[tuple[str, int]]:
    """What deleting ``user`` deletes with it, as (what, how many): one COUNT per kind of
    row that belongs to a user, read from the model relations, so every app's data is
    counted without accounts naming it (and nothing is loaded)."""
    from django.db import models

    counts = []
    for relation in User._meta.related_objects:
        if getattr(relation, "on_delete", None) is not models.CASCADE:
            continue
        rows = relation.related_model._base_manager.filter(**{relation.field.name: user})
        count = rows.count()
        if count:
            counts.append((str(relation.related_model._meta.verbose_name_plural), count))
    return sorted(counts)
