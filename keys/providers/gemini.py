"""Google Gemini: ``GET /v1beta/models`` with ``x-goog-api-key``.

Google answers a bad key with 400 ``API_KEY_INVALID`` rather than 401, so that counts
as a rejection too."""

from __future__ import annotations

import httpx

from keys.providers.base import Check, Provider, check_with_http

LABEL = "Google Gemini"


def _is_rejection(response: httpx.Response) -> bool:
    return response.status_code == 400 and "API_KEY_INVALID" in response.text


def check(secret: str, base_url: str) -> Check:
    return check_with_http(
        LABEL,
        f"{base_url}/v1beta/models?pageSize=1",
        {"x-goog-api-key": secret},
        is_rejection=_is_rejection,
    )


PROVIDER = Provider(
    slug="gemini",
    label=LABEL,
    env_var="GEMINI_API_KEY",
    shape="starts with AIza and is 39 characters long, or starts with AQ. (the newer "
    "authorization keys)",
    # Google documents no length for its authorization keys (AQ.…), only the prefix.
    pattern=r"AIza[0-9A-Za-z_\-]{35}|AQ\.[!-~]{30,}",
    base_url_setting="GEMINI_BASE_URL",
    check=check,
)
