"""/api/assistant/sessions: list, read, rename, delete — each user's own only."""

from __future__ import annotations

import pytest

from assistant.models import InteractiveSession
from tests.helpers.queries import assert_flat_queries

pytestmark = pytest.mark.django_db

MESSAGES = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello"}]


def _session(owner, title="Sprint review"):
    return InteractiveSession.objects.create(owner=owner, title=title, messages=MESSAGES)


def test_the_list_shows_only_my_sessions_newest_first(alice, bob, alice_api):
    older = _session(alice, "older")
    newer = _session(alice, "newer")
    _session(bob, "bob's")
    body = alice_api.get("/api/assistant/sessions").json()
    assert body["count"] == 2
    assert [s["id"] for s in body["results"]] == [newer.pk, older.pk]
    assert set(body["results"][0]) == {"id", "title", "created_at", "updated_at"}


def test_the_list_is_paginated_50_a_page_and_at_most_200(alice, alice_api):
    InteractiveSession.objects.bulk_create(
        InteractiveSession(owner=alice, title=f"s{n}", messages=MESSAGES) for n in range(205)
    )
    first = alice_api.get("/api/assistant/sessions").json()
    assert first["count"] == 205 and len(first["results"]) == 50 and first["previous"] is None
    second = alice_api.get(first["next"]).json()
    assert len(second["results"]) == 50
    assert not {s["id"] for s in first["results"]} & {s["id"] for s in second["results"]}
    big = alice_api.get("/api/assistant/sessions?page_size=1000").json()
    assert len(big["results"]) == 200


def test_a_page_past_the_end_is_a_json_404(alice, alice_api):
    _session(alice)
    for page in ("2", "abc"):
        response = alice_api.get(f"/api/assistant/sessions?page={page}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_the_list_runs_as_many_queries_for_50_sessions_as_for_1(alice, alice_api):
    assert_flat_queries(alice_api, "/api/assistant/sessions", lambda: _session(alice))


def test_a_session_is_read_with_its_messages(alice, alice_api):
    session = _session(alice)
    body = alice_api.get(f"/api/assistant/sessions/{session.pk}").json()
    assert body["messages"] == MESSAGES and body["title"] == "Sprint review"


def test_a_session_is_renamed(alice, alice_api):
    session = _session(alice)
    response = alice_api.patch(
        f"/api/assistant/sessions/{session.pk}", {"title": "  Login   bug  "}, format="json"
    )
    assert response.status_code == 200 and response.json()["title"] == "Login bug"
    session.refresh_from_db()
    assert session.title == "Login bug"


@pytest.mark.parametrize("body", [{}, {"title": ""}, {"title": "   "}, {"title": "x" * 201}])
def test_a_bad_title_is_refused_and_nothing_changes(alice, alice_api, body):
    session = _session(alice)
    response = alice_api.patch(f"/api/assistant/sessions/{session.pk}", body, format="json")
    assert response.status_code == 400
    assert "title" in response.json()["error"]["fields"]
    session.refresh_from_db()
    assert session.title == "Sprint review"


def test_a_session_is_deleted(alice, alice_api):
    session = _session(alice)
    assert alice_api.delete(f"/api/assistant/sessions/{session.pk}").status_code == 204
    assert not InteractiveSession.objects.exists()


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_it_rejects_another_users_session(alice, bob_api, method):
    session = _session(alice)
    response = getattr(bob_api, method)(
        f"/api/assistant/sessions/{session.pk}", {"title": "mine now"}, format="json"
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    session.refresh_from_db()
    assert session.title == "Sprint review"


def test_signed_out_is_refused(client):
    assert client.get("/api/assistant/sessions").status_code in (401, 403)
