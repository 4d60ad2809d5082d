"""Exa: listing websets (``GET /websets/v0/websets?limit=1``) is authenticated with
``x-api-key`` and costs nothing, unlike a search. Websets need a paid plan, so only 401
means a bad key; 403 (a good key without Websets) leaves the key unverified."""

from __future__ import annotations

from keys.providers.base import Check, Provider, check_with_http

LABEL = "Exa"


def check(secret: str, base_url: str) -> Check:
    return check_with_http(
        LABEL,
        f"{base_url}/websets/v0/websets?limit=1",
        {"x-api-key": secret},
        rejection_statuses=(401,),
    )


PROVIDER = Provider(
    slug="exa",
    label=LABEL,
    env_var="EXA_API_KEY",
    shape="is a UUID such as 1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
    pattern=r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
    base_url_setting="EXA_BASE_URL",
    check=check,
)
