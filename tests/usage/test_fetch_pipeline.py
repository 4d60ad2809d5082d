"""The provider-generic fetch: which keys have usage to fetch, one task per key across
OpenAI, Anthropic and OpenRouter (each against its fake on 127.0.0.1), one refused key
never stopping the others, and a backfill window that never rewinds the cursor."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from keys.models import ApiKey
from tests.fakes.anthropic_admin import FakeAnthropicAdmin
from tests.fakes.openai_admin import USAGE_PATH as OPENAI_USAGE_PATH
from tests.fakes.openai_admin import FakeOpenAIAdmin
from tests.fakes.openrouter_usage import FakeOpenRouterUsage
from tests.keys.factories import ApiKeyFactory
from usage import tasks
from usage.models import Source, UsageBucket, UsageFetchState
from usage.providers import fetcher_for
from usage.services.fetching import usage_fetch_for_key

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 5, 12, 30, tzinfo=UTC)
OPENAI = [f"sk-admin-PipelineOrgAdminKey{n}000000000000000000000000Zz01" for n in range(2)]
ANTHROPIC = [f"sk-ant-admin01-PipelineAdminKey{n}0000000000000000000000AA" for n in range(3)]
ANTHROPIC_REVOKED = "sk-ant-admin01-PipelineAdminKeyRevoked000000000000000000AA"
OPENROUTER = "sk-or-v1-" + "c3" * 32
MANAGEMENT = "sk-or-v1-" + "d4" * 32


@pytest.fixture
def fakes(settings):
    servers = {
        "openai": FakeOpenAIAdmin(set(OPENAI)).start(),
        "anthropic": FakeAnthropicAdmin(set(ANTHROPIC)).start(),
        "openrouter": FakeOpenRouterUsage(NOW.date()).start(),
    }
    servers["openrouter"].add_key(OPENROUTER, usage_daily=0.5)
    servers["openrouter"].add_key(MANAGEMENT, management=True)
    settings.OPENAI_BASE_URL = servers["openai"].base_url
    settings.ANTHROPIC_BASE_URL = servers["anthropic"].base_url
    settings.OPENROUTER_BASE_URL = servers["openrouter"].base_url
    settings.KEYS_VALIDATION_TIMEOUT = 2.0
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def key(owner, provider, secret, **extra):
    return ApiKeyFactory(owner=owner, provider=provider, secret=secret, **extra)


@pytest.mark.parametrize(
    ("provider", "kind", "source"),
    [
        ("openai", "admin", Source.OPENAI_ADMIN),
        ("anthropic", "admin", Source.ANTHROPIC_ADMIN),
        ("openrouter", "api", Source.OPENROUTER),
        ("openrouter", "admin", Source.OPENROUTER),
        ("openai", "api", None),
        ("anthropic", "api", None),
        ("gemini", "api", None),
    ],
)
def test_the_registry_names_a_fetcher_for_each_kind_of_key_with_usage(provider, kind, source):
    fetcher = fetcher_for(provider, kind)
    assert (fetcher.source if fetcher else None) == source


def test_one_task_per_usable_key_of_every_provider_and_one_refused_key_stops_none(
    fakes, frozen, alice, bob, eager, django_capture_on_commit_callbacks
):
    fakes["openai"].add_usage(NOW - timedelta(hours=2), model="gpt-4o", input_tokens=10)
    fakes["anthropic"].add_usage(NOW - timedelta(hours=2), model="claude-sonnet-4-5", uncached=7)
    good = [
        key(alice, "openai", OPENAI[0]),
        key(bob, "openai", OPENAI[1]),
        key(alice, "anthropic", ANTHROPIC[0]),
        key(bob, "anthropic", ANTHROPIC[1]),
        key(alice, "openrouter", OPENROUTER),
    ]
    management = key(alice, "openrouter", MANAGEMENT, kind=ApiKey.Kind.ADMIN)
    revoked = key(alice, "anthropic", ANTHROPIC_REVOKED)
    # No usage to fetch: project keys, and a key already known to be invalid.
    key(alice, "openai", "sk-proj-" + "p" * 40)
    key(alice, "anthropic", "sk-ant-api03-" + "q" * 40)
    key(alice, "anthropic", ANTHROPIC[2], status=ApiKey.Status.INVALID)

    with django_capture_on_commit_callbacks(execute=True) as queued:
        assert tasks.fetch_usage_all.apply().get() == 7
    assert len(queued) == 7

    for stored in [*good, management]:
        assert UsageFetchState.objects.get(api_key=stored).last_status == "ok", stored
    state = UsageFetchState.objects.get(api_key=revoked)
    assert state.last_status == "invalid_key" and "Anthropic rejected this key" in state.last_error
    revoked.refresh_from_db()
    assert revoked.status == ApiKey.Status.INVALID
    sources = set(UsageBucket.objects.filter(owner=alice).values_list("source", flat=True))
    assert sources == {Source.OPENAI_ADMIN, Source.ANTHROPIC_ADMIN, Source.OPENROUTER}
    assert set(UsageBucket.objects.filter(owner=bob).values_list("source", flat=True)) == {
        Source.OPENAI_ADMIN,
        Source.ANTHROPIC_ADMIN,
    }

    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.fetch_usage_all.apply().get() == 6  # the refused key is left alone


def test_a_backfill_reads_from_since_and_never_rewinds_the_cursor(fakes, frozen, alice):
    stored = key(alice, "openai", OPENAI[0])
    fakes["openai"].add_usage(NOW - timedelta(days=9), model="gpt-4o", input_tokens=5)
    usage_fetch_for_key(api_key_id=stored.pk)
    assert not UsageBucket.objects.exists()  # nine days back: before the first window

    since = NOW - timedelta(days=10)
    assert usage_fetch_for_key(api_key_id=stored.pk, since=since).status == "ok"

    start = int(fakes["openai"].requests_to(OPENAI_USAGE_PATH)[-1].params["start_time"][0])
    assert start == int(since.replace(minute=0).timestamp())
    assert UsageBucket.objects.get().input_tokens == 5
    assert UsageFetchState.objects.get(api_key=stored).cursor == NOW
