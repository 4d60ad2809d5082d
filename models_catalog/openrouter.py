"""The one seam to OpenRouter's catalog API: `/models`, `/providers`, `/models/{id}/endpoints`.

Retries 429, 5xx and transport errors with exponential backoff and jitter (honouring
``Retry-After``); everything else becomes a :class:`~core.errors.ProviderError`. The API
key is optional (the catalog endpoints are public) and never logged.
"""

import logging
import random
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
from django.conf import settings

from core.errors import ProviderError
from core.http import http_client

logger = logging.getLogger(__name__)

RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}
MAX_RETRY_AFTER = 30.0


class OpenRouterClient:
    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 20.0,
        max_attempts: int = 4,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = (base_url or settings.OPENROUTER_BASE_URL).rstrip("/")
        key = settings.OPENROUTER_API_KEY if api_key is None else api_key
        headers = {"Accept": "application/json", "User-Agent": "kay-catalog-sync"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self.max_attempts = max_attempts
        self.backoff = backoff
        self._sleep = sleep
        self._http = http_client(
            base_url=self.base_url, headers=headers, timeout=timeout, connections=32
        )

    def __enter__(self) -> "OpenRouterClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- API -----------------------------------------------------------------------------

    def models(self) -> Any:
        """The full ``GET /models`` body (``{"data": [...]}``)."""
        return self._get_json("/models")

    def providers(self) -> Any:
        """The full ``GET /providers`` body (``{"data": [...]}``)."""
        return self._get_json("/providers")

    def model_endpoints(self, model_id: str) -> Any:
        """The full ``GET /models/{author}/{slug}/endpoints`` body."""
        return self._get_json(f"/models/{quote(model_id, safe='/:')}/endpoints")

    # --- plumbing ------------------------------------------------------------------------

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None and response.headers.get("Retry-After"):
            try:
                return min(float(response.headers["Retry-After"]), MAX_RETRY_AFTER)
            except ValueError:
                pass
        base: float = self.backoff * (2 ** (attempt - 1))
        return base + random.uniform(0, base)  # noqa: S311 - jitter, not crypto

    def _get_json(self, path: str) -> Any:
        last_problem = ""
        for attempt in range(1, self.max_attempts + 1):
            response: httpx.Response | None = None
            try:
                response = self._http.get(path)
            except httpx.TransportError as exc:
                last_problem = f"{type(exc).__name__}"
            else:
                if response.status_code < 300:
                    try:
                        return response.json()
                    except ValueError:
                        raise ProviderError(
                            f"OpenRouter returned invalid JSON for {path}",
                            code="openrouter_invalid_json",
                        ) from None
                if response.status_code not in RETRY_STATUSES:
                    raise ProviderError(
                        f"OpenRouter answered {response.status_code} for {path}",
                        code="openrouter_error",
                    )
                last_problem = f"HTTP {response.status_code}"
            if attempt < self.max_attempts:
                delay = self._delay(attempt, response)
                logger.info(
                    "OpenRouter %s: %s, retrying in %.1fs (attempt %d/%d)",
                    path,
                    last_problem,
                    delay,
                    attempt,
                    self.max_attempts,
                )
                self._sleep(delay)
        raise ProviderError(
            f"OpenRouter {path} failed after {self.max_attempts} attempts ({last_problem})",
            code="openrouter_unavailable",
        )
