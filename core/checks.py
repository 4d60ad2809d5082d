"""System checks of the deployment configuration (``manage.py check --deploy``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Tags, register
from django.core.checks import Warning as CheckWarning


@register(Tags.security, deploy=True)
def check_deploy_env(
    *, app_configs: Sequence[AppConfig] | None, databases: Sequence[str] | None, **kwargs: Any
) -> list[CheckMessage]:
    """``DEBUG=false`` without ``DEPLOY_ENV`` is still development to Kay (seed 002)."""
    if settings.DEBUG or settings.DEPLOY_ENV:
        return []
    return [
        CheckWarning(
            "DEBUG is false but DEPLOY_ENV is empty, so Kay treats this as development: "
            "users' keys fall back to <PROVIDER>_API_KEY from the environment and, without "
            "EMAIL_URL, emails are printed to the console.",
            hint="Set DEPLOY_ENV (e.g. production) on a deployed instance.",
            id="core.W001",
        )
    ]
