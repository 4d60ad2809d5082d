"""The key-vault JSON API (seed 001 shapes), against fake providers on 127.0.0.1."""

import pytest

from keys.models import ApiKey, KeyAuditEvent, Project
from tests.helpers.queries import assert_flat_queries
from tests.keys.conftest import VALID
from tests.keys.factories import ApiKeyFactory, KeyAuditEventFactory, ProjectFactory

KEY_FIELDS = {
    "id",
    "provider",
    "name",
    "project_id",
    "masked_key",
    "kind",
    "status",
    "is_default",
    "created_at",
    "updated_at",
    "last_validated_at",
    "last_used_at",
}


def create(client, **body):
    payload = {"provider": "openai", "name": "prod", "key": VALID["openai"], **body}
    return client.post("/api/keys", payload, format="json")


def test_create_validates_encrypts_and_answers_the_key_object(alice_api, alice, fake_providers):
    project = ProjectFactory(owner=alice)
    response = create(alice_api, project_id=project.pk)
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == KEY_FIELDS
    assert body["masked_key"] == "sk-p…Wx9z"
    assert body["status"] == "valid" and body["last_validated_at"]
    assert body["project_id"] == project.pk
    assert body["is_default"] is True  # first openai key of the project
    assert VALID["openai"] not in response.content.decode()
    stored = ApiKey.objects.get(pk=body["id"])
    assert stored.get_secret() == VALID["openai"]
    assert not stored.secret.startswith("sk-")
    assert stored.secret not in response.content.decode()
    actions = set(KeyAuditEvent.objects.filter(api_key=stored).values_list("action", flat=True))
    assert actions == {"created", "validated"}


def test_a_rejected_key_is_not_saved(alice_api, fake_providers):
    response = create(alice_api, key=VALID["openai"][:-4] + "nope")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_key"
    assert "rejected" in error["fields"]["key"][0]
    assert ApiKey.objects.count() == 0


def test_a_key_that_cannot_be_checked_is_saved_unverified(alice_api, fake_providers):
    fake_providers.fail_status = 500
    response = create(alice_api)
    assert response.status_code == 201
    assert response.json()["status"] == "unverified"
    assert response.json()["last_validated_at"] is None


def test_a_timeout_saves_the_key_unverified(alice_api, fake_providers, settings):
    settings.KEYS_VALIDATION_TIMEOUT = 0.3
    fake_providers.delay = 1.0
    assert create(alice_api).json()["status"] == "unverified"


def test_openai_compatible_keys_need_a_base_url(alice_api, fake_providers):
    response = create(alice_api, provider="openai_compatible", key=VALID["openai_compatible"])
    assert response.status_code == 400
    assert "base_url" in response.json()["error"]["fields"]
    response = create(
        alice_api,
        provider="openai_compatible",
        key=VALID["openai_compatible"],
        base_url=fake_providers.base_url + "/v1",
    )
    assert response.status_code == 201
    assert response.json()["status"] == "valid"


def test_names_are_unique_per_owner_and_project(alice_api, alice, fake_providers):
    assert create(alice_api).status_code == 201
    response = create(alice_api, name="PROD")
    assert response.status_code == 409
    project = ProjectFactory(owner=alice)
    assert create(alice_api, name="prod", project_id=project.pk).status_code == 201


def test_one_default_per_project_and_provider(alice_api, alice, fake_providers):
    project = ProjectFactory(owner=alice)
    first = create(alice_api, name="a", project_id=project.pk).json()
    second = create(alice_api, name="b", project_id=project.pk).json()
    assert first["is_default"] and not second["is_default"]
    response = alice_api.patch(f"/api/keys/{second['id']}", {"is_default": True}, format="json")
    assert response.json()["is_default"] is True
    assert alice_api.get(f"/api/keys/{first['id']}").json()["is_default"] is False
    assert ApiKey.objects.filter(project=project, is_default=True).count() == 1


def test_list_filters_by_project_and_provider(alice_api, alice):
    project = ProjectFactory(owner=alice)
    ApiKeyFactory(owner=alice, project=project, provider="openai")
    ApiKeyFactory(owner=alice, provider="anthropic")
    ApiKeyFactory()  # someone else's
    assert len(alice_api.get("/api/keys").json()) == 2
    assert len(alice_api.get(f"/api/keys?project_id={project.pk}").json()) == 1
    assert len(alice_api.get("/api/keys?project_id=none").json()) == 1
    assert alice_api.get("/api/keys?project_id=abc").status_code == 400
    assert [k["provider"] for k in alice_api.get("/api/keys?provider=anthropic").json()] == [
        "anthropic"
    ]


def test_patch_renames_and_moves(alice_api, alice):
    key = ApiKeyFactory(owner=alice)
    project = ProjectFactory(owner=alice)
    body = {"name": "renamed", "project_id": project.pk}
    response = alice_api.patch(f"/api/keys/{key.pk}", body, format="json")
    assert response.status_code == 200
    assert response.json()["name"] == "renamed"
    assert response.json()["project_id"] == project.pk
    response = alice_api.patch(f"/api/keys/{key.pk}", {"project_id": None}, format="json")
    assert response.json()["project_id"] is None


def test_patch_with_key_rotates_keeping_id_and_history(alice_api, alice, fake_providers):
    created = create(alice_api).json()
    new_secret = "sk-proj-RotatedKey000000000000000000000000Zz99"
    fake_providers.valid_keys.add(new_secret)
    response = alice_api.patch(f"/api/keys/{created['id']}", {"key": new_secret}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == created["id"] and body["masked_key"] == "sk-p…Zz99"
    assert new_secret not in response.content.decode()
    key = ApiKey.objects.get(pk=created["id"])
    assert key.get_secret() == new_secret
    actions = list(KeyAuditEvent.objects.filter(api_key=key).values_list("action", flat=True))
    assert actions[0] == "rotated" and "created" in actions


def test_a_patch_that_fails_changes_nothing(alice_api, alice, fake_providers):
    """PATCH with a new key and a name already taken: the 409 must not leave the key
    rotated behind the caller's back (one request, all or nothing)."""
    create(alice_api, name="taken")
    created = create(alice_api, name="mine").json()
    new_secret = "sk-proj-RotatedKey000000000000000000000000Zz99"
    fake_providers.valid_keys.add(new_secret)
    response = alice_api.patch(
        f"/api/keys/{created['id']}", {"key": new_secret, "name": "TAKEN"}, format="json"
    )
    assert response.status_code == 409, response.content
    key = ApiKey.objects.get(pk=created["id"])
    assert key.get_secret() == VALID["openai"] and key.name == "mine"
    assert not KeyAuditEvent.objects.filter(api_key=key, action="rotated").exists()


def test_rotation_to_a_rejected_secret_keeps_the_old_one(alice_api, alice, fake_providers):
    created = create(alice_api).json()
    response = alice_api.patch(
        f"/api/keys/{created['id']}", {"key": "sk-wrong-000000000000000000000"}, format="json"
    )
    assert response.status_code == 400
    assert ApiKey.objects.get(pk=created["id"]).get_secret() == VALID["openai"]


def test_delete_by_query_parameter(alice_api, alice):
    key = ApiKeyFactory(owner=alice)
    assert alice_api.delete("/api/keys").status_code == 400
    assert alice_api.delete(f"/api/keys?id={key.pk}").status_code == 204
    assert not ApiKey.objects.filter(pk=key.pk).exists()
    event = KeyAuditEvent.objects.get(action="deleted")
    assert event.api_key is None and key.name in event.key_label


def test_revalidate_marks_a_revoked_key_invalid(alice_api, alice, fake_providers):
    created = create(alice_api).json()
    fake_providers.valid_keys.discard(VALID["openai"])
    response = alice_api.post(f"/api/keys/{created['id']}/validate")
    assert response.json()["status"] == "invalid"


def test_last_used_at_follows_backend_use(alice_api, alice):
    from keys.access import user_api_keys

    key = ApiKeyFactory(owner=alice)
    assert alice_api.get(f"/api/keys/{key.pk}").json()["last_used_at"] is None
    with user_api_keys(alice) as keys:
        keys["openai"]
    used = alice_api.get(f"/api/keys/{key.pk}").json()["last_used_at"]
    assert used is not None
    assert alice_api.get("/api/keys").json()[0]["last_used_at"] == used


def test_events_endpoint_lists_the_audit_trail(alice_api, alice, fake_providers):
    created = create(alice_api).json()
    events = alice_api.get(f"/api/keys/{created['id']}/events").json()
    assert {e["action"] for e in events} == {"created", "validated"}
    assert events[0]["actor"] == "alice@example.com"
    assert events[0]["ip_address"] == "127.0.0.1"


def test_validation_is_rate_limited_per_user(alice_api, fake_providers, settings, one_rate_window):
    settings.KEYS_VALIDATION_RATE = "2/hour"
    assert create(alice_api, name="a").status_code == 201
    assert create(alice_api, name="b").status_code == 201
    response = create(alice_api, name="c")
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert response.json()["error"]["code"] == "rate_limited"


def test_unauthenticated_requests_get_401(api_client):
    assert api_client.get("/api/keys").status_code == 401
    assert api_client.post("/api/keys", {}, format="json").status_code == 401
    assert api_client.get("/api/projects").status_code == 401


# --- projects -------------------------------------------------------------------------------


def test_project_crud(alice_api, alice):
    response = alice_api.post(
        "/api/projects", {"name": "Chatbot", "description": "web"}, format="json"
    )
    assert response.status_code == 201
    project = response.json()
    assert project["name"] == "Chatbot" and project["key_count"] == 0
    assert alice_api.post("/api/projects", {"name": "chatbot"}, format="json").status_code == 409
    patched = alice_api.patch(f"/api/projects/{project['id']}", {"name": "Bot"}, format="json")
    assert patched.json()["name"] == "Bot"
    ApiKeyFactory(owner=alice, project_id=project["id"])
    assert alice_api.get(f"/api/projects/{project['id']}").json()["key_count"] == 1
    assert alice_api.delete(f"/api/projects/{project['id']}").status_code == 409
    ApiKey.objects.filter(project_id=project["id"]).delete()
    assert alice_api.delete(f"/api/projects/{project['id']}").status_code == 204
    assert not Project.objects.exists()


# --- query counts ---------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/api/keys", "/api/projects"])
def test_list_query_count_does_not_grow_with_rows(alice_api, alice, url, locmem_cache):
    shared = ProjectFactory(owner=alice)

    def add_row():
        ApiKeyFactory(owner=alice, project=shared)
        ApiKeyFactory(owner=alice, project=ProjectFactory(owner=alice))

    assert_flat_queries(alice_api, url, add_row)


def test_a_keys_audit_trail_query_count_does_not_grow(alice_api, alice, locmem_cache):
    key = ApiKeyFactory(owner=alice)
    measured = assert_flat_queries(
        alice_api, f"/api/keys/{key.pk}/events", lambda: KeyAuditEventFactory(api_key=key)
    )
    assert len(measured.response.json()) == 50


# --- races: the database constraint, not a 500, answers the loser -----------------------------


def _lose_the_race():
    """Pretend the "is the name free?" pre-check ran before a concurrent request committed."""
    from unittest import mock

    from django.db.models.query import QuerySet

    return mock.patch.object(QuerySet, "exists", return_value=False)


def test_a_project_name_taken_concurrently_is_a_409_not_a_500(alice_api, alice):
    ProjectFactory(owner=alice, name="Chatbot")
    with _lose_the_race():
        response = alice_api.post("/api/projects", {"name": "chatbot"}, format="json")
    assert response.status_code == 409, response.content
    assert response.json()["error"]["fields"]["name"]
    assert Project.objects.filter(owner=alice).count() == 1


def test_renaming_a_project_onto_a_name_taken_concurrently_is_a_409(alice_api, alice):
    ProjectFactory(owner=alice, name="Chatbot")
    other = ProjectFactory(owner=alice, name="Other")
    with _lose_the_race():
        response = alice_api.patch(f"/api/projects/{other.pk}", {"name": "CHATBOT"}, format="json")
    assert response.status_code == 409, response.content
    other.refresh_from_db()
    assert other.name == "Other"
    assert not KeyAuditEvent.objects.filter(owner=alice, action="updated").exists()


@pytest.mark.django_db(transaction=True)
def test_two_first_keys_at_once_both_save(alice, fake_providers):
    """Two keys of one provider added to an empty project at the same moment: each thinks it
    is the first and so the default; the one that loses the default must still be saved
    (it never asked to be the default), not refused with a 409."""
    import threading
    import time

    from django.db import connection, transaction

    from keys import services

    if connection.vendor != "postgresql":
        pytest.skip("needs concurrent transactions (SQLite locks the whole table)")
    project = ProjectFactory(owner=alice)
    holding, release = threading.Event(), threading.Event()

    def other_request():
        with transaction.atomic():
            ApiKeyFactory(owner=alice, project=project, name="theirs", is_default=True)
            holding.set()
            release.wait(10)
        connection.close()

    other = threading.Thread(target=other_request)
    other.start()
    holding.wait(10)
    result = {}

    def this_request():
        try:
            result["key"], _ = services.api_key_create(
                acting_user=alice,
                provider="openai",
                name="mine",
                secret=VALID["openai"],
                project=project,
                origin=services.Origin("api"),
            )
        except Exception as exc:
            result["error"] = exc
        finally:
            connection.close()

    this = threading.Thread(target=this_request)
    this.start()
    time.sleep(1.0)  # "mine" is now waiting on the unique index behind "theirs"
    release.set()
    other.join(10)
    this.join(10)
    assert "error" not in result, result.get("error")
    assert set(ApiKey.objects.values_list("name", "is_default")) == {
        ("theirs", True),
        ("mine", False),
    }
