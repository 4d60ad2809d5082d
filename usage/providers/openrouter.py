"""OpenRouter spend, over the shared httpx client.

* ``GET {OPENROUTER_BASE_URL}/key`` (any key): the key's own spend today and this month,
  its limit and what is left of it. Stored on the key (``ProviderAccount``) and as one day
  bucket for the key: model ``""``, no tokens, the provider's cost, external key id
  ``vault:<stored key id>`` (:func:`key_spend_id`), so two keys of one owner never share
  a bucket.
* ``GET {OPENROUTER_BASE_URL}/activity`` (a management key, which ``/key`` says it is):
  the whole account's last 30 complete UTC days, per day and model (its items are per
  endpoint; they are added up), as day buckets with the provider's cost, prompt and
  completion tokens and requests.

Counting once. The two report the same money: a regular key's spend on a day is in the
account's activity for that day. They never overlap in what is kept:

- ``/key`` only knows *today* (``usage_daily`` restarts at midnight UTC), so a key-spend
  bucket is written for today only; it is the live figure while the day runs.
- ``/activity`` only knows *complete* days. When a management key's fetch stores them,
  the key-spend buckets of those days are deleted (:attr:`Fetched.supersedes_key_spend`,
  in the same transaction): for a past day the per-model figures replace the per-key ones.

Without a management key, the key-spend buckets stay as the record of each day (as of the
day's last fetch: at most one fetch interval of spend before midnight is missed). This
assumes an owner's OpenRouter keys belong to one OpenRouter account, as a management key
reports its account only. Amounts are US dollars as JSON numbers, read through their
shortest decimal form and rounded once to micro-dollars. BYOK costs (paid to another
provider with the user's own key) are left out: that provider bills them, and its own
usage fetch may count them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

import httpx
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from core.errors import ProviderError
from core.http import http_client
from usage.providers import AccountSpend, Fetched, FetchWindow, get_json
from usage.records import BucketRow

PROVIDER = "openrouter"
LABEL = "OpenRouter"
TIMEOUT = 30.0
# /activity covers this many complete days before today.
ACTIVITY_DAYS = 30
MICROS = Decimal(1_000_000)
KEY_SPEND_PREFIX = "vault:"
# The largest amount (a billion dollars) a key's limit or spend may be: past it the answer
# is nonsense, and would not fit ProviderAccount's bigint columns either.
MAX_ACCOUNT_MICROS = 10**15


def key_spend_id(api_key_id: int) -> str:
    """The external key id of a stored key's own spend buckets."""
    return f"{KEY_SPEND_PREFIX}{api_key_id}"


@dataclass
class _Activity:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0
    usd: Decimal = Decimal(0)


def fetch(window: FetchWindow) -> Fetched:
    """The registry's entry point (``usage.providers.fetcher_for``)."""
    return fetch_openrouter_usage(
        secret=window.secret,
        start=window.start,
        end=window.end,
        api_key_id=window.api_key_id,
        timeout=TIMEOUT,
    )


@sensitive_variables("secret")
def fetch_openrouter_usage(
    *, secret: str, start: datetime, end: datetime, api_key_id: int, timeout: float = TIMEOUT
) -> Fetched:
    """The key's spend (today's bucket and its account figures) and, for a management
    key, the account's activity per model for the complete days from ``start``."""
    today = BucketRow.aligned(end, "day")
    with _client(secret, timeout) as client:
        data = _key_data(client)
        account = _account(data)
        management = bool(data.get("is_management_key") or data.get("is_provisioning_key"))
        if not management:
            row = BucketRow(
                provider=PROVIDER,
                model="",
                bucket_start=today,
                granularity="day",
                input_tokens=0,
                output_tokens=0,
                cached_tokens=0,
                requests=0,
                cost_micros=account.spent_today_micros,
                external_key_id=key_spend_id(api_key_id),
                api_key_id=api_key_id,  # the key's own spend: attributed to it
            )
            return Fetched([row], account=account)
        first = max(BucketRow.aligned(start, "day"), today - timedelta(days=ACTIVITY_DAYS))
        body = get_json(client, "/activity", label=LABEL, what="the activity")
    rows = _activity_rows(body, first=first, today=today)
    days = frozenset(first + timedelta(days=n) for n in range((today - first).days))
    return Fetched(rows, account=account, supersedes_key_spend=days, admin=True)


def _key_data(client: httpx.Client) -> dict[str, Any]:
    body = get_json(client, "/key", label=LABEL, what="the key's spend")
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise ProviderError(f"{LABEL} sent the key's spend in a form we could not read.")
    return data


def _account(data: dict[str, Any]) -> AccountSpend:
    try:
        limit = _micros(data.get("limit"))
        remaining = _micros(data.get("limit_remaining"))
        today = _micros(data.get("usage_daily")) or 0
        month = _micros(data.get("usage_monthly")) or 0
    except (TypeError, ValueError, InvalidOperation):
        raise ProviderError(f"{LABEL} sent the key's spend in a form we could not read.") from None
    return AccountSpend(
        limit_micros=limit,
        remaining_micros=remaining,
        limit_reset=str(data.get("limit_reset") or "")[:20],
        spent_today_micros=max(today, 0),
        spent_month_micros=max(month, 0),
    )


def _activity_rows(body: Any, *, first: datetime, today: datetime) -> list[BucketRow]:
    totals: dict[tuple[datetime, str], _Activity] = defaultdict(_Activity)
    try:
        for item in body["data"]:
            day = datetime.combine(date.fromisoformat(item["date"]), datetime.min.time(), UTC)
            if not first <= day < today:
                continue
            acc = totals[(day, str(item["model"]))]
            acc.prompt_tokens += int(item.get("prompt_tokens") or 0)
            acc.completion_tokens += int(item.get("completion_tokens") or 0)
            acc.requests += int(item.get("requests") or 0)
            acc.usd += Decimal(str(item.get("usage") or 0))
        return [
            BucketRow(
                provider=PROVIDER,
                model=model,
                bucket_start=day,
                granularity="day",
                input_tokens=acc.prompt_tokens,
                output_tokens=acc.completion_tokens,
                cached_tokens=0,
                requests=acc.requests,
                cost_micros=int(
                    (max(acc.usd, Decimal(0)) * MICROS).quantize(Decimal(1), ROUND_HALF_EVEN)
                ),
            )
            for (day, model), acc in sorted(totals.items())
        ]
    except (AttributeError, KeyError, TypeError, ValueError, InvalidOperation):
        raise ProviderError(f"{LABEL} sent activity we could not read.") from None


def _micros(usd: Any) -> int | None:
    """Dollars (a JSON number) as whole micro-dollars; None stays None."""
    if usd is None:
        return None
    if isinstance(usd, bool) or not isinstance(usd, int | float):
        raise TypeError("not a number")
    amount = Decimal(str(usd))
    if not amount.is_finite() or abs(amount * MICROS) > MAX_ACCOUNT_MICROS:
        raise ValueError("not a finite amount, or past any real one")
    return int((amount * MICROS).quantize(Decimal(1), ROUND_HALF_EVEN))


@sensitive_variables("secret")
def _client(secret: str, timeout: float) -> httpx.Client:
    return http_client(
        timeout=timeout,
        base_url=str(settings.OPENROUTER_BASE_URL).rstrip("/"),
        headers={"Authorization": f"Bearer {secret}"},
    )
