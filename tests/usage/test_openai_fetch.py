"""OpenAI organisation usage and costs through the real ``openai`` SDK, against the fake
admin API on 127.0.0.1 (tests/fakes/openai_admin.py): paging, what goes on the wire,
costs in micro-dollars, project keys, and vendor failures as Kay's errors."""

import socket
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from urllib.parse import unquote

import pytest
from openai.types.admin.organization import UsageCostsResponse

from core.errors import ProviderError, ProviderUnavailable
from tests.fakes.openai_admin import COSTS_PATH, USAGE_PATH, FakeOpenAIAdmin
from tests.fakes.server import load
from usage.providers import KeyRejected
from usage.providers.openai import (
    _add_costs,
    _pages,
    fetch_openai_usage,
    line_item_model,
    openai_project_keys,
    retry_after,
)

ADMIN = "sk-admin-FakeOrgAdminKey0000000000000000000000Zz01"
DAY = datetime(2025, 1, 10, tzinfo=UTC)
MINI = "gpt-4o-mini-2024-07-18"


@pytest.fixture
def fake(settings):
    server = FakeOpenAIAdmin({ADMIN}).start()
    settings.OPENAI_BASE_URL = server.base_url
    yield server
    server.stop()


def fetch(**kwargs):
    args = {"admin_key": ADMIN, "start": DAY, "end": DAY + timedelta(days=1), "bucket_width": "1d"}
    return fetch_openai_usage(**{**args, **kwargs})


# --- Paging and the wire -------------------------------------------------------------------


def test_hourly_usage_is_read_page_by_page_with_the_largest_limit(fake):
    fake.add_usage(DAY + timedelta(hours=5, minutes=3), model=MINI, input_tokens=100)
    fake.add_usage(DAY + timedelta(hours=200), model=MINI, input_tokens=7, output_tokens=3)

    rows = fetch(end=DAY + timedelta(days=10), bucket_width="1h")

    calls = fake.requests_to(USAGE_PATH)
    assert len(calls) == 2  # 240 hours, at most 168 a page
    assert [c.params["limit"] for c in calls] == [["168"], ["168"]]
    assert "page" not in calls[0].params
    assert calls[1].params["page"] == [fake_next_page(fake, calls[0])]
    assert [(r.bucket_start, r.granularity, r.input_tokens, r.output_tokens) for r in rows] == [
        (DAY + timedelta(hours=5), "hour", 100, 0),
        (DAY + timedelta(hours=200), "hour", 7, 3),
    ]
    assert all(r.cost_micros is None for r in rows)  # priced from the catalog
    assert fake.requests_to(COSTS_PATH) == []  # OpenAI's costs are daily only


def fake_next_page(fake, request):
    """The ``next_page`` the fake gave in answer to ``request``."""
    status, body, _ = fake.respond(request)
    assert status == 200 and body["has_more"]
    return body["next_page"]


def test_daily_usage_takes_as_many_pages_as_the_window_needs(fake):
    for day in (0, 40, 69):
        fake.add_usage(DAY + timedelta(days=day), model=MINI, input_tokens=10 + day, requests=2)

    rows = fetch(end=DAY + timedelta(days=70))

    assert [c.params["limit"] for c in fake.requests_to(USAGE_PATH)] == [["31"]] * 3
    assert [c.params["limit"] for c in fake.requests_to(COSTS_PATH)] == [["180"]]
    assert [(r.bucket_start, r.input_tokens, r.requests) for r in rows] == [
        (DAY, 10, 2),
        (DAY + timedelta(days=40), 50, 2),
        (DAY + timedelta(days=69), 79, 2),
    ]


def test_group_by_goes_on_the_wire_as_bracketed_lists(fake):
    fetch()
    usage, costs = fake.requests_to(USAGE_PATH)[0], fake.requests_to(COSTS_PATH)[0]
    query = unquote(usage.query)
    for field in ("model", "project_id", "api_key_id"):
        assert f"group_by[]={field}" in query
    assert usage.params["group_by[]"] == ["model", "project_id", "api_key_id"]
    assert costs.params["group_by[]"] == ["project_id", "line_item", "api_key_id"]
    assert usage.params["bucket_width"] == ["1d"] and costs.params["bucket_width"] == ["1d"]
    assert usage.headers["authorization"] == f"Bearer {ADMIN}"


def test_the_window_is_widened_to_whole_buckets(fake):
    """A bucket cut short by the window would overwrite a whole one when stored."""
    fetch(start=DAY + timedelta(hours=13, minutes=5), end=DAY + timedelta(days=2, hours=1))
    params = fake.requests_to(USAGE_PATH)[0].params
    assert params["start_time"] == [str(int(DAY.timestamp()))]
    assert params["end_time"] == [str(int((DAY + timedelta(days=3)).timestamp()))]
    hourly_end = DAY + timedelta(hours=5)
    fetch(start=DAY + timedelta(hours=2, minutes=59), end=hourly_end, bucket_width="1h")
    params = fake.requests_to(USAGE_PATH)[-1].params
    assert params["start_time"] == [str(int((DAY + timedelta(hours=2)).timestamp()))]
    assert params["end_time"] == [str(int(hourly_end.timestamp()))]


def test_an_empty_window_asks_nothing(fake):
    assert fetch(start=DAY, end=DAY) == []
    assert fake.requests == []


def test_rows_are_per_model_project_and_key_with_cached_tokens(fake):
    fake.add_usage(
        DAY,
        model=MINI,
        project_id="proj_a",
        api_key_id="key_1",
        input_tokens=50,
        cached_tokens=20,
        output_tokens=5,
    )
    fake.add_usage(
        DAY + timedelta(hours=3),
        model=MINI,
        project_id="proj_a",
        api_key_id="key_1",
        input_tokens=50,
        cached_tokens=10,
        output_tokens=5,
    )
    fake.add_usage(DAY, model=MINI, project_id="proj_a", api_key_id="key_2", input_tokens=1)
    fake.add_usage(
        DAY, model="o3-2025-04-16", project_id="proj_b", api_key_id="key_3", input_tokens=2
    )

    rows = fetch()

    by_identity = {(r.model, r.external_project_id, r.external_key_id): r for r in rows}
    assert set(by_identity) == {
        (MINI, "proj_a", "key_1"),
        (MINI, "proj_a", "key_2"),
        ("o3-2025-04-16", "proj_b", "key_3"),
    }
    first = by_identity[(MINI, "proj_a", "key_1")]
    assert (first.input_tokens, first.cached_tokens, first.output_tokens, first.requests) == (
        100,
        30,
        10,
        2,
    )
    assert all(r.provider == "openai" and r.api_key_id is None for r in rows)


def test_a_real_response_is_read_bucket_by_bucket(fake):
    """The cookbook's 26 real daily buckets (four empty; the first starts at the time
    asked, not at midnight) replayed as OpenAI sent them."""
    real = load("openai_org_usage_completions_real_buckets_cookbook_2025-01_excerpt.json")
    fake.recorded_completions = real

    rows = fetch(start=DAY, end=DAY + timedelta(days=30))

    assert len(rows) == 22
    assert rows[0].bucket_start == datetime(2025, 1, 11, tzinfo=UTC)
    results = [r for bucket in real for r in bucket["results"]]
    assert sum(r.input_tokens for r in rows) == sum(r["input_tokens"] for r in results)
    assert sum(r.cached_tokens for r in rows) == sum(r["input_cached_tokens"] for r in results)
    assert sum(r.requests for r in rows) == sum(r["num_model_requests"] for r in results)
    assert {r.model for r in rows} == {""}  # that call was not grouped


# --- Costs --------------------------------------------------------------------------------


def test_daily_costs_join_their_models_rows_in_micro_dollars(fake):
    fake.add_usage(DAY, model=MINI, api_key_id="key_1", input_tokens=1000, output_tokens=10)
    fake.add_usage(DAY, model="o3-2025-04-16", api_key_id="key_1", input_tokens=5)
    fake.add_cost(DAY, usd=0.06, api_key_id="key_1", line_item=f"{MINI}, input")
    fake.add_cost(DAY, usd=0.0123, api_key_id="key_1", line_item=f"{MINI}, output")
    fake.add_cost(DAY, usd=0.5, line_item="web search tool calls")
    fake.add_cost(DAY + timedelta(hours=1), usd=0.0000015, line_item="file search tool calls")

    rows = {(r.model, r.external_key_id): r for r in fetch()}

    assert rows[(MINI, "key_1")].cost_micros == 72_300
    assert rows[(MINI, "key_1")].input_tokens == 1000
    # No cost reported for it: 0, not None, so it is not priced again from the catalog.
    assert rows[("o3-2025-04-16", "key_1")].cost_micros == 0
    # Tool costs name no model: kept at their project, with no tokens.
    tools = rows[("", "")]
    assert (tools.cost_micros, tools.input_tokens, tools.requests) == (500_002, 0, 0)
    assert tools.external_project_id == "proj_abc"


def test_a_credit_never_makes_a_bucket_cost_less_than_nothing(fake):
    fake.add_usage(DAY, model=MINI, input_tokens=10)
    fake.add_cost(DAY, usd=0.25, api_key_id="key_abc", line_item=f"{MINI}, input")
    fake.add_cost(DAY, usd=-1.0, api_key_id="key_abc", line_item=f"{MINI}, credit")
    assert [r.cost_micros for r in fetch()] == [0]


def test_costs_in_another_currency_are_refused():
    body = load("openai_org_costs_example_openapi-spec.json")
    body["data"][0]["results"][0]["amount"]["currency"] = "eur"
    with pytest.raises(ProviderError, match="currency"):
        _add_costs({}, UsageCostsResponse.model_validate(body), "day")


@pytest.mark.parametrize(
    ("line_item", "model"),
    [
        (f"{MINI}, input", MINI),
        ("gpt-6-astra, input_tokens", "gpt-6-astra"),
        ("o1-2024-12-17, cached input", "o1-2024-12-17"),
        ("web search tool calls", ""),
        (None, ""),
    ],
)
def test_a_line_item_names_its_model(line_item, model):
    assert line_item_model(line_item) == model


# --- Project keys -------------------------------------------------------------------------


def test_project_keys_of_every_project_with_their_redacted_values(fake):
    fake.add_project("proj_a", "Web app")
    fake.add_project("proj_b", "Batch jobs")
    for n in range(101):  # two pages of at most 100
        fake.add_project_key("proj_a", key_id=f"key_a{n}", name=f"a{n}", redacted_value="sk-a...b")
    fake.add_project_key("proj_b", key_id="key_b", name="batch", redacted_value="sk-abc...def")

    keys = openai_project_keys(admin_key=ADMIN)

    assert len(keys) == 102
    assert keys[0] == ("proj_a", "key_a0", "a0", "sk-a...b")
    assert keys[-1] == ("proj_b", "key_b", "batch", "sk-abc...def")
    listed = fake.requests_to("/v1/organization/projects/proj_a/api_keys")
    assert len(listed) == 2 and listed[1].params["after"] == ["key_a99"]
    assert listed[0].params["limit"] == ["100"]
    assert listed[0].params["owner_project_access"] == ["any"]


def test_project_keys_with_a_rejected_key(fake):
    with pytest.raises(KeyRejected) as caught:
        openai_project_keys(admin_key="sk-admin-Revoked000000000000000000000000000000")
    assert caught.value.provider_status == 401


# --- Failures -----------------------------------------------------------------------------


def test_a_rejected_admin_key_is_key_rejected_and_never_quoted(fake):
    wrong = ADMIN[:-4] + "XXXX"
    with pytest.raises(KeyRejected) as caught:
        fetch(admin_key=wrong)
    assert caught.value.provider_status == 401
    assert caught.value.code == "key_rejected"
    assert wrong not in str(caught.value) and wrong[-4:] not in str(caught.value)


def test_a_project_key_on_the_admin_api_is_key_rejected(fake):
    with pytest.raises(KeyRejected) as caught:
        fetch(admin_key="sk-proj-NotAnAdminKey000000000000000000000000000")
    assert caught.value.provider_status == 403


def test_rate_limited_is_unavailable_with_retry_after(fake):
    fake.retry_after = "7"
    fake.fail(USAGE_PATH, 429)
    with pytest.raises(ProviderUnavailable) as caught:
        fetch()
    assert caught.value.retry_after == 7.0
    assert caught.value.headers == {"Retry-After": "7"}
    assert len(fake.requests_to(USAGE_PATH)) == 1  # the SDK does not retry: the task does


def test_a_server_error_is_unavailable_and_the_next_try_succeeds(fake):
    fake.add_usage(DAY, model=MINI, input_tokens=3)
    fake.fail(USAGE_PATH, 500)
    with pytest.raises(ProviderUnavailable) as caught:
        fetch()
    assert caught.value.retry_after is None
    assert [r.input_tokens for r in fetch()] == [3]


def test_a_failure_on_a_later_page_returns_nothing_partial(fake):
    fake.add_usage(DAY, model=MINI, input_tokens=3)
    fake.fail(COSTS_PATH, 503)
    with pytest.raises(ProviderUnavailable):
        fetch()
    assert len(fake.requests_to(USAGE_PATH)) == 1


def test_a_slow_answer_is_unavailable(fake):
    fake.delay = 1.0
    with pytest.raises(ProviderUnavailable, match="in time"):
        fetch(timeout=0.2)


def test_an_unreachable_api_is_unavailable(settings):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    settings.OPENAI_BASE_URL = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(ProviderUnavailable, match="could not be reached"):
        fetch()


def test_another_refusal_is_a_provider_error_not_a_retry(fake):
    fake.fail(USAGE_PATH, 404)
    with pytest.raises(ProviderError) as caught:
        fetch()
    assert not isinstance(caught.value, (ProviderUnavailable, KeyRejected))


def test_pages_that_never_end_are_a_provider_error():
    stuck = SimpleNamespace(has_more=True, next_page="page_same")
    with pytest.raises(ProviderError, match="do not end"):
        list(_pages(lambda token: stuck, "usage"))
    with pytest.raises(ProviderError, match="do not end"):
        list(_pages(lambda token: SimpleNamespace(has_more=True, next_page=None), "usage"))


def test_the_operators_openai_environment_is_never_sent(fake, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-proj-OperatorsOwnKey000000000000000000000000")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-operator")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj_operator")
    fetch()
    headers = fake.requests_to(USAGE_PATH)[0].headers
    assert headers["authorization"] == f"Bearer {ADMIN}"
    assert "openai-organization" not in headers and "openai-project" not in headers


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # in the past
        ({"retry-after": "soon"}, None),
        ({"retry-after": "nan"}, None),
        ({}, None),
    ],
)
def test_retry_after_reads_seconds_milliseconds_and_dates(headers, seconds):
    assert retry_after(headers) == seconds


def test_retry_after_reads_a_future_date():
    when = datetime.now(UTC) + timedelta(minutes=2)
    seconds = retry_after({"retry-after": when.strftime("%a, %d %b %Y %H:%M:%S GMT")})
    assert seconds is not None and 60 < seconds <= 120
