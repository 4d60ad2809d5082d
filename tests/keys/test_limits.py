"""Per-account limits: one account cannot create unbounded projects, keys or API tokens."""

import pytest

from accounts.models import ApiToken
from keys.models import ApiKey, Project
from tests.keys.conftest import VALID
from tests.keys.factories import ApiKeyFactory, ProjectFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_limits(settings):
    settings.MAX_PROJECTS_PER_USER = 2
    settings.MAX_KEYS_PER_USER = 2
    settings.MAX_API_TOKENS_PER_USER = 2


# --- Projects ----------------------------------------------------------------------------


def test_the_api_refuses_a_project_beyond_the_limit(small_limits, alice_api, alice, bob):
    ProjectFactory.create_batch(2, owner=alice)
    ProjectFactory.create_batch(2, owner=bob)  # other accounts' projects do not count
    response = alice_api.post("/api/projects", {"name": "Third"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "limit_reached",
        "message": "You have 2 projects, the most one account can have. Delete one first.",
    }
    assert Project.objects.filter(owner=alice).count() == 2


def test_a_project_can_be_created_again_after_deleting_one(small_limits, alice_api, alice):
    first, _ = ProjectFactory.create_batch(2, owner=alice)
    assert alice_api.delete(f"/api/projects/{first.pk}").status_code == 204
    assert alice_api.post("/api/projects", {"name": "Third"}, format="json").status_code == 201


def test_the_projects_page_shows_the_limit_as_an_error(small_limits, alice_browser, alice):
    ProjectFactory.create_batch(2, owner=alice)
    response = alice_browser.post("/dashboard/projects/", {"name": "Third"})
    assert response.status_code == 400
    assert "the most one account can have. Delete one first." in response.content.decode()
    assert Project.objects.filter(owner=alice).count() == 2


# --- Keys --------------------------------------------------------------------------------


def test_the_api_refuses_a_key_beyond_the_limit_without_asking_the_provider(
    small_limits, alice_api, alice, bob, fake_providers
):
    ApiKeyFactory.create_batch(2, owner=alice)
    ApiKeyFactory.create_batch(2, owner=bob)
    response = alice_api.post(
        "/api/keys", {"provider": "openai", "name": "third", "key": VALID["openai"]}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "limit_reached",
        "message": "You have 2 keys, the most one account can have. Delete one first.",
    }
    assert ApiKey.objects.filter(owner=alice).count() == 2
    assert fake_providers.requests == []  # the key was never sent anywhere


def test_the_new_key_page_shows_the_limit_as_an_error(
    small_limits, alice_browser, alice, fake_providers
):
    ApiKeyFactory.create_batch(2, owner=alice)
    response = alice_browser.post(
        "/dashboard/keys/new/", {"provider": "openai", "name": "third", "key": VALID["openai"]}
    )
    page = response.content.decode()
    assert "You have 2 keys, the most one account can have. Delete one first." in page
    assert VALID["openai"] not in page
    assert ApiKey.objects.filter(owner=alice).count() == 2


# --- Personal API tokens ------------------------------------------------------------------


def _create_token(client):
    return client.post("/api/token", {"name": "laptop"}, format="json")


def test_the_api_refuses_a_token_beyond_the_limit(small_limits, alice_api, alice):
    assert _create_token(alice_api).status_code == 201
    assert _create_token(alice_api).status_code == 201
    response = _create_token(alice_api)
    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "limit_reached",
        "message": "You have 2 API tokens, the most one account can have. Revoke one first.",
    }
    assert ApiToken.objects.filter(user=alice).count() == 2


def test_revoked_tokens_do_not_count_towards_the_limit(small_limits, alice_api):
    first = _create_token(alice_api).json()["api_token"]["id"]
    _create_token(alice_api)
    assert alice_api.delete(f"/api/tokens/{first}").status_code == 204
    assert _create_token(alice_api).status_code == 201


# --- Two creates at once -----------------------------------------------------------------


def _project_create(user):
    from keys import services

    services.project_create(acting_user=user, name="racing", origin=services.Origin("api"))


def _api_key_create(user):
    from keys import services

    services.api_key_create(
        acting_user=user,
        provider="openai",
        name="racing",
        secret=VALID["openai"],
        origin=services.Origin("api"),
    )


def _api_token_create(user):
    from accounts import tokens

    tokens.api_token_create(user=user, name="racing")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("create", [_project_create, _api_key_create, _api_token_create])
def test_two_creates_at_once_cannot_both_take_the_last_place(
    create, small_limits, alice, fake_providers
):
    """One place left and two requests: the second waits for the first and is refused,
    instead of both counting one row and both saving."""
    import threading
    import time

    from django.db import connection, transaction

    if connection.vendor != "postgresql":
        pytest.skip("needs concurrent transactions (SQLite runs one writer at a time)")
    ProjectFactory(owner=alice, name="one")
    ApiKeyFactory(owner=alice, name="one")
    _api_token_create(alice)
    holding, release = threading.Event(), threading.Event()

    def first_request():
        with transaction.atomic():
            create(alice)
            holding.set()
            release.wait(10)
        connection.close()

    first = threading.Thread(target=first_request)
    first.start()
    assert holding.wait(10)
    result = {}

    def second_request():
        try:
            create(alice)
        except Exception as exc:
            result["error"] = exc
        finally:
            connection.close()

    second = threading.Thread(target=second_request)
    second.start()
    with connection.cursor() as cursor:  # wait until the second request waits on the lock
        for _ in range(200):
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                break
            time.sleep(0.05)
    release.set()
    first.join(10)
    second.join(10)
    assert getattr(result.get("error"), "code", None) == "limit_reached"
    assert Project.objects.filter(owner=alice).count() <= 2
    assert ApiKey.objects.filter(owner=alice).count() <= 2
    assert ApiToken.objects.filter(user=alice).count() <= 2


def test_the_tokens_page_says_the_limit_instead_of_failing(small_limits, alice_browser, alice):
    for n in range(2):
        alice_browser.post("/dashboard/tokens/", {"name": f"t{n}"})
    page = alice_browser.post("/dashboard/tokens/", {"name": "one more"})
    assert page.status_code == 200
    assert b"Revoke one first." in page.content
    assert alice.api_tokens.count() == 2
