"""Fetched organisation usage attributed to the owner's stored keys: the fake admin API
lists the organisation's project keys redacted (``sk-proj-Ab...Wx9z``, how much shows
varies), each is matched against the plaintext of the owner's stored OpenAI keys, and
usage_summary's by_key and by_project show the usage per stored key."""

import os
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.db.models import Sum

from keys.models import KeyAuditEvent
from keys.services import Origin, api_key_delete
from tests.fakes.anthropic_admin import FakeAnthropicAdmin
from tests.fakes.openai_admin import PROJECTS_PATH, FakeOpenAIAdmin
from tests.keys.factories import ApiKeyFactory, ProjectFactory
from usage.models import ExternalKeyLink, UsageBucket, UsageDaily
from usage.selectors import usage_summary
from usage.services.fetching import usage_fetch_for_key

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 5, 12, 30, tzinfo=UTC)
MINI = "gpt-4o-mini-2024-07-18"
ADMIN = "sk-admin-FakeOrgAdminKey0001000000000000000000000000Zz01"
WEB = "sk-proj-WebApp0001aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaT3x9"
BATCH = "sk-svcacct-Batch002bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbQ7w2"
NOT_STORED = "sk-proj-Intern003ccccccccccccccccccccccccccccccccccK8m4"


@pytest.fixture
def fake(settings):
    server = FakeOpenAIAdmin({ADMIN}).start()
    settings.OPENAI_BASE_URL = server.base_url
    server.add_project("proj_web", "Web")
    server.add_project("proj_jobs", "Jobs")
    # OpenAI shows more or less of each end, depending on the key.
    server.add_project_key(
        "proj_web", key_id="key_web", name="web", redacted_value=f"{WEB[:10]}...{WEB[-4:]}"
    )
    server.add_project_key(
        "proj_jobs", key_id="key_batch", name="batch", redacted_value=f"{BATCH[:3]}...{BATCH[-3:]}"
    )
    server.add_project_key(
        "proj_web",
        key_id="key_intern",
        name="intern",
        redacted_value=f"{NOT_STORED[:8]}...{NOT_STORED[-4:]}",
    )
    yield server
    server.stop()


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def use(fake, key_id, *, hours_ago=3, tokens=1000, project="proj_web"):
    fake.add_usage(
        NOW - timedelta(hours=hours_ago),
        model=MINI,
        project_id=project,
        api_key_id=key_id,
        input_tokens=tokens,
        output_tokens=tokens // 10,
    )


def admin_key(owner):
    return ApiKeyFactory(owner=owner, secret=ADMIN, name="org admin")


def opened_for_attribution(owner):
    return KeyAuditEvent.objects.filter(
        owner=owner,
        action=KeyAuditEvent.Action.USED,
        detail__purpose="usage_attribution",
    ).count()


def tokens_by_key(owner, *, start=date(2026, 3, 1), end=date(2026, 3, 5)):
    """usage_summary's by_key (day granularity, read from the rollup) as key → tokens."""
    summary = usage_summary(owner=owner, start=start, end=end, granularity="day")
    return {line.key_id: line.figures.input_tokens for line in summary.by_key}


def assert_rollup_agrees(owner):
    per_key = {}
    for model in (UsageBucket, UsageDaily):
        rows = model.objects.filter(owner=owner).values("api_key_id", "project_id")
        per_key[model] = {
            (r["api_key_id"], r["project_id"]): r["total"]
            for r in rows.annotate(total=Sum("input_tokens")).order_by()
        }
    assert per_key[UsageBucket] == per_key[UsageDaily]


def test_usage_of_stored_keys_appears_per_key_and_per_project(fake, frozen, alice):
    web_project = ProjectFactory(owner=alice, name="Web shop")
    web = ApiKeyFactory(owner=alice, secret=WEB, project=web_project)
    batch = ApiKeyFactory(owner=alice, secret=BATCH)
    use(fake, "key_web", tokens=1000)
    use(fake, "key_batch", tokens=300, project="proj_jobs")
    use(fake, "key_intern", tokens=50)
    key = admin_key(alice)

    assert usage_fetch_for_key(api_key_id=key.pk).status == "ok"

    assert tokens_by_key(alice) == {web.pk: 1000, batch.pk: 300, None: 50}
    summary = usage_summary(
        owner=alice, start=date(2026, 3, 1), end=date(2026, 3, 5), granularity="day"
    )
    assert {p.project_id: p.figures.input_tokens for p in summary.by_project} == {
        web_project.pk: 1000,
        None: 350,
    }
    links = ExternalKeyLink.objects.filter(owner=alice).values_list("external_key_id", "api_key")
    assert sorted(links) == [("key_batch", batch.pk), ("key_web", web.pk)]
    assert_rollup_agrees(alice)


def test_usage_stored_before_the_key_was_added_moves_to_it(fake, frozen, alice):
    key = admin_key(alice)
    use(fake, "key_web", hours_ago=40, tokens=700)
    usage_fetch_for_key(api_key_id=key.pk)
    assert tokens_by_key(alice) == {None: 700}

    web = ApiKeyFactory(owner=alice, secret=WEB)
    frozen.shift(timedelta(days=3))  # the first bucket is now out of the 48 h re-read
    use(fake, "key_web", hours_ago=-70, tokens=20)  # an hour before the new now
    usage_fetch_for_key(api_key_id=key.pk)

    assert tokens_by_key(alice, end=date(2026, 3, 8)) == {web.pk: 720}
    assert_rollup_agrees(alice)


def test_two_stored_keys_that_fit_one_redacted_value_get_none_of_its_usage(fake, frozen, alice):
    """The same prefix and suffix around a different middle: either could be the key."""
    ApiKeyFactory(owner=alice, secret=WEB, name="web")
    ApiKeyFactory(owner=alice, secret=WEB[:10] + "Z" * 36 + WEB[-4:], name="web copy")
    use(fake, "key_web", tokens=500)
    key = admin_key(alice)

    usage_fetch_for_key(api_key_id=key.pk)

    assert tokens_by_key(alice) == {None: 500}
    assert not ExternalKeyLink.objects.filter(owner=alice).exists()


def test_the_next_fetch_opens_no_stored_key_and_lists_no_keys(fake, frozen, alice):
    web = ApiKeyFactory(owner=alice, secret=WEB)
    use(fake, "key_web", tokens=1000)
    use(fake, "key_intern", tokens=50)  # in the listing, but no stored key fits
    key = admin_key(alice)
    usage_fetch_for_key(api_key_id=key.pk)
    opened, listings = opened_for_attribution(alice), len(fake.requests_to(PROJECTS_PATH))
    assert opened == 1 and listings == 1

    frozen.shift(timedelta(minutes=15))
    usage_fetch_for_key(api_key_id=key.pk)

    assert opened_for_attribution(alice) == opened
    assert len(fake.requests_to(PROJECTS_PATH)) == listings
    assert tokens_by_key(alice) == {web.pk: 1000, None: 50}  # the re-read stays attributed
    assert_rollup_agrees(alice)


def test_a_new_stored_key_is_matched_on_the_next_fetch(fake, frozen, alice):
    """Ids that matched nothing are checked again once the stored keys change."""
    ApiKeyFactory(owner=alice, secret=WEB)
    use(fake, "key_batch", tokens=300, project="proj_jobs")
    key = admin_key(alice)
    usage_fetch_for_key(api_key_id=key.pk)
    assert tokens_by_key(alice) == {None: 300}

    batch = ApiKeyFactory(owner=alice, secret=BATCH)
    usage_fetch_for_key(api_key_id=key.pk)

    assert tokens_by_key(alice) == {batch.pk: 300}


def test_bobs_stored_key_never_matches_alices_organisation(fake, frozen, alice, bob):
    bobs = ApiKeyFactory(owner=bob, secret=WEB)
    use(fake, "key_web", tokens=1000)
    key = admin_key(alice)

    usage_fetch_for_key(api_key_id=key.pk)

    assert tokens_by_key(alice) == {None: 1000}
    assert not ExternalKeyLink.objects.filter(api_key=bobs).exists()
    assert opened_for_attribution(bob) == 0
    assert tokens_by_key(bob) == {}


def test_a_failed_key_listing_leaves_the_fetch_ok_and_the_next_one_attributes(fake, frozen, alice):
    web = ApiKeyFactory(owner=alice, secret=WEB)
    use(fake, "key_web", tokens=1000)
    key = admin_key(alice)
    fake.fail(PROJECTS_PATH, 500)

    result = usage_fetch_for_key(api_key_id=key.pk)

    assert (result.status, result.buckets) == ("ok", 1)
    assert tokens_by_key(alice) == {None: 1000}
    usage_fetch_for_key(api_key_id=key.pk)
    assert tokens_by_key(alice) == {web.pk: 1000}


def test_a_stored_key_that_cannot_be_decrypted_does_not_stop_the_others_matching(
    fake, frozen, alice, settings
):
    ring = settings.ENCRYPTION_KEYS
    settings.ENCRYPTION_KEYS = [os.urandom(32)]  # sealed with a key the operator then lost
    ApiKeyFactory(owner=alice, secret=BATCH)
    settings.ENCRYPTION_KEYS = ring
    web = ApiKeyFactory(owner=alice, secret=WEB)
    use(fake, "key_web", tokens=1000)
    use(fake, "key_batch", tokens=300, project="proj_jobs")
    key = admin_key(alice)

    assert usage_fetch_for_key(api_key_id=key.pk).status == "ok"

    assert tokens_by_key(alice) == {web.pk: 1000, None: 300}


def test_a_deleted_key_keeps_its_usage_unattributed_and_the_fetch_goes_on(fake, frozen, alice):
    web = ApiKeyFactory(owner=alice, secret=WEB)
    use(fake, "key_web", tokens=1000)
    key = admin_key(alice)
    usage_fetch_for_key(api_key_id=key.pk)

    api_key_delete(acting_user=alice, api_key=web, origin=Origin(KeyAuditEvent.Source.API))
    assert usage_fetch_for_key(api_key_id=key.pk).status == "ok"

    assert not ExternalKeyLink.objects.filter(owner=alice).exists()
    assert tokens_by_key(alice) == {None: 1000}
    assert_rollup_agrees(alice)


ANTHROPIC_ADMIN = "sk-ant-admin01-FakeAnthropicAdminKey0001000000000000000000AA"
CLAUDE = "sk-ant-api03-ClaudeApp0001dddddddddddddddddddddddddddddddddddddigAA"


@pytest.fixture
def anthropic_fake(settings):
    server = FakeAnthropicAdmin({ANTHROPIC_ADMIN}).start()
    settings.ANTHROPIC_BASE_URL = server.base_url
    # Anthropic's partial_key_hint: the key's first 15 characters and its last 4.
    server.add_api_key(
        "apikey_app", name="app", hint=f"{CLAUDE[:15]}...{CLAUDE[-4:]}", workspace_id="wrkspc_a"
    )
    yield server
    server.stop()


def test_anthropic_usage_is_attributed_by_partial_key_hint(anthropic_fake, frozen, alice):
    claude = ApiKeyFactory(owner=alice, provider="anthropic", secret=CLAUDE)
    anthropic_fake.add_usage(
        NOW - timedelta(days=1),
        model="claude-sonnet-4-5-20250929",
        api_key_id="apikey_app",
        uncached=800,
        output=100,
    )
    anthropic_fake.add_usage(
        NOW - timedelta(days=1),
        model="claude-sonnet-4-5-20250929",
        api_key_id="apikey_else",
        uncached=40,
        output=4,
    )
    key = ApiKeyFactory(owner=alice, provider="anthropic", secret=ANTHROPIC_ADMIN)

    assert usage_fetch_for_key(api_key_id=key.pk).status == "ok"

    assert tokens_by_key(alice) == {claude.pk: 800, None: 40}
    assert_rollup_agrees(alice)


@pytest.mark.parametrize("redacted", ["sk-...", "*", "", "sk-proj-WebApp0001", "...T3", ".*...$"])
def test_a_redacted_value_that_can_match_no_key_opens_none(fake, frozen, alice, redacted):
    """A listing entry too vague to tell keys apart (nothing hidden, too little of the end
    shown, regex characters) matches nothing, so no stored key is decrypted for it."""
    fake.add_project_key("proj_web", key_id="key_vague", name="vague", redacted_value=redacted)
    web = ApiKeyFactory(owner=alice, secret=WEB)
    ApiKeyFactory(owner=alice, secret=BATCH)
    use(fake, "key_vague", tokens=70)
    key = admin_key(alice)

    assert usage_fetch_for_key(api_key_id=key.pk).status == "ok"

    assert opened_for_attribution(alice) == 0
    assert tokens_by_key(alice) == {None: 70}
    assert not ExternalKeyLink.objects.filter(api_key=web).exists()
