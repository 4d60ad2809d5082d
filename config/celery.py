"""The Celery application: settings come from Django's (``CELERY_*``)."""

import os
from logging.config import dictConfig
from typing import Any

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("kay")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.setup_logging.connect
def _log_like_django(**kwargs: Any) -> None:
    """Workers and beat log through Django's ``LOGGING`` (its redacting filter): without a
    receiver here Celery replaces the root handlers with its own, unfiltered ones."""
    from django.conf import settings

    dictConfig(settings.LOGGING)
