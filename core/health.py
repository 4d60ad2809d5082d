"""Checks behind ``GET /health``: database, broker, worker round trip, OpenAI, and the
blocks other apps add through ``settings.HEALTH_CHECKS`` (core imports no feature app)."""

import time
from typing import Any

from celery.exceptions import TimeoutError as CeleryTimeout
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django.utils.module_loading import import_string

from core.tasks import ping


def _timed(check: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        result = check()
    except Exception as exc:  # a health check reports failures, it never raises
        result = {"status": "unhealthy", "error": exc.__class__.__name__}
    result.setdefault("status", "healthy")
    result["latencyMs"] = round((time.perf_counter() - started) * 1000, 1)
    return result


def _database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"engine": connection.vendor}


def _broker() -> dict[str, Any]:
    # The app the ping task runs on (config's): core names no project module itself.
    with ping.app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        return {"transport": conn.transport_cls}


def _worker() -> dict[str, Any]:
    timeout = settings.HEALTH_WORKER_TIMEOUT
    result = ping.apply_async(expires=timeout)
    try:
        answer = result.get(timeout=timeout, propagate=True)
    except CeleryTimeout:
        result.forget()
        return {"status": "unhealthy", "error": f"no worker answered within {timeout:g}s"}
    return {"status": "healthy" if answer == "pong" else "unhealthy"}


def _openai() -> dict[str, Any]:
    configured = bool(settings.OPENAI_API_KEY)
    return {"status": "healthy" if configured else "not_configured", "configured": configured}


def system_health(*, user: Any = None) -> tuple[dict[str, Any], bool]:
    """Return the seed-003 health body and whether every required part is healthy.
    Contributed blocks are reported for ``user`` and never make the whole unhealthy."""
    services = {
        "database": _timed(_database),
        "broker": _timed(_broker),
        "worker": _timed(_worker),
        "openai": _timed(_openai),
    }
    for name, path in settings.HEALTH_CHECKS.items():
        check = import_string(path)
        services[name] = _timed(lambda check=check: check(user=user))
    required = ("database", "broker", "worker")
    healthy = all(services[name]["status"] == "healthy" for name in required)
    body = {
        "status": "healthy" if healthy else "unhealthy",
        "timestamp": timezone.now().isoformat().replace("+00:00", "Z"),
        "services": services,
    }
    return body, healthy
