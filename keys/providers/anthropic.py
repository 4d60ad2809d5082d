"""Anthropic: API keys are checked with ``GET /v1/models``. Admin keys
(``sk-ant-admin…``) can only call the Admin API, so they are checked with
``GET /v1/organizations/api_keys?limit=1``; they are stored with kind "admin", shown as
"Anthropic admin key", used for usage tracking and never for model calls (``keys.access``
leaves them out). Both send ``x-api-key`` and ``anthropic-version``."""

from __future__ import annotations

from keys.providers.base import Check, Provider, check_with_http

LABEL = "Anthropic"
API_VERSION = "2023-06-01"
ADMIN_PREFIX = "sk-ant-admin"


def check(secret: str, base_url: str) -> Check:
    admin = secret.startswith(ADMIN_PREFIX)
    path = "/v1/organizations/api_keys?limit=1" if admin else "/v1/models?limit=1"
    return check_with_http(
        LABEL,
        f"{base_url}{path}",
        {"x-api-key": secret, "anthropic-version": API_VERSION},
        is_admin=lambda response: admin,
    )


PROVIDER = Provider(
    slug="anthropic",
    label=LABEL,
    env_var="ANTHROPIC_API_KEY",
    shape="starts with sk-ant- (sk-ant-api03-…, or sk-ant-admin01-… for usage tracking) and "
    "is at least 40 characters long",
    # API keys are 108 characters (sk-ant-api03-…); admin and compliance keys share the prefix.
    pattern=r"sk-ant-[A-Za-z0-9_\-]{33,}",
    base_url_setting="ANTHROPIC_BASE_URL",
    check=check,
    admin_prefix=ADMIN_PREFIX,
)
