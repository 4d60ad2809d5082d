"""Writes on provider keys: check with the provider, create, update, rotate, revalidate,
delete. Checking is a network call, so it happens before the saving transaction."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from accounts.models import User
from core import ratelimit
from core.errors import ApplicationError, Conflict, LimitReached, NotFound
from core.http import check_base_url
from keys.models import ApiKey, Project
from keys.providers import Check, Provider, get_provider, key_format_problem
from keys.services.common import UNSET, Action, Origin, audit, by_user, mask_secret, open_key

# --- Checking a key ----------------------------------------------------------------------


@sensitive_variables("secret")
def api_key_check(*, acting_user: User, provider: str, secret: str, base_url: str = "") -> Check:
    """Ask the provider whether ``secret`` works (rate limited per user). Saves nothing."""
    spec = get_provider(provider)
    secret = _clean_secret(spec, secret)  # before the base URL's DNS lookup and the limit
    url = _base_url_or_error(spec.slug, base_url)
    ratelimit.limit("validation", acting_user.pk, settings.KEYS_VALIDATION_RATE)
    return spec.check(secret, spec.base_url(url))


def _base_url_or_error(provider: str, base_url: str) -> str:
    if get_provider(provider).needs_base_url:
        if not base_url:
            raise ApplicationError(
                "An OpenAI-compatible key needs the server's base URL.",
                fields={"base_url": ["This field is required for OpenAI-compatible keys."]},
            )
        return check_base_url(base_url, allow_private=settings.KEYS_ALLOW_PRIVATE_BASE_URLS)
    if base_url:
        raise ApplicationError(
            "Only OpenAI-compatible keys take a base URL.",
            fields={"base_url": ["Leave empty for this provider."]},
        )
    return ""


@sensitive_variables("secret")
def _clean_secret(spec: Provider, secret: str) -> str:
    """``secret`` without surrounding whitespace, refused unless it can be ``spec``'s key:
    nothing that cannot be one is sent to the provider, or saved."""
    secret = (secret or "").strip()
    if not secret:
        raise ApplicationError("Paste the key.", fields={"key": ["This field is required."]})
    problem = "A key is at most 4096 characters." if len(secret) > 4096 else ""
    problem = problem or key_format_problem(spec, secret)
    if problem:
        raise ApplicationError(problem, code="key_format", fields={"key": [problem]})
    return secret


def _refuse_invalid(check: Check) -> None:
    if check.status == "invalid":
        raise ApplicationError(check.detail, code="invalid_key", fields={"key": [check.detail]})


# --- Keys --------------------------------------------------------------------------------


def _check_name_free(owner: User, name: str, project: Project | None, exclude: int | None) -> None:
    clash = ApiKey.objects.filter(owner=owner, project=project, name__iexact=name)
    if exclude:
        clash = clash.exclude(pk=exclude)
    if clash.exists():
        where = f"project “{project.name}”" if project else "your keys without a project"
        raise Conflict(
            f"A key named “{name}” already exists in {where}.",
            fields={"name": ["Choose another name."]},
        )


def _make_default(api_key: ApiKey) -> None:
    """Clear the other default of this key's (project, provider) scope, then mark this one."""
    scope = ApiKey.objects.filter(owner_id=api_key.owner_id, provider=api_key.provider)
    scope = (
        scope.filter(project=api_key.project)
        if api_key.project_id
        else scope.filter(project__isnull=True)
    )
    scope.filter(is_default=True).exclude(pk=api_key.pk).update(is_default=False)
    api_key.is_default = True


def _save(api_key: ApiKey, **kwargs: Any) -> None:
    try:
        with transaction.atomic():
            api_key.save(**kwargs)
    except IntegrityError:
        raise Conflict(
            "Another key already uses that name or is the default here.",
            fields={"name": ["Choose another name."]},
        ) from None


def _refuse_over_limit(owner: User) -> None:
    """409 once ``owner`` has ``MAX_KEYS_PER_USER`` keys."""
    limit = settings.MAX_KEYS_PER_USER
    if ApiKey.objects.filter(owner=owner).count() >= limit:
        raise LimitReached(limit=limit, noun="key", remedy="Delete one first.")


@sensitive_variables("secret")
def api_key_create(
    *,
    acting_user: User,
    provider: str,
    name: str,
    secret: str,
    origin: Origin,
    project: Project | None = None,
    base_url: str = "",
    is_default: bool = False,
) -> tuple[ApiKey, Check]:
    """Check ``secret`` with the provider, then store it encrypted.

    A key that cannot be the provider's (wrong prefix, length or characters) is refused
    before anything is sent; one the provider rejects is not saved either. One it could
    not check is saved with status "unverified". The first key of a provider in a project
    becomes its default. An account holds at most ``MAX_KEYS_PER_USER`` keys.
    """
    name = name.strip()
    if project is not None and project.owner_id != acting_user.pk:
        raise NotFound("Project not found.")
    _check_name_free(acting_user, name, project, None)
    _refuse_over_limit(acting_user)  # before asking the provider about a key we would refuse
    check = api_key_check(
        acting_user=acting_user, provider=provider, secret=secret, base_url=base_url
    )
    _refuse_invalid(check)
    secret = _clean_secret(get_provider(provider), secret)
    now = timezone.now()
    with transaction.atomic():
        # Counted again under a lock on the owner's row: two creates at once cannot both
        # take the last place (the check above ran before the provider call).
        User.objects.select_for_update(no_key=True).only("pk").get(pk=acting_user.pk)
        _refuse_over_limit(acting_user)
        api_key = ApiKey(
            owner=acting_user,
            project=project,
            provider=provider,
            name=name,
            secret=secret,
            masked_key=mask_secret(secret),
            base_url=base_url.rstrip("/"),
            status=check.status,
            status_detail=check.detail,
            last_validated_at=now if check.status == "valid" else None,
            # Where no prefix tells (save() decides where one does): the provider's answer.
            kind=ApiKey.Kind.ADMIN if check.admin else ApiKey.Kind.API,
        )
        # An admin key never answers for its provider (keys.access), so it takes no
        # default place of its own accord and leaves it to the first key that can.
        admin = get_provider(provider).is_admin_key(secret) or check.admin
        first = not admin and not (
            ApiKey.objects.filter(owner=acting_user, provider=provider, project=project)
            .exclude(kind=ApiKey.Kind.ADMIN)
            .exists()
        )
        if is_default or first:
            _make_default(api_key)
        try:
            _save(api_key)
        except Conflict:
            if is_default or not first:
                raise
            # A concurrent request just added this scope's first key (and so its default).
            # This key never asked to be the default: save it without.
            api_key.is_default = False
            _save(api_key)
        by_user(
            acting_user,
            Action.CREATED,
            origin,
            api_key=api_key,
            detail={"project_id": api_key.project_id},
        )
        by_user(
            acting_user,
            Action.VALIDATED,
            origin,
            api_key=api_key,
            detail={"status": check.status},
        )
    return api_key, check


@sensitive_variables("secret")
def api_key_update(
    *,
    acting_user: User,
    api_key: ApiKey,
    origin: Origin,
    name: str | None = None,
    project: Any = UNSET,
    is_default: bool | None = None,
    secret: str | None = None,
) -> ApiKey:
    """Rename a key, move it to another project (or none), make it the default, and/or
    rotate it (``secret``, checked with the provider first) — all or nothing."""
    if api_key.owner_id != acting_user.pk:
        raise NotFound("Key not found.")
    check = None
    if secret is not None:
        secret, check = _checked_secret(acting_user=acting_user, api_key=api_key, secret=secret)
    changed: list[str] = []
    with transaction.atomic():
        if secret is not None and check is not None:
            _apply_rotation(
                acting_user=acting_user, api_key=api_key, secret=secret, check=check, origin=origin
            )
        if project is not UNSET and project != api_key.project:
            if project is not None and project.owner_id != acting_user.pk:
                raise NotFound("Project not found.")
            api_key.project = project
            if api_key.is_default and is_default is not True:
                api_key.is_default = False  # the new project keeps its own default
            changed.append("project")
        if name is not None and name.strip() != api_key.name:
            api_key.name = name.strip()
            changed.append("name")
        if changed:
            _check_name_free(acting_user, api_key.name, api_key.project, api_key.pk)
        if is_default is True and (not api_key.is_default or "project" in changed):
            _make_default(api_key)
            changed.append("is_default")
        elif is_default is False and api_key.is_default:
            api_key.is_default = False
            changed.append("is_default")
        if not changed:
            return api_key
        _save(api_key)
        action = (
            Action.DEFAULT_SET
            if changed == ["is_default"] and api_key.is_default
            else (Action.UPDATED)
        )
        by_user(
            acting_user,
            action,
            origin,
            api_key=api_key,
            detail={"changed": changed},
        )
    return api_key


@sensitive_variables("secret")
def _checked_secret(*, acting_user: User, api_key: ApiKey, secret: str) -> tuple[str, Check]:
    """A replacement secret for ``api_key``, checked with its provider (rejected: error)."""
    check = api_key_check(
        acting_user=acting_user,
        provider=api_key.provider,
        secret=secret,
        base_url=api_key.base_url,
    )
    _refuse_invalid(check)
    return _clean_secret(get_provider(api_key.provider), secret), check


@sensitive_variables("secret")
def _apply_rotation(
    *, acting_user: User, api_key: ApiKey, secret: str, check: Check, origin: Origin
) -> None:
    """Store a checked secret on the key and audit it (inside the caller's transaction)."""
    api_key.secret = secret
    api_key.masked_key = mask_secret(secret)
    api_key.kind = ApiKey.Kind.ADMIN if check.admin else ApiKey.Kind.API
    api_key.status = check.status
    api_key.status_detail = check.detail
    api_key.last_validated_at = timezone.now() if check.status == "valid" else None
    api_key.save()
    by_user(acting_user, Action.ROTATED, origin, api_key=api_key, detail={"status": check.status})


@sensitive_variables("secret")
def api_key_rotate(
    *, acting_user: User, api_key: ApiKey, secret: str, origin: Origin
) -> tuple[ApiKey, Check]:
    """Replace a key's secret (same id, name, project and history) after checking it."""
    if api_key.owner_id != acting_user.pk:
        raise NotFound("Key not found.")
    secret, check = _checked_secret(acting_user=acting_user, api_key=api_key, secret=secret)
    with transaction.atomic():
        _apply_rotation(
            acting_user=acting_user, api_key=api_key, secret=secret, check=check, origin=origin
        )
    return api_key, check


@sensitive_variables("secret")
def api_key_revalidate(
    *, api_key: ApiKey, origin: Origin, acting_user: User | None = None
) -> Check:
    """Check a stored key again. ``acting_user`` None means the nightly schedule.

    A key the provider could not be asked about keeps its previous status.
    """
    if acting_user is not None:
        if api_key.owner_id != acting_user.pk:
            raise NotFound("Key not found.")
        ratelimit.limit("validation", acting_user.pk, settings.KEYS_VALIDATION_RATE)
    spec = get_provider(api_key.provider)
    # Vet a stored base URL again: its host may resolve to a private address by now.
    base_url = _base_url_or_error(spec.slug, api_key.base_url)
    secret = open_key(api_key)
    # A key saved before formats were enforced, which cannot be the provider's, is
    # invalid without being sent anywhere.
    problem = key_format_problem(spec, secret)
    check = Check("invalid", problem) if problem else spec.check(secret, spec.base_url(base_url))
    with transaction.atomic():
        fields = ["status_detail", "updated_at"]
        api_key.status_detail = check.detail
        if check.status != "unverified" or api_key.status == "unverified":
            api_key.status = check.status
            fields.append("status")
        if check.status == "valid":
            api_key.last_validated_at = timezone.now()
            fields.append("last_validated_at")
            if spec.admin_prefix is None and check.admin != api_key.is_admin:
                # Only the provider's answer tells (an OpenRouter management key stored
                # before Kay asked).
                api_key.kind = ApiKey.Kind.ADMIN if check.admin else ApiKey.Kind.API
                fields.append("kind")
        api_key.save(update_fields=fields)
        audit(
            owner_id=api_key.owner_id,
            actor=acting_user,
            action=Action.VALIDATED,
            origin=origin,
            api_key=api_key,
            detail={"status": check.status},
        )
    return check


def api_key_delete(*, acting_user: User, api_key: ApiKey, origin: Origin) -> None:
    """Delete a key. Its audit trail stays (with the key's name and mask)."""
    if api_key.owner_id != acting_user.pk:
        raise NotFound("Key not found.")
    with transaction.atomic():
        by_user(
            acting_user,
            Action.DELETED,
            origin,
            api_key=api_key,
        )
        api_key.delete()
