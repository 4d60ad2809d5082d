"""One usage fetcher per provider (``usage/providers/<provider>.py``), same shape as
``keys/providers/``, and the registry saying which vault keys have usage to fetch.

Each fetcher takes a decrypted key and a time window as arguments (it never reads the
database), calls the provider through its official SDK or ``core.http``, and returns
:class:`usage.records.BucketRow` values. Vendor failures leave it as one of three errors:

* :class:`KeyRejected` — the provider refused the key (401/403): mark it invalid and tell
  the user; retrying cannot help.
* :class:`core.errors.ProviderUnavailable` — rate limited (429), a 5xx, a timeout or no
  connection: try again later, not before ``retry_after`` seconds when the provider said.
* :class:`core.errors.ProviderError` — any other answer we cannot use (a 400, a body
  that is not the documented shape).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from core.errors import ProviderError, ProviderUnavailable
from usage.models import Source
from usage.records import BucketRow

# The most pages one listing may take. A backfill's longest window (90 days) is 14 pages
# of hourly buckets; a provider still saying ``has_more`` after this many, each with a
# new cursor, is not going to stop.
MAX_PAGES = 100
# The largest body one page may have (after decompression): a month of a large
# organisation's daily buckets is a few megabytes.
MAX_BODY_BYTES = 64 * 1024 * 1024


class KeyRejected(ProviderError):
    """The provider refused the key itself (revoked, wrong kind, missing permissions)."""

    status = 409
    code = "key_rejected"

    def __init__(self, message: str, *, provider_status: int) -> None:
        super().__init__(message)
        self.provider_status = provider_status


def get_json(client: httpx.Client, path: str, *, params: Any = None, label: str, what: str) -> Any:
    """``GET path`` on ``client`` as parsed JSON, every failure as one of this package's
    errors in Kay's words (``label``: the provider's name; ``what``: what was asked for).
    Messages never quote the provider's body: it can echo part of the key."""
    from usage.providers.openai import retry_after  # one Retry-After reader for all

    body = b""
    try:
        with client.stream("GET", path, params=params) as response:
            if response.status_code == 200:
                body = _capped_body(response, label=label, what=what)
    except httpx.TimeoutException:
        raise ProviderUnavailable(f"{label} did not send {what} in time.") from None
    except httpx.HTTPError:
        raise ProviderUnavailable(f"{label} could not be reached.") from None
    status = response.status_code
    if status in (401, 403):
        raise KeyRejected(
            f"{label} rejected this key (HTTP {status}) when asked for {what}. Check that it "
            "is still active and allowed to read usage.",
            provider_status=status,
        )
    if status in (408, 429) or status >= 500:
        busy = "is rate limiting us" if status == 429 else f"answered HTTP {status}"
        raise ProviderUnavailable(
            f"{label} {busy} when asked for {what}.", retry_after=retry_after(response.headers)
        )
    if status != 200:
        raise ProviderError(f"{label} answered HTTP {status} when asked for {what}.")
    try:
        return json.loads(body)
    except ValueError:
        raise ProviderError(f"{label} sent {what} we could not read.") from None


def _capped_body(response: httpx.Response, *, label: str, what: str) -> bytes:
    """The (decompressed) body, read no further than ``MAX_BODY_BYTES``: a gigantic page,
    or a small gzip that inflates to gigabytes, ends the request instead of the worker's
    memory."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ProviderError(f"{label} sent {what} larger than we read.")
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass(frozen=True)
class AccountSpend:
    """What a provider says about one key's own spend and limit (OpenRouter's
    ``GET /key``), in micro-dollars; a limit of None means none is set."""

    limit_micros: int | None
    remaining_micros: int | None
    limit_reset: str
    spent_today_micros: int
    spent_month_micros: int


@dataclass(frozen=True)
class Fetched:
    """One fetch's answer: usage rows, and the key's own spend when the provider has it.

    ``supersedes_key_spend``: the UTC days whose per-model rows (OpenRouter's activity)
    replace the per-key spend rows stored for them (see ``usage.providers.openrouter``).
    ``admin``: the provider said this is an admin (management) key, whatever its stored
    kind: one stored as an LLM key must stop being handed out as one."""

    rows: list[BucketRow]
    account: AccountSpend | None = None
    supersedes_key_spend: frozenset[datetime] = field(default_factory=frozenset)
    admin: bool = False


@dataclass(frozen=True)
class FetchWindow:
    """What a fetcher is asked: the key, the window, and the vault key's id (for rows that
    must name the stored key they came from)."""

    secret: str
    start: datetime
    end: datetime
    api_key_id: int


@dataclass(frozen=True)
class Fetcher:
    """How one provider and kind of key is fetched, and the ``usage.models.Source`` its
    buckets are stored under."""

    source: str
    fetch: Callable[[FetchWindow], Fetched]


# (provider slug, ``keys.models.ApiKey.Kind`` value) pairs with usage to fetch. OpenRouter:
# every key reports its own spend; a management key (kind "admin") also the account's
# activity per model.
FETCHED: frozenset[tuple[str, str]] = frozenset(
    {("openai", "admin"), ("anthropic", "admin"), ("openrouter", "api"), ("openrouter", "admin")}
)


def fetcher_for(provider: str, kind: str) -> Fetcher | None:
    """The fetcher for a vault key of ``provider`` and ``kind``, or None when it has no
    usage to fetch (a project key, a provider without a usage API)."""
    if (provider, kind) not in FETCHED:
        return None
    # Imported here: each provider module imports KeyRejected from this package.
    from usage.providers.anthropic import fetch as fetch_anthropic
    from usage.providers.openrouter import fetch as fetch_openrouter

    fetchers: Mapping[str, Fetcher] = {
        "openai": Fetcher(Source.OPENAI_ADMIN, _fetch_openai),
        "anthropic": Fetcher(Source.ANTHROPIC_ADMIN, fetch_anthropic),
        "openrouter": Fetcher(Source.OPENROUTER, fetch_openrouter),
    }
    return fetchers[provider]


def _fetch_openai(window: FetchWindow) -> Fetched:
    """OpenAI's hourly organisation usage (hourly rows are priced from the catalog)."""
    from usage.providers.openai import fetch_openai_usage

    rows = fetch_openai_usage(
        admin_key=window.secret, start=window.start, end=window.end, bucket_width="1h"
    )
    return Fetched(rows)


__all__ = [
    "FETCHED",
    "MAX_PAGES",
    "AccountSpend",
    "FetchWindow",
    "Fetched",
    "Fetcher",
    "KeyRejected",
    "fetcher_for",
    "get_json",
]
