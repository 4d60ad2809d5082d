"""CopilotKit Cloud public API keys (``ck_pub_…``).

Copilot Cloud documents no endpoint that checks a key without starting a (billed) chat
run, so we do not call it: keys are saved as "unverified" with that reason. The base URL
setting is kept so a future check, or a self-hosted runtime, has one place to point."""

from __future__ import annotations

from keys.providers.base import Check, Provider

LABEL = "CopilotKit"


def check(secret: str, base_url: str) -> Check:
    return Check(
        "unverified",
        "CopilotKit Cloud has no key-check endpoint; the key was not sent anywhere.",
    )


PROVIDER = Provider(
    slug="copilotkit",
    label=LABEL,
    env_var="COPILOTKIT_API_KEY",
    shape="is a Copilot Cloud public API key: ck_pub_ followed by 32 letters and digits",
    pattern=r"ck_pub_[A-Za-z0-9]{32,}",
    base_url_setting="COPILOTKIT_BASE_URL",
    check=check,
)
