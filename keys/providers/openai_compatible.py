"""Any OpenAI-compatible server (vLLM, Ollama, LiteLLM, …) at a base URL the user gives:
``GET <base_url>/models`` through the openai SDK, connected only to a vetted address."""

from __future__ import annotations

from keys.providers.base import Check, Provider, check_with_openai_sdk

LABEL = "OpenAI-compatible"


def check(secret: str, base_url: str) -> Check:
    return check_with_openai_sdk(LABEL, secret, base_url, user_host=True)


PROVIDER = Provider(
    slug="openai_compatible",
    label=LABEL,
    env_var="OPENAI_COMPATIBLE_API_KEY",
    shape="is whatever your server issues (one line, no spaces); give its base URL too, e.g. "
    "https://llm.example.com/v1",
    pattern=None,
    base_url_setting=None,
    check=check,
    needs_base_url=True,
)
