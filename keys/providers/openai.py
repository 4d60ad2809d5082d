"""OpenAI: project/user keys are checked with ``GET /v1/models``. Admin keys
(``sk-admin-…``) can only call administration endpoints (``/v1/models`` refuses them), so
they are checked with ``GET /v1/organization/projects``; they are stored with kind
"admin", shown as "OpenAI admin key", used for usage tracking and never for model calls
(``keys.access`` leaves them out)."""

from __future__ import annotations

from keys.providers.base import Check, Provider, check_with_openai_sdk

LABEL = "OpenAI"
ADMIN_PREFIX = "sk-admin-"


def check(secret: str, base_url: str) -> Check:
    return check_with_openai_sdk(LABEL, secret, base_url, admin=secret.startswith(ADMIN_PREFIX))


PROVIDER = Provider(
    slug="openai",
    label=LABEL,
    env_var="OPENAI_API_KEY",
    shape="starts with sk- (sk-proj-…, sk-svcacct-…, or sk-admin-… for usage tracking) and is "
    "at least 35 characters long",
    # Legacy keys are sk- and 48 characters; project keys are longer. Anthropic's and
    # OpenRouter's keys also start with sk-: they are not OpenAI keys.
    pattern=r"sk-(?!ant-|or-)[A-Za-z0-9_\-]{32,}",
    base_url_setting="OPENAI_BASE_URL",
    check=check,
    admin_prefix=ADMIN_PREFIX,
)
