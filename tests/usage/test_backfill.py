"""``manage.py backfill_usage``: a month of history for every key with usage to fetch (or
one user's), against the fake OpenAI admin API, with a progress bar and a summary; one
failing key never stops the others; bad arguments are refused before anything is fetched."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db.models import Sum

from keys.models import ApiKey
from tests.fakes.openai_admin import USAGE_PATH, FakeOpenAIAdmin
from tests.keys.factories import ApiKeyFactory
from usage.models import UsageBucket, UsageDaily, UsageFetchState

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 31, 12, 30, tzinfo=UTC)
MINI = "gpt-4o-mini-2024-07-18"


def admin_secret(n: int) -> str:
    return f"sk-admin-FakeOrgAdminKey{n:04d}000000000000000000000000Zz01"


ALICE_ORG, BOB_ORG, REVOKED = admin_secret(1), admin_secret(2), admin_secret(99)


@pytest.fixture
def fake(settings):
    server = FakeOpenAIAdmin({ALICE_ORG, BOB_ORG}).start()
    settings.OPENAI_BASE_URL = server.base_url
    for day in range(1, 40):  # one hour of usage a day, 39 days back
        server.add_usage(NOW - timedelta(days=day), model=MINI, input_tokens=100, requests=2)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def backfill(*args):
    out, err = StringIO(), StringIO()
    call_command("backfill_usage", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def input_tokens(owner):
    buckets = UsageBucket.objects.filter(owner=owner).aggregate(t=Sum("input_tokens"))["t"]
    daily = UsageDaily.objects.filter(owner=owner).aggregate(t=Sum("input_tokens"))["t"]
    assert buckets == daily  # the rollup follows
    return buckets or 0


def test_it_fills_the_last_30_days_with_a_progress_bar_and_a_summary(fake, alice):
    key = ApiKeyFactory(owner=alice, secret=ALICE_ORG)

    out, err = backfill("--days", "30")

    assert UsageBucket.objects.filter(owner=alice).count() == 30  # days 1..30, not 31..39
    assert input_tokens(alice) == 3000
    assert "Fetching usage" in err and "1/1" in err
    assert "Backfilled 1 of 1 key(s) over the last 30 days: 30 buckets written." in out
    assert UsageFetchState.objects.get(api_key=key).last_status == "ok"
    # An hourly month is read in pages as large as OpenAI allows (168 hours each).
    assert len(fake.requests_to(USAGE_PATH)) == 5


def test_running_it_twice_changes_nothing(fake, alice):
    ApiKeyFactory(owner=alice, secret=ALICE_ORG)
    backfill("--days", "30", "--no-progress")
    first = (UsageBucket.objects.count(), input_tokens(alice))

    backfill("--days", "30", "--no-progress")

    assert (UsageBucket.objects.count(), input_tokens(alice)) == first


def test_one_failing_key_does_not_stop_the_others(fake, alice, bob, charlie):
    busy = ApiKeyFactory(owner=charlie, secret=ALICE_ORG, name="busy admin")
    revoked = ApiKeyFactory(owner=alice, secret=REVOKED, name="old admin")
    ApiKeyFactory(owner=bob, secret=BOB_ORG)
    fake.fail(USAGE_PATH, 503)  # the first request: the oldest key's, charlie's

    with pytest.raises(CommandError, match="2 key"):
        backfill("--days", "7", "--no-progress")

    assert input_tokens(bob) == 700
    revoked.refresh_from_db()
    assert revoked.status == ApiKey.Status.INVALID
    assert UsageFetchState.objects.get(api_key=busy).last_status == "error"


def test_the_failures_are_named_in_the_summary(fake, alice, bob):
    ApiKeyFactory(owner=alice, secret=REVOKED, name="old admin")
    ApiKeyFactory(owner=bob, secret=BOB_ORG)
    out = StringIO()

    with pytest.raises(CommandError):
        call_command("backfill_usage", "--days", "7", "--no-progress", stdout=out)

    summary = out.getvalue()
    assert "Backfilled 1 of 2 key(s)" in summary
    assert "old admin" in summary and alice.email in summary and "rejected" in summary
    assert REVOKED not in summary


def test_user_limits_it_to_that_users_keys(fake, alice, bob):
    ApiKeyFactory(owner=alice, secret=ALICE_ORG)
    ApiKeyFactory(owner=bob, secret=BOB_ORG)

    out, _ = backfill("--days", "3", "--user", alice.email.upper(), "--no-progress")

    assert input_tokens(alice) == 300 and input_tokens(bob) == 0
    assert f"of {alice.email}" in out


def test_keys_without_usage_to_fetch_are_left_alone(fake, alice):
    ApiKeyFactory(owner=alice)  # an OpenAI project key: its usage comes with the admin key's

    out, _ = backfill("--days", "30", "--no-progress")

    assert "No keys with usage to fetch." in out
    assert fake.requests == []


def test_an_unknown_email_is_refused(fake, alice):
    ApiKeyFactory(owner=alice, secret=ALICE_ORG)

    with pytest.raises(CommandError, match="No user with email 'nobody@example.com'"):
        backfill("--user", "nobody@example.com")

    assert fake.requests == []


@pytest.mark.parametrize("days", ["0", "-3", "91", "thirty"])
def test_days_out_of_range_or_not_a_number_are_refused(fake, alice, days):
    ApiKeyFactory(owner=alice, secret=ALICE_ORG)

    with pytest.raises(CommandError, match="days"):
        backfill("--days", days)

    assert fake.requests == [] and not UsageBucket.objects.exists()
