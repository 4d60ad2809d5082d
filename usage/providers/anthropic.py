"""Anthropic organisation usage and costs with an admin key (``sk-ant-admin…``), over the
shared httpx client (the ``anthropic`` SDK does not cover these endpoints).

* :func:`fetch_anthropic_usage` — ``GET /v1/organizations/usage_report/messages`` grouped
  by model, API key and workspace, and ``GET /v1/organizations/cost_report`` grouped by
  workspace and description, one row per UTC day (the cost report has no finer width).
* :func:`anthropic_api_keys` — the organisation's API keys with their ``partial_key_hint``.

Both are Anthropic's "legacy" Usage and Cost API, which reads all history; its successor
(``/v1/organizations/analytics/…``, beta) holds data from 2026-01-01 only.

The base URL is ``settings.ANTHROPIC_BASE_URL``. Nothing is retried here (the calling task
does, honouring ``Retry-After``); failures leave as ``usage.providers`` describes. Nothing
here logs or returns a key.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, NamedTuple

import httpx
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from core.errors import ProviderError
from core.http import http_client
from usage.providers import MAX_PAGES, Fetched, FetchWindow, get_json
from usage.records import GRANULARITIES, BucketRow

PROVIDER = "anthropic"
LABEL = "Anthropic"
API_VERSION = "2023-06-01"
USAGE_PATH = "/v1/organizations/usage_report/messages"
COST_PATH = "/v1/organizations/cost_report"
KEYS_PATH = "/v1/organizations/api_keys"
DAY_LIMIT = 31  # the most daily buckets either report gives in one page
KEYS_LIMIT = 100
TIMEOUT = 30.0
# Cost amounts are decimal strings in cents: "123.45" is $1.2345, 1,234,500 micro-dollars.
MICROS_PER_CENT = Decimal(10_000)
# The usage report's token fields; each cost line of type "tokens" names one of them.
TOKEN_TYPES = (
    "uncached_input_tokens",
    "cache_read_input_tokens",
    "cache_creation.ephemeral_5m_input_tokens",
    "cache_creation.ephemeral_1h_input_tokens",
    "output_tokens",
)

# (day, model, workspace id, API key id); "" where Anthropic gives null (the default
# workspace, usage from the Console rather than a key).
Identity = tuple[datetime, str, str, str]


@dataclass
class _Usage:
    tokens: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TOKEN_TYPES, 0))
    cents: Decimal | None = None  # None: Anthropic reported no cost for it (yet)

    def add_cents(self, amount: Decimal) -> None:
        self.cents = (self.cents or Decimal(0)) + amount


def fetch(window: FetchWindow) -> Fetched:
    """The registry's entry point (``usage.providers.fetcher_for``)."""
    return Fetched(
        fetch_anthropic_usage(
            admin_key=window.secret, start=window.start, end=window.end, timeout=TIMEOUT
        )
    )


@sensitive_variables("admin_key")
def fetch_anthropic_usage(
    *, admin_key: str, start: datetime, end: datetime, timeout: float = TIMEOUT
) -> list[BucketRow]:
    """The organisation's Messages usage from ``start`` to ``end`` (widened to whole UTC
    days), one row per day, model, workspace and API key.

    Tokens: ``input_tokens`` = uncached + cache reads + cache writes (5 min and 1 h),
    ``cached_tokens`` = cache reads. The usage report counts no requests, so ``requests``
    is 0.

    Costs: the cost report cannot be grouped by API key, only by workspace and line
    ("Claude Sonnet 4.5 Usage - Output Tokens": model and token type). Each token line's
    amount is shared between the keys that used that model in that workspace that day in
    proportion to their tokens of that type, which is exact when the price per token is
    the same for all of them; shares are rounded so they add up to the reported total. A
    line no usage row can take (web search, code execution, or tokens not in the usage
    report yet) is a row of its own at API key ``""`` with no tokens. A day, model and
    workspace with no reported cost yet carries ``None`` and is priced from the catalog
    until Anthropic reports it.
    """
    first = BucketRow.aligned(start, "day")
    last = BucketRow.aligned(end, "day")
    if last < end:
        last += GRANULARITIES["day"]
    if first >= last:
        return []
    window = {"starting_at": _rfc3339(first), "ending_at": _rfc3339(last), "bucket_width": "1d"}
    usage: dict[Identity, _Usage] = defaultdict(_Usage)
    costs: list[tuple[Identity, str | None, Decimal]] = []
    with _client(admin_key, timeout) as client:
        usage_params = {**window, "group_by[]": ["model", "api_key_id", "workspace_id"]}
        for bucket in _buckets(client, USAGE_PATH, usage_params, "usage"):
            for day, result in bucket:
                _add_usage(usage, day, result)
        cost_params = {**window, "group_by[]": ["workspace_id", "description"]}
        for bucket in _buckets(client, COST_PATH, cost_params, "costs"):
            for day, result in bucket:
                costs.append(_cost_line(day, result))
    for identity, token_type, cents in costs:
        _share(usage, identity, token_type, cents)
    # A day, model and workspace with any reported cost is fully reported: its rows that
    # took no share cost nothing (pricing them from the catalog would count twice).
    reported = {identity[:3] for identity, _, _ in costs}
    for identity, entry in usage.items():
        if entry.cents is None and identity[:3] in reported:
            entry.cents = Decimal(0)
    try:
        return _rows(usage)
    # A count BucketRow refuses (negative, too large, a name too long), or an amount too
    # large to round to micro-dollars (decimal's InvalidOperation, an ArithmeticError).
    except (ValueError, ArithmeticError):
        raise ProviderError(f"{LABEL} sent usage we could not read.") from None


def _add_usage(usage: dict[Identity, _Usage], day: datetime, result: dict[str, Any]) -> None:
    try:
        cache = result.get("cache_creation") or {}
        counts = {
            "uncached_input_tokens": result.get("uncached_input_tokens"),
            "cache_read_input_tokens": result.get("cache_read_input_tokens"),
            "cache_creation.ephemeral_5m_input_tokens": cache.get("ephemeral_5m_input_tokens"),
            "cache_creation.ephemeral_1h_input_tokens": cache.get("ephemeral_1h_input_tokens"),
            "output_tokens": result.get("output_tokens"),
        }
        identity = (
            day,
            str(result.get("model") or ""),
            str(result.get("workspace_id") or ""),
            str(result.get("api_key_id") or ""),
        )
        entry = usage[identity]
        for name, count in counts.items():
            entry.tokens[name] += int(count or 0)
    except (AttributeError, TypeError, ValueError):
        raise ProviderError(f"{LABEL} sent usage we could not read.") from None


def _cost_line(day: datetime, result: dict[str, Any]) -> tuple[Identity, str | None, Decimal]:
    """(day, model, workspace, "") of one cost line, its token type (None for a cost that
    is not per token), and its amount in cents."""
    try:
        if str(result.get("currency") or "USD").upper() != "USD":
            raise ProviderError(f"{LABEL} reported costs in another currency than dollars.")
        cents = Decimal(str(result["amount"]))
        if not cents.is_finite():
            raise ValueError
        model = str(result.get("model") or "")
        token_type = result.get("token_type") if result.get("cost_type") == "tokens" else None
    except (AttributeError, KeyError, TypeError, ValueError, InvalidOperation):
        raise ProviderError(f"{LABEL} sent costs we could not read.") from None
    typed = token_type if model and token_type in TOKEN_TYPES else None
    return (day, model, str(result.get("workspace_id") or ""), ""), typed, cents


def _share(
    usage: dict[Identity, _Usage], line: Identity, token_type: str | None, cents: Decimal
) -> None:
    """Share one cost line between the usage rows of its day, model and workspace by their
    tokens of its type; a line none of them can take becomes a row of its own."""
    day, model, workspace, _ = line
    takers = [
        (identity, entry.tokens[token_type])
        for identity, entry in usage.items()
        if token_type is not None
        and identity[:3] == (day, model, workspace)
        and entry.tokens[token_type] > 0
    ]
    total = sum(tokens for _, tokens in takers)
    if not takers:
        usage[line].add_cents(cents)
        return
    for identity, tokens in takers:
        usage[identity].add_cents(cents * tokens / total)


def _rows(usage: dict[Identity, _Usage]) -> list[BucketRow]:
    rows = []
    micros = _rounded(
        {
            identity: max(entry.cents, Decimal(0)) * MICROS_PER_CENT
            for identity, entry in usage.items()
            if entry.cents is not None
        }
    )
    for identity, entry in sorted(usage.items()):
        day, model, workspace, key = identity
        tokens = entry.tokens
        cached = tokens["cache_read_input_tokens"]
        rows.append(
            BucketRow(
                provider=PROVIDER,
                model=model,
                bucket_start=day,
                granularity="day",
                input_tokens=sum(tokens[name] for name in TOKEN_TYPES if name != "output_tokens"),
                output_tokens=tokens["output_tokens"],
                cached_tokens=cached,
                requests=0,
                cost_micros=micros.get(identity),
                external_project_id=workspace,
                external_key_id=key,
            )
        )
    return rows


def _rounded(amounts: dict[Identity, Decimal]) -> dict[Identity, int]:
    """Whole micro-dollars whose sum per day, model and workspace is that group's exact
    sum rounded once: each is the rounded running total less the one before (so shares of
    one line never gain or lose a micro-dollar between them)."""
    out: dict[Identity, int] = {}
    running: dict[tuple[datetime, str, str], tuple[Decimal, int]] = {}
    for identity in sorted(amounts):
        exact, rounded = running.get(identity[:3], (Decimal(0), 0))
        exact += amounts[identity]
        now = int(exact.quantize(Decimal(1), ROUND_HALF_EVEN))
        out[identity] = now - rounded
        running[identity[:3]] = (exact, now)
    return out


# --- API keys -----------------------------------------------------------------------------


class AnthropicKey(NamedTuple):
    id: str
    name: str
    partial_key_hint: str
    workspace_id: str


@sensitive_variables("admin_key")
def anthropic_api_keys(*, admin_key: str, timeout: float = TIMEOUT) -> list[AnthropicKey]:
    """Every API key of the organisation (all pages), with its ``partial_key_hint``
    (``sk-ant-api03-R2D...igAA``) for matching against stored keys."""
    found: list[AnthropicKey] = []
    after: str | None = None
    with _client(admin_key, timeout) as client:
        for _ in range(MAX_PAGES):
            params: dict[str, Any] = {"limit": KEYS_LIMIT}
            if after:
                params["after_id"] = after
            body = get_json(client, KEYS_PATH, params=params, label=LABEL, what="the API keys")
            try:
                for item in body["data"]:
                    found.append(
                        AnthropicKey(
                            str(item["id"]),
                            str(item.get("name") or ""),
                            str(item.get("partial_key_hint") or ""),
                            str(item.get("workspace_id") or ""),
                        )
                    )
                more, last = bool(body.get("has_more")), body.get("last_id")
            except (AttributeError, KeyError, TypeError):
                raise ProviderError(f"{LABEL} sent API keys we could not read.") from None
            if not more:
                return found
            if not last or last == after:
                break
            after = str(last)
    # Still "has_more" after MAX_PAGES pages, or a cursor that does not move.
    raise ProviderError(f"{LABEL}'s API key pages do not end.")


# --- HTTP ---------------------------------------------------------------------------------


@sensitive_variables("admin_key")
def _client(admin_key: str, timeout: float) -> httpx.Client:
    return http_client(
        timeout=timeout,
        base_url=str(settings.ANTHROPIC_BASE_URL).rstrip("/"),
        headers={"x-api-key": admin_key, "anthropic-version": API_VERSION},
    )


def _buckets(
    client: httpx.Client, path: str, params: dict[str, Any], what: str
) -> Iterator[list[tuple[datetime, dict[str, Any]]]]:
    """Each bucket of a report, all pages (``has_more``/``next_page``), as (day, result)
    pairs."""
    token: str | None = None
    seen: set[str] = set()
    while True:
        page = {**params, "limit": DAY_LIMIT, **({"page": token} if token else {})}
        body = get_json(client, path, params=page, label=LABEL, what=f"the {what}")
        try:
            for bucket in body["data"]:
                day = BucketRow.aligned(_parse_time(bucket["starting_at"]), "day")
                yield [(day, dict(result)) for result in bucket["results"]]
            more, token = bool(body.get("has_more")), body.get("next_page")
        except (AttributeError, KeyError, TypeError, ValueError):
            raise ProviderError(f"{LABEL} sent the {what} in a form we could not read.") from None
        if not more:
            return
        if not token or token in seen or len(seen) + 1 >= MAX_PAGES:
            raise ProviderError(f"{LABEL}'s {what} pages do not end.")
        seen.add(token)


def _parse_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("a bucket start without a time zone")
    return moment.astimezone(UTC)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
