"""POST /api/keys/fetch: backend-only, Bearer SERVER_SECRET_KEY, audited, rate limited."""

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from keys.models import ApiKey, KeyAuditEvent
from tests.keys.conftest import server_auth
from tests.keys.factories import ApiKeyFactory, ProjectFactory

URL = "/api/keys/fetch"


def fetch(client, body, **headers):
    return client.post(URL, body, format="json", **headers)


def test_without_the_server_secret_it_is_401_and_audited(api_client, alice):
    ApiKeyFactory(owner=alice)
    response = fetch(api_client, {"user_id": alice.pk, "provider": "openai"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert "sk-" not in response.content.decode()
    event = KeyAuditEvent.objects.get()
    assert event.action == "fetch_denied" and event.detail["reason"] == "bad_secret"
    assert event.owner is None and event.ip_address == "127.0.0.1"


@pytest.mark.parametrize(
    "header",
    ["Bearer wrong-secret", "Basic abc", "Bearer", "", "bearer  "],
)
def test_a_wrong_secret_is_401_and_audited(api_client, alice, header):
    ApiKeyFactory(owner=alice)
    response = fetch(
        api_client, {"user_id": alice.pk, "provider": "openai"}, HTTP_AUTHORIZATION=header
    )
    assert response.status_code == 401
    assert KeyAuditEvent.objects.filter(action="fetch_denied").count() == 1


def test_unreadable_bodies_are_refused_and_audited(api_client, db):
    response = api_client.post(URL, "{not json", content_type="application/json")
    assert response.status_code == 401
    response = api_client.post(URL, "{not json", content_type="application/json", **server_auth())
    assert response.status_code == 400
    reasons = sorted(KeyAuditEvent.objects.values_list("detail__reason", flat=True))
    assert reasons == ["bad_request", "bad_secret"]


def test_a_user_session_is_not_enough(alice_api, alice):
    ApiKeyFactory(owner=alice)
    response = fetch(alice_api, {"user_id": alice.pk, "provider": "openai"})
    assert response.status_code == 401


def test_it_returns_the_decrypted_key_and_audits(api_client, alice):
    key = ApiKeyFactory(owner=alice, provider="openai")
    response = fetch(api_client, {"user_id": alice.pk, "provider": "openai"}, **server_auth())
    assert response.status_code == 200
    assert response.json() == {"key": key.get_secret(), "key_id": key.pk, "provider": "openai"}
    assert response["Cache-Control"] == "no-store"
    event = KeyAuditEvent.objects.get(action="fetched")
    assert event.owner == alice and event.api_key == key and event.source == "fetch_api"
    from keys.selectors import api_key_get

    assert api_key_get(owner=alice, key_id=key.pk).last_used_at == event.created_at


def test_project_default_wins_then_users_default(api_client, alice):
    project = ProjectFactory(owner=alice)
    personal = ApiKeyFactory(owner=alice, provider="gemini", is_default=True)
    in_project = ApiKeyFactory(owner=alice, provider="gemini", project=project, is_default=True)
    ApiKeyFactory(owner=alice, provider="gemini", project=project, name="other")

    def key_id(**body):
        response = fetch(
            api_client, {"user_id": alice.pk, "provider": "gemini", **body}, **server_auth()
        )
        return response.json().get("key_id")

    assert key_id(project_id=project.pk) == in_project.pk
    assert key_id() == personal.pk
    other_project = ProjectFactory(owner=alice)
    assert key_id(project_id=other_project.pk) == personal.pk


def test_a_missing_key_is_a_clear_404_and_audited(api_client, alice):
    response = fetch(api_client, {"user_id": alice.pk, "provider": "exa"}, **server_auth())
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "missing_api_key"
    assert "No API key found for provider 'exa'" in error["message"]
    event = KeyAuditEvent.objects.get(action="fetch_denied")
    assert event.owner == alice and event.detail["reason"] == "no_key"


def test_it_never_answers_with_another_users_key(api_client, alice, bob):
    ApiKeyFactory(owner=bob, provider="openai", is_default=True)
    response = fetch(api_client, {"user_id": alice.pk, "provider": "openai"}, **server_auth())
    assert response.status_code == 404


def test_bad_bodies_are_400(api_client, db):
    response = fetch(api_client, {"user_id": "x", "provider": "nope"}, **server_auth())
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"user_id", "provider"}
    assert KeyAuditEvent.objects.get().detail["reason"] == "bad_request"


def test_it_is_rate_limited_per_user(api_client, alice, bob, settings, one_rate_window):
    settings.KEYS_FETCH_RATE = "3/min"
    ApiKeyFactory(owner=alice)
    ApiKeyFactory(owner=bob)
    for _ in range(3):
        assert (
            fetch(
                api_client, {"user_id": alice.pk, "provider": "openai"}, **server_auth()
            ).status_code
            == 200
        )
    for _ in range(2):
        limited = fetch(api_client, {"user_id": alice.pk, "provider": "openai"}, **server_auth())
        assert limited.status_code == 429 and int(limited["Retry-After"]) >= 1
    denied = KeyAuditEvent.objects.get(action="fetch_denied")  # one row, counting both
    assert denied.owner == alice and denied.detail["reason"] == "rate_limited"
    assert denied.count == 2
    assert (
        fetch(api_client, {"user_id": bob.pk, "provider": "openai"}, **server_auth()).status_code
        == 200
    )


@pytest.mark.django_db(transaction=True)
def test_a_fetch_costs_two_queries(api_client, alice, locmem_cache):
    # A real (transactional) database, so the count is what production runs.
    ProjectFactory(owner=alice)
    for provider in ("openai", "anthropic", "gemini", "exa", "groq"):
        ApiKeyFactory(owner=alice, provider=provider, is_default=True)
    with CaptureQueriesContext(connection) as ctx:
        response = fetch(api_client, {"user_id": alice.pk, "provider": "gemini"}, **server_auth())
    assert response.status_code == 200
    assert len(ctx.captured_queries) <= 2, [q["sql"] for q in ctx.captured_queries]
    assert ApiKey.objects.get(pk=response.json()["key_id"]).provider == "gemini"


def test_an_unreadable_key_is_a_clear_409_and_audited(api_client, alice, settings):
    import os

    key = ApiKeyFactory(owner=alice)
    settings.ENCRYPTION_KEYS = [os.urandom(32)]  # the operator dropped the key it was sealed with
    response = fetch(api_client, {"user_id": alice.pk, "provider": "openai"}, **server_auth())
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "key_unreadable"
    event = KeyAuditEvent.objects.get(action="fetch_denied")
    assert event.detail["reason"] == "unreadable" and event.api_key_id is None
    assert event.detail["key_id"] == key.pk


def test_no_secret_reaches_the_logs(api_client, alice_api, alice, fake_providers, caplog):
    import logging

    from tests.keys.conftest import VALID

    caplog.set_level(logging.DEBUG)
    created = alice_api.post(
        "/api/keys", {"provider": "openai", "name": "p", "key": VALID["openai"]}, format="json"
    )
    assert created.status_code == 201
    alice_api.post(
        "/api/keys",
        {"provider": "anthropic", "name": "a", "key": "sk-ant-api03-" + "wrong" * 8},
        format="json",
    )
    fetched = fetch(api_client, {"user_id": alice.pk, "provider": "openai"}, **server_auth())
    assert fetched.json()["key"] == VALID["openai"]
    fetch(api_client, {"user_id": alice.pk, "provider": "openai"}, HTTP_AUTHORIZATION="Bearer nope")
    assert caplog.records, "the test must see the request logs"
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert VALID["openai"] not in text
    assert "sk-ant-api03-wrongwrong" not in text
    assert django_settings.SERVER_SECRET_KEY not in text


# --- Guessing the server secret ----------------------------------------------------------

WRONG = {"HTTP_AUTHORIZATION": "Bearer not-the-server-secret"}


def test_guessing_the_secret_is_refused_after_the_limit_and_audited_as_counts(
    api_client, alice, settings, time_machine
):
    time_machine.move_to("2026-01-01T10:00:05Z", tick=False)
    settings.KEYS_FETCH_FAILURE_RATE = "10/min"
    answers = [
        fetch(api_client, {"user_id": alice.pk, "provider": "openai"}, **WRONG) for _ in range(500)
    ]
    assert [a.status_code for a in answers[:10]] == [401] * 10
    assert {a.status_code for a in answers[10:]} == {429}
    assert answers[-1]["Retry-After"] == "55"
    assert answers[-1].json()["error"]["code"] == "rate_limited"
    rows = {e.detail["reason"]: e for e in KeyAuditEvent.objects.filter(action="fetch_denied")}
    assert set(rows) == {"bad_secret", "too_many_failures"}
    assert rows["bad_secret"].count == 10 and rows["too_many_failures"].count == 490
    assert all(e.ip_address == "127.0.0.1" and e.owner is None for e in rows.values())
    assert rows["bad_secret"].detail["window_start"] == "2026-01-01T10:00:00+00:00"


def test_an_address_over_the_limit_is_refused_even_with_the_right_secret(
    api_client, alice, settings, time_machine
):
    time_machine.move_to("2026-01-01T10:00:05Z", tick=False)
    settings.KEYS_FETCH_FAILURE_RATE = "3/min"
    ApiKeyFactory(owner=alice)
    body = {"user_id": alice.pk, "provider": "openai"}
    for _ in range(3):
        assert fetch(api_client, body, **WRONG).status_code == 401
    assert fetch(api_client, body, **server_auth()).status_code == 429
    other = fetch(api_client, body, REMOTE_ADDR="192.0.2.10", **server_auth())
    assert other.status_code == 200
    time_machine.move_to("2026-01-01T10:01:00Z", tick=False)  # the next window
    assert fetch(api_client, body, **server_auth()).status_code == 200


def test_below_the_limit_the_right_secret_still_works(api_client, alice, settings, one_rate_window):
    settings.KEYS_FETCH_FAILURE_RATE = "3/min"
    ApiKeyFactory(owner=alice)
    body = {"user_id": alice.pk, "provider": "openai"}
    for _ in range(2):
        fetch(api_client, body, **WRONG)
    assert fetch(api_client, body, **server_auth()).status_code == 200


def test_a_forged_forwarded_address_does_not_reset_the_limit(
    api_client, alice, settings, one_rate_window
):
    settings.KEYS_FETCH_FAILURE_RATE = "3/min"
    settings.TRUSTED_PROXY_COUNT = 1
    body = {"user_id": alice.pk, "provider": "openai"}
    codes = [
        fetch(
            api_client,
            body,
            REMOTE_ADDR="10.0.0.5",
            HTTP_X_FORWARDED_FOR=f"198.51.100.{n}, 203.0.113.7",
            **WRONG,
        ).status_code
        for n in range(5)
    ]
    assert codes == [401, 401, 401, 429, 429]
    assert set(KeyAuditEvent.objects.values_list("ip_address", flat=True)) == {"203.0.113.7"}


def test_the_admin_shows_how_many_refusals_a_row_counts(api_client, client, staff, settings):
    settings.KEYS_FETCH_FAILURE_RATE = "1000/min"
    for _ in range(37):
        fetch(api_client, {"user_id": 1, "provider": "openai"}, **WRONG)
    event = KeyAuditEvent.objects.get()
    client.force_login(staff)
    listing = client.get("/admin/keys/keyauditevent/").content.decode()
    assert '<td class="field-count">37</td>' in listing
    detail = client.get(f"/admin/keys/keyauditevent/{event.pk}/change/").content.decode()
    assert "37" in detail and "bad_secret" in detail
