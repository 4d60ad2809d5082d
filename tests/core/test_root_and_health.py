import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_root_answers_json_to_a_cli(client):
    response = client.get("/", HTTP_ACCEPT="*/*")
    assert response.status_code == 200
    assert response.json() == {"message": "Kay Backend running ✅"}


def test_root_sends_a_browser_to_the_dashboard(client):
    response = client.get("/", HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8")
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard:overview")


def test_healthz_needs_no_login(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_health_requires_authentication(api_client):
    response = api_client.get("/health")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_health_reports_every_part_and_an_absent_worker(alice_api, settings):
    # No worker runs in this test: the round trip must time out and say so, quickly.
    settings.HEALTH_WORKER_TIMEOUT = 0.5
    settings.OPENAI_API_KEY = "sk-test-configured-0000000000"
    response = alice_api.get("/health")
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "unhealthy"
    assert body["timestamp"].endswith("Z")
    services = body["services"]
    assert services["database"]["status"] == "healthy"
    assert services["broker"]["status"] == "healthy"
    assert services["worker"]["status"] == "unhealthy"
    assert "no worker answered" in services["worker"]["error"]
    assert services["openai"] == {**services["openai"], "status": "healthy", "configured": True}
    assert "sk-test" not in response.content.decode()


def test_a_bearer_token_that_is_not_ours_is_called_invalid(client, db):
    response = client.get("/health", HTTP_AUTHORIZATION="Bearer nope")
    assert response.status_code == 401
    body = response.json()["error"]
    assert body["code"] == "invalid_token"
    assert "not provided" not in body["message"]
