"""Writes on projects."""

from __future__ import annotations

from django.conf import settings
from django.db import IntegrityError, transaction

from accounts.models import User
from core.errors import ApplicationError, Conflict, LimitReached, NotFound
from keys.models import ApiKey, Project
from keys.services.common import Action, Origin, by_user

# --- Projects ----------------------------------------------------------------------------


def _name_taken(name: str) -> Conflict:
    return Conflict(
        f"You already have a project named “{name}”.", fields={"name": ["Choose another name."]}
    )


def _save(project: Project) -> None:
    """Save, turning the unique-name constraint (a concurrent request won the pre-check
    race) into the same 409 as the pre-check."""
    try:
        with transaction.atomic():
            project.save()
    except IntegrityError:
        raise _name_taken(project.name) from None


def _checked_name(owner: User, name: str, *, renamed: Project | None = None) -> str:
    """``name`` without surrounding spaces; refused when empty or when another of the
    owner's projects (not ``renamed``) has it, ignoring case."""
    name = name.strip()
    if not name:
        raise ApplicationError("Name the project.", fields={"name": ["This field is required."]})
    clash = Project.objects.filter(owner=owner, name__iexact=name)
    if renamed is not None:
        clash = clash.exclude(pk=renamed.pk)
    if clash.exists():
        raise _name_taken(name)
    return name


def _audit(acting_user: User, action: str, origin: Origin, project: Project) -> None:
    detail = {"project_id": project.pk, "project": project.name}
    by_user(acting_user, action, origin, detail=detail)


def _refuse_over_limit(owner: User) -> None:
    """409 once ``owner`` has ``MAX_PROJECTS_PER_USER`` projects."""
    limit = settings.MAX_PROJECTS_PER_USER
    if Project.objects.filter(owner=owner).count() >= limit:
        raise LimitReached(limit=limit, noun="project", remedy="Delete one first.")


def project_create(
    *, acting_user: User, name: str, description: str = "", origin: Origin
) -> Project:
    """Create a project (names are unique per user, ignoring case; at most
    ``MAX_PROJECTS_PER_USER`` per user)."""
    name = _checked_name(acting_user, name)
    with transaction.atomic():
        # Counted under a lock on the owner's row: two creates at once cannot both take the
        # last place.
        User.objects.select_for_update(no_key=True).only("pk").get(pk=acting_user.pk)
        _refuse_over_limit(acting_user)
        project = Project(owner=acting_user, name=name, description=description)
        _save(project)
        _audit(acting_user, Action.CREATED, origin, project)
    return project


def project_update(
    *,
    acting_user: User,
    project: Project,
    origin: Origin,
    name: str | None = None,
    description: str | None = None,
) -> Project:
    """Rename a project or change its description."""
    if project.owner_id != acting_user.pk:
        raise NotFound("Project not found.")
    if name is not None:
        name = _checked_name(acting_user, name, renamed=project)
    before = (project.name, project.description)
    with transaction.atomic():
        if name is not None:
            project.name = name
        if description is not None:
            project.description = description
        try:
            _save(project)
        except Conflict:
            project.name, project.description = before
            raise
        _audit(acting_user, Action.UPDATED, origin, project)
    return project


def project_delete(*, acting_user: User, project: Project, origin: Origin) -> None:
    """Delete an empty project; one that still holds keys is refused (409)."""
    if project.owner_id != acting_user.pk:
        raise NotFound("Project not found.")
    with transaction.atomic():
        if ApiKey.objects.filter(project=project).exists():
            raise Conflict("Move or delete this project's keys before deleting it.")
        _audit(acting_user, Action.DELETED, origin, project)
        project.delete()
