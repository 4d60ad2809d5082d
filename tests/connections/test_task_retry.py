"""The beat's token refresh retries a provider that is down or busy, and only then.

The task runs eagerly (``apply``), so a retry runs at once in this process; the delay it
asked for is read from Celery's ``task_retry`` signal.
"""

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from celery.signals import task_retry
from django.utils import timezone

from connections import tasks
from connections.models import Connection
from core.fields import decrypt_field
from tests.connections.factories import ConnectionFactory
from tests.fakes.atlassian import DROP, TOKEN_PATHS

pytestmark = pytest.mark.django_db

TOKEN_PATH = TOKEN_PATHS["atlassian"]


@pytest.fixture
def expiring(oauth, alice):
    """Alice's Jira connection, holding real tokens of the fake, expiring in 4 minutes."""
    issued = oauth.issue_tokens()
    return ConnectionFactory(
        user=alice,
        access_token=issued["access_token"],
        refresh_token=issued["refresh_token"],
        expires_at=timezone.now() + timedelta(minutes=4),
    )


@pytest.fixture
def retry_delays():
    """The countdown of every retry the refresh task asks for."""
    delays = []

    def record(sender=None, reason=None, **kwargs):
        if sender.name == tasks.refresh_connection.name:
            delays.append(reason.when)

    task_retry.connect(record, weak=False)
    yield delays
    task_retry.disconnect(record)


def _token_calls(fake) -> int:
    return fake.requests.count(("POST", TOKEN_PATH))


def _refreshed(fake, connection) -> bool:
    """The connection holds a new access token that the provider accepts."""
    old = decrypt_field(connection, "access_token")
    connection.refresh_from_db()
    token = decrypt_field(connection, "access_token")
    answer = httpx.get(f"{fake.atlassian_api_url}/me", headers={"Authorization": f"Bearer {token}"})
    return token != old and answer.status_code == 200 and connection.last_error == ""


def test_a_refresh_that_sees_503_is_retried_with_backoff_and_succeeds(
    oauth, expiring, retry_delays
):
    oauth.fail(TOKEN_PATH, 503)
    result = tasks.refresh_connection.apply(args=[expiring.pk])
    assert result.successful()
    assert _token_calls(oauth) == 2
    assert _refreshed(oauth, expiring)
    assert expiring.expires_at > timezone.now() + timedelta(minutes=55)
    # No Retry-After: the first retry waits 10 s plus up to 10 s of jitter.
    assert len(retry_delays) == 1 and 10 <= retry_delays[0] <= 20


def test_a_dropped_connection_is_retried(oauth, expiring, retry_delays):
    oauth.fail(TOKEN_PATH, DROP)
    assert tasks.refresh_connection.apply(args=[expiring.pk]).successful()
    assert _token_calls(oauth) == 2 and len(retry_delays) == 1
    assert _refreshed(oauth, expiring)


def test_backoff_grows_between_retries(oauth, expiring, retry_delays):
    oauth.fail(TOKEN_PATH, 502, 500, 504)
    assert tasks.refresh_connection.apply(args=[expiring.pk]).successful()
    assert _refreshed(oauth, expiring)
    first, second, third = retry_delays
    assert 10 <= first <= 20 and 20 <= second <= 40 and 40 <= third <= 80


def test_429_is_retried_after_the_seconds_retry_after_asks_for(oauth, expiring, retry_delays):
    oauth.retry_after = "7"
    oauth.fail(TOKEN_PATH, 429, 429)
    assert tasks.refresh_connection.apply(args=[expiring.pk]).successful()
    assert retry_delays == [7.0, 7.0]
    assert _refreshed(oauth, expiring)


def test_retry_after_as_an_http_date_is_honoured(oauth, expiring, retry_delays, time_machine):
    time_machine.move_to(datetime(2026, 10, 21, 7, 28, tzinfo=UTC), tick=False)
    Connection.objects.update(expires_at=timezone.now() + timedelta(minutes=4))
    oauth.retry_after = "Wed, 21 Oct 2026 07:28:30 GMT"
    oauth.fail(TOKEN_PATH, 503)
    assert tasks.refresh_connection.apply(args=[expiring.pk]).successful()
    assert retry_delays == [30.0]


def test_a_very_long_retry_after_is_capped(oauth, expiring, retry_delays):
    oauth.retry_after = "86400"
    oauth.fail(TOKEN_PATH, 429)
    assert tasks.refresh_connection.apply(args=[expiring.pk]).successful()
    assert retry_delays == [tasks.MAX_RETRY_AFTER]


def test_invalid_grant_marks_the_connection_for_reauthorisation_without_retrying(
    oauth, expiring, retry_delays
):
    oauth.revoke_refresh_tokens()
    assert tasks.refresh_connection.apply(args=[expiring.pk]).successful()
    assert retry_delays == [] and _token_calls(oauth) == 1
    expiring.refresh_from_db()
    assert expiring.status == Connection.Status.NEEDS_REAUTH


def test_a_provider_down_for_longer_is_given_up_and_the_connection_kept(
    oauth, expiring, retry_delays
):
    oauth.fail(TOKEN_PATH, *[503] * (tasks.REFRESH_RETRIES + 1))
    assert tasks.refresh_connection.apply(args=[expiring.pk]).successful()
    assert _token_calls(oauth) == tasks.REFRESH_RETRIES + 1
    assert len(retry_delays) == tasks.REFRESH_RETRIES
    # Not marked for re-authorisation: the refresh token is intact, so the next beat run
    # refreshes it once the provider is back.
    expiring.refresh_from_db()
    assert expiring.status == Connection.Status.ACTIVE
    assert decrypt_field(expiring, "refresh_token") in oauth.live_refresh_tokens()
    assert tasks.refresh_connection.apply(args=[expiring.pk]).successful()
    assert _refreshed(oauth, expiring)


def test_a_busy_bitbucket_is_retried_too(oauth, alice, retry_delays):
    issued = oauth.issue_tokens("bitbucket", "account email")
    connection = ConnectionFactory(
        user=alice,
        service="bitbucket",
        access_token=issued["access_token"],
        refresh_token=issued["refresh_token"],
        expires_at=timezone.now() + timedelta(minutes=4),
    )
    oauth.fail(TOKEN_PATHS["bitbucket"], 503)
    assert tasks.refresh_connection.apply(args=[connection.pk]).successful()
    assert len(retry_delays) == 1
    connection.refresh_from_db()
    assert decrypt_field(connection, "access_token") != issued["access_token"]
