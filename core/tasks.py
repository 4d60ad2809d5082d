"""Small housekeeping tasks and the health-check round trip."""

from celery import shared_task
from django.core.management import call_command


@shared_task(name="core.tasks.ping", acks_late=False, soft_time_limit=5, time_limit=10)
def ping() -> str:
    """Answer ``pong``: the health check times a round trip to a worker with it."""
    return "pong"


@shared_task(name="core.tasks.purge_expired_web_sessions")
def purge_expired_web_sessions() -> None:
    """Delete expired browser sessions (Django's ``clearsessions``)."""
    call_command("clearsessions")
