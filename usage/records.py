"""What a fetcher hands to ``usage_buckets_upsert``: one bucket of a provider's usage.

Plain data with no database in it, so ``usage/providers/*`` build these from a vendor's
response and the services decide how they are stored.

Conventions every fetcher follows:

- ``input_tokens`` includes ``cached_tokens`` (OpenAI's convention; a provider reporting
  cache reads apart from input, as Anthropic does, adds them in).
- ``cost_micros`` is integer micro-dollars (1 USD = 1,000,000). ``None`` means the
  provider reported no cost for this row: Kay prices its tokens from the model catalog.
  Usage whose cost the provider reports on another row (OpenAI's costs come per project,
  not per model) passes ``0``, so it is not priced twice.
- ``bucket_start`` is timezone-aware and starts its bucket: on the hour for ``"hour"``,
  at midnight UTC for ``"day"``.
- Rows sharing an identity (provider, model, external project and key ids, start,
  granularity) in one call are parts of one bucket and are added up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

GRANULARITIES = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
# Column sizes of UsageBucket: a longer value is a fetcher bug, refused here rather than
# truncated (or refused) by the database.
MAX_LENGTHS = {"provider": 32, "model": 200, "external_project_id": 100, "external_key_id": 100}
# The most one bucket may count (a trillion tokens or requests) and cost (ten million
# dollars): far past any real organisation's hour or day, and far enough under a bigint
# column's 9.2e18 that millions of buckets still add up in one (the rollup's sums). A
# provider reporting more is answering nonsense; its row is refused, not stored.
MAX_COUNT = 10**12
MAX_COST_MICROS = 10**13
# C0 and C1 control characters and DEL. NUL cannot be stored by PostgreSQL at all; the
# others can, but no model or id has them, and a name carrying a terminal escape or a
# line break would reach the page, the CSV and the logs as it came.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _unencodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


@dataclass(frozen=True)
class BucketRow:
    provider: str
    model: str
    bucket_start: datetime
    granularity: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    requests: int
    cost_micros: int | None
    external_project_id: str = ""
    external_key_id: str = ""
    # The user's stored key this usage is attributed to (matched by the fetcher).
    api_key_id: int | None = None

    def __post_init__(self) -> None:
        if self.granularity not in GRANULARITIES:
            raise ValueError(f"granularity must be one of {sorted(GRANULARITIES)}")
        start = self.bucket_start
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError("bucket_start must be timezone-aware")
        if start.astimezone(UTC) != self.aligned(start, self.granularity):
            raise ValueError(
                f"bucket_start {start.isoformat()} does not start a {self.granularity}"
            )
        for name, limit in MAX_LENGTHS.items():
            value = getattr(self, name)
            if len(value) > limit:
                raise ValueError(f"{name} is longer than {limit} characters")
            # PostgreSQL stores neither a NUL nor a lone surrogate (JSON's "\ud800"): the
            # write would fail after the fetch, not as the provider's bad answer. Refused,
            # not cleaned: a rewritten id could match another key's (attribution).
            if CONTROL.search(value) or _unencodable(value):
                raise ValueError(f"{name} holds a control character or one no column can store")
        if not self.provider:
            raise ValueError("provider is required")
        counts = (self.input_tokens, self.output_tokens, self.cached_tokens, self.requests)
        if any(count < 0 for count in counts) or (self.cost_micros or 0) < 0:
            raise ValueError("token counts, requests and cost cannot be negative")
        if any(count > MAX_COUNT for count in counts) or (self.cost_micros or 0) > MAX_COST_MICROS:
            raise ValueError("token counts, requests or cost past what one bucket can hold")
        if self.cached_tokens > self.input_tokens:
            raise ValueError("cached_tokens are part of input_tokens, so cannot exceed them")

    @staticmethod
    def aligned(moment: datetime, granularity: str) -> datetime:
        """The start (UTC) of the ``granularity`` bucket holding ``moment``."""
        utc = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        return utc.replace(hour=0) if granularity == "day" else utc

    @property
    def identity(self) -> tuple[str, str, str, str, datetime, str]:
        """What makes two rows the same bucket (with the owner and source of the call)."""
        return (
            self.provider,
            self.model,
            self.external_project_id,
            self.external_key_id,
            self.bucket_start.astimezone(UTC),
            self.granularity,
        )
