"""How long a task waits before retrying an outside service that is down or busy."""

import random


def retry_countdown(
    *, retries: int, retry_after: float | None, backoff: float, max_retry_after: float
) -> float:
    """Seconds before the next try: the provider's ``Retry-After`` when it sent one (capped
    at ``max_retry_after``), else exponential backoff from ``backoff`` with full jitter, so
    many workers do not retry in step."""
    if retry_after is not None:
        return min(retry_after, max_retry_after)
    base = backoff * 2**retries
    return base + random.uniform(0, base)  # noqa: S311 - jitter, not crypto
