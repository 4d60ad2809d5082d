"""Bob gets 404 for every one of Alice's keys and projects, through every endpoint and page."""

import pytest

from keys.models import ApiKey, Project
from tests.keys.factories import ApiKeyFactory, ProjectFactory


@pytest.fixture
def alices(alice):
    project = ProjectFactory(owner=alice, name="Alice's")
    key = ApiKeyFactory(owner=alice, project=project, is_default=True)
    return key, project


def test_api_endpoints_404_on_alices_objects(bob_api, alices):
    key, project = alices
    calls = [
        ("get", f"/api/keys/{key.pk}", None),
        ("patch", f"/api/keys/{key.pk}", {"name": "stolen"}),
        ("patch", f"/api/keys/{key.pk}", {"key": "sk-proj-bobsbobsbobsbobsbobsbobsbobs"}),
        ("delete", f"/api/keys/{key.pk}", None),
        ("delete", f"/api/keys?id={key.pk}", None),
        ("post", f"/api/keys/{key.pk}/validate", None),
        ("get", f"/api/keys/{key.pk}/events", None),
        ("get", f"/api/projects/{project.pk}", None),
        ("patch", f"/api/projects/{project.pk}", {"name": "mine"}),
        ("delete", f"/api/projects/{project.pk}", None),
    ]
    for method, url, body in calls:
        response = getattr(bob_api, method)(url, body, format="json")
        assert response.status_code == 404, (method, url, response.status_code)
        assert response.json()["error"]["code"] == "not_found"
    key.refresh_from_db()
    assert key.name != "stolen" and ApiKey.objects.filter(pk=key.pk).exists()
    assert Project.objects.get(pk=project.pk).name == "Alice's"


def test_bob_cannot_file_a_key_under_alices_project(bob_api, bob, alices, fake_providers):
    _, project = alices
    from tests.keys.conftest import VALID

    body = {"provider": "openai", "name": "x", "key": VALID["openai"], "project_id": project.pk}
    assert bob_api.post("/api/keys", body, format="json").status_code == 404
    bobs = ApiKeyFactory(owner=bob)
    response = bob_api.patch(f"/api/keys/{bobs.pk}", {"project_id": project.pk}, format="json")
    assert response.status_code == 404


def test_lists_show_only_the_callers_objects(bob_api, alices):
    assert bob_api.get("/api/keys").json() == []
    assert bob_api.get("/api/projects").json() == []
    assert bob_api.get(f"/api/keys?project_id={alices[1].pk}").json() == []


def test_pages_404_on_alices_objects(bob_browser, alices):
    key, project = alices
    for method, url in [
        ("get", f"/dashboard/keys/{key.pk}/"),
        ("post", f"/dashboard/keys/{key.pk}/edit/"),
        ("post", f"/dashboard/keys/{key.pk}/rotate/"),
        ("post", f"/dashboard/keys/{key.pk}/validate/"),
        ("get", f"/dashboard/keys/{key.pk}/delete/"),
        ("post", f"/dashboard/keys/{key.pk}/delete/"),
        ("get", f"/dashboard/projects/{project.pk}/"),
        ("post", f"/dashboard/projects/{project.pk}/"),
        ("post", f"/dashboard/projects/{project.pk}/delete/"),
    ]:
        response = getattr(bob_browser, method)(url, {"name": "x", "key": "sk-x"})
        assert response.status_code == 404, (method, url)
    assert ApiKey.objects.filter(pk=key.pk).exists()
    assert Project.objects.filter(pk=project.pk).exists()


def test_list_pages_hide_alices_objects(bob_browser, alices):
    key, project = alices
    assert key.name not in bob_browser.get("/dashboard/keys/").content.decode()
    assert project.name not in bob_browser.get("/dashboard/projects/").content.decode()


def test_pages_require_login(client, alices):
    key, _ = alices
    for url in [
        "/dashboard/keys/",
        f"/dashboard/keys/{key.pk}/",
        "/dashboard/projects/",
        "/dashboard/onboarding/",
    ]:
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
