"""OpenAI organisation usage and costs, through the official ``openai`` SDK with an admin
key (``sk-admin-…``; project keys cannot call these endpoints).

* :func:`fetch_openai_usage` — ``GET /v1/organization/usage/completions`` grouped by model,
  project and API key, and (daily buckets only) ``GET /v1/organization/costs``.
* :func:`openai_project_keys` — every project's API keys with their ``redacted_value``.
* :func:`match_redacted` — which stored key a ``redacted_value`` can be.

The base URL is ``settings.OPENAI_BASE_URL``. The SDK does not retry (the calling task
does, honouring ``Retry-After``); its errors leave as ``usage.providers`` describes. Nothing
here logs or returns a key.
"""

from __future__ import annotations

import email.utils
import math
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal, NamedTuple, Protocol, TypeVar

import openai
from django.conf import settings
from django.views.decorators.debug import sensitive_variables
from openai.pagination import SyncConversationCursorPage
from openai.types.admin.organization import UsageCompletionsResponse, UsageCostsResponse

from core.errors import ProviderError, ProviderUnavailable
from core.http import sdk_tls_context
from usage.providers import MAX_PAGES, KeyRejected
from usage.records import GRANULARITIES, BucketRow

PROVIDER = "openai"
BucketWidth = Literal["1h", "1d"]
GRANULARITY: dict[str, str] = {"1h": "hour", "1d": "day"}
# The most buckets OpenAI gives in one page (it refuses a larger limit): fewest requests.
COMPLETIONS_LIMIT = {"1h": 168, "1d": 31}
COSTS_LIMIT = 180
TIMEOUT = 30.0
MICROS = Decimal(1_000_000)
# The most requests one listing of the project keys may take (the projects' pages and each
# project's pages of keys, 100 items a page): a few hundred projects, with room to spare.
MAX_LISTING_REQUESTS = 1000


class _Page(Protocol):
    has_more: bool
    next_page: str | None


PageT = TypeVar("PageT", bound=_Page)
ItemT = TypeVar("ItemT")


@dataclass
class _Totals:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    requests: int = 0
    cost: Decimal = Decimal(0)


# (bucket start, model, project id, API key id)
Identity = tuple[datetime, str, str, str]


# --- Usage and costs ----------------------------------------------------------------------


@sensitive_variables("admin_key")
def fetch_openai_usage(
    *,
    admin_key: str,
    start: datetime,
    end: datetime,
    bucket_width: BucketWidth,
    timeout: float = TIMEOUT,
) -> list[BucketRow]:
    """The organisation's completions usage from ``start`` to ``end``, one row per bucket,
    model, OpenAI project and OpenAI API key.

    The window is widened to whole buckets (``start`` down, ``end`` up, UTC): a bucket cut
    short by the window would otherwise overwrite a complete one when stored. Pages are
    read while ``has_more``, each as large as OpenAI allows for the width.

    Costs: OpenAI reports them only per day, and per *line item* rather than per model
    (``"gpt-4o-2024-08-06, input"``, ``"web search tool calls"``). For ``"1d"`` the costs
    are read grouped by project, line item and API key, and each line item is added to the
    row of the model it names (the part before its first comma), so a model's tokens and
    its provider-reported cost sit in one row. A line item that names no model (tools,
    storage) stays a row of its own with model ``""`` at its project and key: its cost is
    real, and spreading it over models would invent figures. Every ``"1d"`` row therefore
    carries a cost (``0`` when OpenAI reported none for it, so nothing is priced twice);
    ``"1h"`` rows carry ``None`` and are priced from the model catalog. Amounts are
    dollars as floats, summed exactly (``Decimal``) and rounded once to micro-dollars.
    """
    if bucket_width not in GRANULARITY:
        raise ValueError(f"bucket_width must be one of {sorted(GRANULARITY)}")
    granularity = GRANULARITY[bucket_width]
    first = BucketRow.aligned(start, granularity)
    last = BucketRow.aligned(end, granularity)
    if last < end:
        last += GRANULARITIES[granularity]
    if first >= last:
        return []
    start_time, end_time = int(first.timestamp()), int(last.timestamp())
    totals: dict[Identity, _Totals] = {}
    with _client(admin_key, timeout) as client:
        usage = client.admin.organization.usage

        def completions(page: str | None) -> UsageCompletionsResponse:
            return usage.completions(
                start_time=start_time,
                end_time=end_time,
                bucket_width=bucket_width,
                group_by=["model", "project_id", "api_key_id"],
                limit=COMPLETIONS_LIMIT[bucket_width],
                page=page or openai.omit,
            )

        def costs(page: str | None) -> UsageCostsResponse:
            return usage.costs(
                start_time=start_time,
                end_time=end_time,
                bucket_width="1d",
                group_by=["project_id", "line_item", "api_key_id"],
                limit=COSTS_LIMIT,
                page=page or openai.omit,
            )

        for usage_page in _pages(completions, "usage"):
            with _unreadable("usage"):
                _add_usage(totals, usage_page, granularity)
        if bucket_width == "1d":
            for cost_page in _pages(costs, "costs"):
                with _unreadable("costs"):
                    _add_costs(totals, cost_page, granularity)
    with _unreadable("usage"):
        return [
            _row(identity, acc, granularity, priced=bucket_width == "1d")
            for identity, acc in sorted(totals.items())
        ]


def _add_usage(
    totals: dict[Identity, _Totals], page: UsageCompletionsResponse, granularity: str
) -> None:
    for bucket in page.data:
        at = _bucket_start(bucket.start_time, granularity)
        for result in bucket.results:
            if result.object != "organization.usage.completions.result":
                continue
            identity = (at, result.model or "", result.project_id or "", result.api_key_id or "")
            acc = totals.setdefault(identity, _Totals())
            acc.input_tokens += result.input_tokens
            acc.output_tokens += result.output_tokens
            acc.cached_tokens += result.input_cached_tokens or 0
            acc.requests += result.num_model_requests


def _add_costs(totals: dict[Identity, _Totals], page: UsageCostsResponse, granularity: str) -> None:
    for bucket in page.data:
        at = _bucket_start(bucket.start_time, granularity)
        for result in bucket.results:
            if result.object != "organization.costs.result":
                continue
            amount = result.amount
            if amount is None or amount.value is None:
                continue
            if (amount.currency or "usd").lower() != "usd":
                raise ProviderError("OpenAI reported costs in another currency than dollars.")
            model = line_item_model(result.line_item)
            identity = (at, model, result.project_id or "", result.api_key_id or "")
            # str(): the float's shortest decimal form (0.06, not 0.0599999…).
            totals.setdefault(identity, _Totals()).cost += Decimal(str(amount.value))


def line_item_model(line_item: str | None) -> str:
    """The model a costs line item names (``"gpt-4o-2024-08-06, input"`` →
    ``"gpt-4o-2024-08-06"``), or ``""`` when it names none (``"web search tool calls"``)."""
    if not line_item or "," not in line_item:
        return ""
    return line_item.split(",", 1)[0].strip()


def _row(identity: Identity, acc: _Totals, granularity: str, *, priced: bool) -> BucketRow:
    cost_micros = None
    if priced:
        # Credits come as negative line items; a bucket cannot cost less than nothing.
        micros = (max(acc.cost, Decimal(0)) * MICROS).quantize(Decimal(1), ROUND_HALF_EVEN)
        cost_micros = int(micros)
    at, model, project_id, key_id = identity
    return BucketRow(
        provider=PROVIDER,
        model=model,
        bucket_start=at,
        granularity=granularity,
        input_tokens=acc.input_tokens,
        output_tokens=acc.output_tokens,
        cached_tokens=acc.cached_tokens,
        requests=acc.requests,
        cost_micros=cost_micros,
        external_project_id=project_id,
        external_key_id=key_id,
    )


def _bucket_start(unix: int, granularity: str) -> datetime:
    # The first bucket starts at the requested start_time: aligned already, as we ask
    # from a bucket boundary; aligned again in case a bucket ever starts off one.
    return BucketRow.aligned(datetime.fromtimestamp(unix, UTC), granularity)


# --- Project keys -------------------------------------------------------------------------


class ProjectKey(NamedTuple):
    project_id: str
    key_id: str
    name: str
    redacted_value: str


@sensitive_variables("admin_key")
def openai_project_keys(*, admin_key: str, timeout: float = TIMEOUT) -> list[ProjectKey]:
    """Every API key of every active project of the organisation (the SDK follows the
    pages), with its ``redacted_value`` for :func:`match_redacted`."""
    found: list[ProjectKey] = []
    budget = [MAX_LISTING_REQUESTS]
    with _client(admin_key, timeout) as client, _vendor_errors("the project keys"):
        projects = client.admin.organization.projects
        for project in _items(projects.list(limit=100), budget):
            # "any": all enabled keys, not only those whose owner the admin can see.
            keys = projects.api_keys.list(project.id, limit=100, owner_project_access="any")
            for key in _items(keys, budget):
                found.append(ProjectKey(project.id, key.id, key.name, key.redacted_value))
    return found


def _items(first: SyncConversationCursorPage[ItemT], budget: list[int]) -> Iterator[ItemT]:
    """Every item of an SDK listing, page after page, each page spending one of
    ``budget``'s requests: a listing whose ``has_more`` never ends (or whose cursor
    repeats, which the SDK follows as it is) stops with an error once it is spent."""
    for page in first.iter_pages():
        budget[0] -= 1
        if budget[0] < 0:
            raise ProviderError("OpenAI's project key pages do not end.")
        yield from page.data


# Where a redacted value hides the middle of a key: "sk-abc...def", "sk-…xyz", "sk-****xyz".
HIDDEN = re.compile(r"\.{3,}|…|\*{3,}")
# A redaction must show at least this much of the key's end to tell keys apart: prefixes
# are shared by every key of a kind (sk-proj-, sk-svcacct-).
MIN_VISIBLE_END = 3


def redaction_ends(redacted: str) -> tuple[str, str] | None:
    """The visible prefix and suffix of a redacted value, or None when it cannot tell keys
    apart: no hidden middle, or too little of the end shown (``sk-...``, ``*``, ``""``)."""
    parts = HIDDEN.split(redacted.strip(), maxsplit=1)
    if len(parts) != 2 or len(parts[1]) < MIN_VISIBLE_END:
        return None
    return parts[0], parts[1]


@sensitive_variables("secrets", "secret")
def match_redacted(redacted: str, secrets: Mapping[int, str]) -> int | None:
    """The id of the one stored key ``redacted`` can be (``secrets``: id → plaintext).

    OpenAI shows a key as its first and last few characters around ``...``, and how many
    varies (``sk-abc...def``, ``sk-admin...xyz``), so each plaintext is compared by that
    prefix and suffix, and must be longer than both (the redaction hid something). Never
    compare with our own mask: it shows other characters. No match, a redaction showing
    too little of the end, or several stored keys that fit, give None: usage is never
    attributed to a key it might not belong to.
    """
    ends = redaction_ends(redacted)
    if ends is None:
        return None
    prefix, suffix = ends
    fits = [
        key_id
        for key_id, secret in secrets.items()
        if len(secret) > len(prefix) + len(suffix)
        and secret.startswith(prefix)
        and secret.endswith(suffix)
    ]
    return fits[0] if len(fits) == 1 else None


# --- The SDK and its errors ---------------------------------------------------------------


@sensitive_variables("admin_key")
def _client(admin_key: str, timeout: float) -> openai.OpenAI:
    client = openai.OpenAI(
        admin_api_key=admin_key,
        api_key="",  # admin endpoints only: the operator's OPENAI_API_KEY is never sent
        base_url=settings.OPENAI_BASE_URL,
        timeout=timeout,
        max_retries=0,  # the calling task retries, honouring Retry-After
        # The process's one TLS context: building one per client cost more CPU than a fetch.
        http_client=openai.DefaultHttpxClient(follow_redirects=False, verify=sdk_tls_context()),
    )
    # The SDK reads OPENAI_ORG_ID / OPENAI_PROJECT_ID from the environment; the operator's
    # organisation must not be sent with a user's admin key (OpenAI would refuse it).
    client.organization = None
    client.project = None
    return client


def _pages(call: Callable[[str | None], PageT], what: str) -> Iterator[PageT]:
    """Each page of a ``has_more``/``next_page`` listing, the first one first."""
    token: str | None = None
    seen: set[str] = set()
    while True:
        with _vendor_errors(f"the {what}"):
            page = call(token)
        yield page
        if not page.has_more:
            return
        if not page.next_page or page.next_page in seen or len(seen) + 1 >= MAX_PAGES:
            raise ProviderError(f"OpenAI's {what} pages do not end.")
        token = page.next_page
        seen.add(token)


@contextmanager
def _unreadable(what: str) -> Iterator[None]:
    """A body that parsed but holds what no bucket can (negative counts, a model name
    longer than a column): the provider's fault, not a crash."""
    try:
        yield
    except (ValueError, TypeError, AttributeError, ArithmeticError):
        # ArithmeticError: decimal's InvalidOperation (a NaN or infinite amount, or one
        # too large to round to micro-dollars).
        raise ProviderError(f"OpenAI sent {what} we could not read.") from None


@contextmanager
def _vendor_errors(what: str) -> Iterator[None]:
    """The SDK's exceptions as ours. Messages never quote OpenAI's (they can echo part of
    the key)."""
    try:
        yield
    except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
        raise KeyRejected(
            f"OpenAI rejected this admin key (HTTP {exc.status_code}) when asked for {what}. "
            "Check that it is an active admin key of the organisation, with read access "
            "to usage.",
            provider_status=exc.status_code,
        ) from None
    except openai.APITimeoutError:
        raise ProviderUnavailable(f"OpenAI did not send {what} in time.") from None
    except openai.APIConnectionError:
        raise ProviderUnavailable("OpenAI could not be reached.") from None
    except openai.APIStatusError as exc:
        status = exc.status_code
        if status in (408, 429) or status >= 500:
            busy = "is rate limiting us" if status == 429 else f"answered HTTP {status}"
            raise ProviderUnavailable(
                f"OpenAI {busy} when asked for {what}.",
                retry_after=retry_after(exc.response.headers),
            ) from None
        raise ProviderError(f"OpenAI answered HTTP {status} when asked for {what}.") from None
    except (openai.APIError, ValueError, TypeError, KeyError, AttributeError):
        # openai.APIResponseValidationError, or a body the SDK could not parse.
        raise ProviderError(f"OpenAI sent {what} we could not read.") from None


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms``, or ``Retry-After`` (seconds or an HTTP
    date); None when absent or unreadable."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                seconds = float(value) / scale
            except ValueError:
                continue
            return max(0.0, seconds) if math.isfinite(seconds) else None
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
