"""The only two ways plaintext leaves the vault, both audited (ARCHITECTURE.md, "Secrets").

* :func:`user_api_keys` — in-process, for backend services (seed 002)::

      with user_api_keys(user, project=project) as keys:
          gemini = keys["gemini"]        # MissingAPIKey if none (KeyError subclass)
          exa = keys.get("exa")          # None if none

* :func:`api_key_fetch` — behind ``POST /api/keys/fetch`` (seed 001), server to server.

Which stored key answers for a provider: the project's default, else the user's default
(a default key outside any project), else the user's only key of that provider.

Admin keys (``ApiKey.Kind.ADMIN``, OpenAI's ``sk-admin-…``) never answer: they cannot call
models, so neither path hands one out as the provider's key, and they do not count when
choosing between a user's keys. The usage fetchers open them by id instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Case, F, IntegerField, Q, QuerySet, Value, When
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from accounts.models import User
from core import ratelimit
from core.clientip import rate_limit_ident
from core.errors import ApplicationError, RateLimited
from core.prepared import PreparedQuery
from keys.models import ApiKey, KeyAuditEvent, Project
from keys.providers import PROVIDERS, get_provider
from keys.services import Origin, audit
from keys.services.common import UnreadableKey, open_key

Action = KeyAuditEvent.Action
BACKEND = Origin(KeyAuditEvent.Source.BACKEND)


class MissingAPIKey(ApplicationError, KeyError):
    """No usable key for a provider; the API renders it as a 404 naming the provider."""

    status = 404
    code = "missing_api_key"

    def __init__(self, provider: str, *, fallback_allowed: bool = False) -> None:
        message = f"No API key found for provider '{provider}'. Add one under Keys in the dashboard"
        if provider in PROVIDERS and fallback_allowed:
            message += f" or set {get_provider(provider).env_var} in the environment"
        super().__init__(message + ".")
        self.provider = provider

    def __str__(self) -> str:
        return self.message


def env_fallback_allowed() -> bool:
    """Seed 002: development (``DEBUG`` true, or ``DEPLOY_ENV`` unset) may use .env keys."""
    return bool(settings.DEBUG) or not settings.DEPLOY_ENV


def _ranked(project_id: Any) -> Case:
    """0: the project's default, 1: the user's default outside projects, 2: any other."""
    whens = [When(Q(project__isnull=True, is_default=True), then=Value(1))]
    if project_id:
        whens.insert(0, When(Q(project_id=project_id, is_default=True), then=Value(0)))
    return Case(*whens, default=Value(2), output_field=IntegerField())


def _choose(candidates: Sequence[ApiKey]) -> ApiKey | None:
    """The answering key among rank-ordered candidates, or None if none or ambiguous."""
    if not candidates:
        return None
    first = candidates[0]
    if first.rank < 2 or len(candidates) == 1:  # type: ignore[attr-defined]
        return first
    return None


def _llm_keys(owner_id: Any) -> QuerySet[ApiKey]:
    """The owner's keys that can call models: every key but admin keys."""
    return ApiKey.objects.filter(owner_id=owner_id).exclude(kind=ApiKey.Kind.ADMIN)


def resolve_key(*, owner_id: Any, provider: str, project_id: Any = None) -> ApiKey | None:
    """The stored key that answers for ``provider`` (one query)."""
    candidates = list(
        _llm_keys(owner_id)
        .filter(provider=provider)
        .annotate(rank=_ranked(project_id))
        .order_by("rank", "-created_at")[:2]
    )
    return _choose(candidates)


def _record_use(api_key: ApiKey, *, action: str, origin: Origin) -> None:
    """Audit one use: a single INSERT. "Last used" is read back from these events."""
    audit(owner_id=api_key.owner_id, action=action, origin=origin, api_key=api_key)


# --- In process -------------------------------------------------------------------------


class UserAPIKeys(Mapping[str, str]):
    """Provider → plaintext key for one user. Decrypts (and audits) on first access."""

    def __init__(
        self, stored: dict[str, ApiKey], environment: dict[str, str], fallback: bool
    ) -> None:
        self._stored = stored
        self._environment = environment
        self._fallback = fallback
        self._opened: dict[str, str] = {}

    @sensitive_variables("value")
    def __getitem__(self, provider: str) -> str:
        if provider in self._opened:
            return self._opened[provider]
        if provider in self._stored:
            api_key = self._stored[provider]
            value = open_key(api_key)
            _record_use(api_key, action=Action.USED, origin=BACKEND)
        elif provider in self._environment:
            value = self._environment[provider]
        else:
            raise MissingAPIKey(provider, fallback_allowed=self._fallback)
        self._opened[provider] = value
        return value

    def __contains__(self, provider: object) -> bool:
        """Membership without opening (or auditing) anything."""
        return provider in self._stored or provider in self._environment

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(set(self._stored) | set(self._environment)))

    def __len__(self) -> int:
        return len(set(self._stored) | set(self._environment))

    def base_url(self, provider: str) -> str:
        """Where to send the key: the stored key's own base URL (OpenAI-compatible keys),
        else the provider's configured one. Reading it opens nothing."""
        api_key = self._stored.get(provider)
        if api_key is not None and api_key.base_url:
            return api_key.base_url
        spec = PROVIDERS.get(provider)
        if spec is None or spec.needs_base_url:
            raise MissingAPIKey(provider, fallback_allowed=self._fallback)
        return spec.base_url()

    def stored_key(self, provider: str) -> ApiKey | None:
        """The stored key that answers for ``provider`` (as :func:`resolve_key` chooses
        it), without opening it: callers that record which key paid need no second read."""
        return self._stored.get(provider)

    def source(self, provider: str) -> str | None:
        """``"vault"``, ``"environment"`` or None — without opening anything."""
        if provider in self._stored:
            return "vault"
        return "environment" if provider in self._environment else None

    def close(self) -> None:
        self._opened.clear()
        self._stored.clear()
        self._environment.clear()

    def __repr__(self) -> str:  # never the values
        return f"<UserAPIKeys providers={list(self)}>"


def _keys_ranked(owner_id: Any, project_id: Any) -> QuerySet[ApiKey]:
    return (
        _llm_keys(owner_id)
        .annotate(rank=_ranked(project_id))
        .order_by("provider", "rank", "-created_at")
    )


# The assistant reads them on every run: compiled once (core.prepared).
_KEYS: PreparedQuery[ApiKey] = PreparedQuery(lambda owner_id: _keys_ranked(owner_id, None))
_KEYS_IN_PROJECT: PreparedQuery[ApiKey] = PreparedQuery(_keys_ranked)


@contextmanager
def user_api_keys(user: User | int, project: Project | int | None = None) -> Iterator[UserAPIKeys]:
    """The keys backend services may use for ``user`` (and ``project``), seed 002.

    Stored keys win. In development (see :func:`env_fallback_allowed`) providers the user
    has no key for fall back to ``<PROVIDER>_API_KEY``; in production they never do and
    reading one raises :class:`MissingAPIKey`. Each stored key read writes a "used" audit
    event (which is what "last used" shows). Admin keys are never among them, stored or
    from the environment.
    """
    owner_id = user.pk if isinstance(user, User) else user
    project_id = project.pk if isinstance(project, Project) else project
    rows = (
        _KEYS_IN_PROJECT.all(owner_id=owner_id, project_id=project_id)
        if project_id
        else _KEYS.all(owner_id=owner_id)
    )
    stored: dict[str, ApiKey] = {}
    for provider in {row.provider for row in rows}:
        chosen = _choose([row for row in rows if row.provider == provider])
        if chosen is not None:
            stored[provider] = chosen
    fallback = env_fallback_allowed()
    environment: dict[str, str] = {}
    if fallback:
        for slug, spec in PROVIDERS.items():
            value = os.environ.get(spec.env_var, "")
            usable = value and not spec.needs_base_url and not spec.is_admin_key(value)
            if slug not in stored and usable:
                environment[slug] = value
    keys = UserAPIKeys(stored, environment, fallback)
    try:
        yield keys
    finally:
        keys.close()


@contextmanager
def user_api_key_chosen(api_key: ApiKey, *, owner: User) -> Iterator[UserAPIKeys]:
    """``user_api_keys`` for a caller that holds the stored key that answers already (read
    with what it reads, one query fewer): the same opening and audit of it, and nothing
    else. A key of someone else's, or an admin key, is not served: then all of ``owner``'s
    keys are read, as ``user_api_keys`` reads them."""
    if api_key.owner_id != owner.pk or api_key.kind == ApiKey.Kind.ADMIN:
        with user_api_keys(owner) as every:
            yield every
        return
    keys = UserAPIKeys({api_key.provider: api_key}, {}, env_fallback_allowed())
    try:
        yield keys
    finally:
        keys.close()


# --- Server to server --------------------------------------------------------------------


@sensitive_variables("plaintext")
def api_key_fetch(
    *, user_id: int, provider: str, origin: Origin, project_id: int | None = None
) -> tuple[ApiKey, str]:
    """The decrypted key a backend service asked for (2 queries on the success path:
    the key, the audit row; the rate limit lives in the cache).

    Rate limited per user; every outcome is audited.
    """
    try:
        ratelimit.limit("fetch", user_id, settings.KEYS_FETCH_RATE)
    except RateLimited:
        fetch_denied_record(origin=origin, reason="rate_limited", user_id=user_id)
        raise
    get_provider(provider)  # an unknown one is a 400 naming the providers there are
    api_key = resolve_key(owner_id=user_id, provider=provider, project_id=project_id)
    if api_key is None:
        fetch_denied_record(
            origin=origin,
            reason="no_key",
            user_id=user_id,
            detail={"provider": provider, "project_id": project_id},
        )
        raise MissingAPIKey(provider)
    try:
        plaintext = open_key(api_key)
    except UnreadableKey:
        fetch_denied_record(
            origin=origin,
            reason="unreadable",
            user_id=user_id,
            detail={"provider": provider, "key_id": api_key.pk},
        )
        raise
    _record_use(api_key, action=Action.FETCHED, origin=origin)
    return api_key, plaintext


# Wrong server secrets are counted per client address; past KEYS_FETCH_FAILURE_RATE the
# address is refused before its secret is even compared.
FAILED_FETCH = "failed_fetch"
# Refusals anyone can cause in bulk: one audit row per address (and user) and window.
COUNTED_REASONS = frozenset({"bad_secret", "too_many_failures", "rate_limited"})
COUNTED_WINDOW = 3600


def _caller(origin: Origin) -> str:
    """Who failures are counted against: the address, or its /64 for IPv6 (one client
    holds a whole /64, and must not get a fresh budget, or audit row, per address)."""
    return rate_limit_ident(origin.ip or "") or "-"


def fetch_caller_check(*, origin: Origin) -> None:
    """Refuse (429) an address that sent too many wrong server secrets in this window,
    before anything about this request is looked at."""
    try:
        ratelimit.ensure_budget(FAILED_FETCH, _caller(origin), settings.KEYS_FETCH_FAILURE_RATE)
    except RateLimited:
        fetch_denied_record(origin=origin, reason="too_many_failures")
        raise


def fetch_bad_secret_record(*, origin: Origin) -> None:
    """Count a wrong server secret against its address, and audit it (counted)."""
    ratelimit.hit(FAILED_FETCH, _caller(origin), settings.KEYS_FETCH_FAILURE_RATE)
    fetch_denied_record(origin=origin, reason="bad_secret")


def fetch_denied_record(
    *, origin: Origin, reason: str, user_id: Any = None, detail: dict[str, Any] | None = None
) -> None:
    """Audit a refused fetch. Attached to the user only when the caller was authenticated
    (a refusal after the secret matched) and the user exists. Refusals in
    ``COUNTED_REASONS`` raise the count of their window's row instead of adding one."""
    authenticated = reason not in ("bad_secret", "too_many_failures")
    owner_id = user_id if authenticated and isinstance(user_id, int) else None
    if reason in COUNTED_REASONS:
        _count_refusal(origin=origin, reason=reason, owner_id=owner_id)
        return
    owner = User.objects.filter(pk=owner_id).first() if owner_id else None
    payload = {"reason": reason, **(detail or {})}
    if user_id is not None:
        payload["user_id"] = str(user_id)[:64]
    audit(owner=owner, action=Action.FETCH_DENIED, origin=origin, detail=payload)


def _count_refusal(*, origin: Origin, reason: str, owner_id: int | None) -> None:
    """One UPDATE per refusal (``count + 1``); the window's first refusal creates the row.
    The unique ``aggregate_key`` keeps two first refusals at once from making two rows."""
    now = int(timezone.now().timestamp())
    start = datetime.fromtimestamp(now - now % COUNTED_WINDOW, tz=UTC)
    key = f"fetch_denied:{reason}:{_caller(origin)}:{owner_id or '-'}:{start:%Y%m%d%H%M}"
    rows = KeyAuditEvent.objects.filter(aggregate_key=key)
    if rows.update(count=F("count") + 1):
        return
    detail: dict[str, Any] = {"reason": reason, "window_start": start.isoformat()}
    if owner_id is not None:
        detail["user_id"] = str(owner_id)
    try:
        with transaction.atomic():
            KeyAuditEvent.objects.create(
                owner=User.objects.filter(pk=owner_id).first() if owner_id else None,
                action=Action.FETCH_DENIED,
                source=origin.source,
                ip_address=origin.ip,
                detail=detail,
                aggregate_key=key,
            )
    except IntegrityError:  # another request created it first
        rows.update(count=F("count") + 1)
