""" "Fetch now": one of the owner's usage keys fetched at once instead of at the next
scheduled run (every 15 minutes)."""

from __future__ import annotations

from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction

from accounts.models import User
from core import ratelimit
from core.errors import ApplicationError
from keys.models import ApiKey
from keys.selectors import api_key_get
from usage.selectors import FETCHABLE_KEYS
from usage.tasks import fetch_usage_for_key


def usage_fetch_enqueue(*, acting_user: User, key_id: Any) -> ApiKey:
    """Queue a fetch of the acting user's key ``key_id`` once the transaction commits,
    and return the key.

    Another user's key is ``NotFound``; a key whose provider reports no usage is refused.
    Each user may ask for each key ``USAGE_FETCH_NOW_RATE`` times (``RateLimited``
    beyond), so nobody makes Kay hammer a provider."""
    api_key = api_key_get(owner=acting_user, key_id=key_id)
    if not ApiKey.objects.filter(FETCHABLE_KEYS, pk=api_key.pk).exists():
        raise ApplicationError(
            f"“{api_key.name}” has no usage to fetch: Kay reads usage with OpenAI or "
            "Anthropic admin keys and OpenRouter keys.",
            code="not_fetchable",
        )
    ratelimit.limit("usage_fetch", f"{acting_user.pk}:{api_key.pk}", settings.USAGE_FETCH_NOW_RATE)
    transaction.on_commit(partial(fetch_usage_for_key.apply_async, args=[api_key.pk]))
    return api_key
