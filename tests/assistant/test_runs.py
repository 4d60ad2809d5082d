"""Runs as the web sees them, executed in this process (Celery eager) on the database
event fallback (no Redis): what /ask refuses before queueing, a run's status and result at
GET /ask/runs/<id>, its events stream, errors found in the worker, redelivery, and
another user's run. The real worker is in test_worker_ask.py."""

import json
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.tokens import api_token_create
from assistant import async_views
from assistant.models import AssistantRun, AssistantRunEvent, PendingConfirmation
from assistant.services import runs
from assistant.services.executor import McpToolExecutor
from assistant.services.runs import run_execute
from tests.accounts.factories import UserFactory
from tests.assistant.chat import LocalResult
from tests.assistant.closing import connections_kept_on_close
from tests.fakes.openai_chat import text, tool_calls

pytestmark = pytest.mark.django_db

SEARCH = {"jql": "project = KAN"}
CREATE = {"project_key": "KAN", "summary": "Fix login bug", "issue_type": "Task"}


@pytest.fixture(autouse=True)
def local_tools(monkeypatch, executor, settings):
    """The worker's tool layer is the local one (the MCP layer has its own tests), and
    events go to the database (no Redis)."""
    settings.REDIS_URL = ""
    monkeypatch.setattr(runs, "tool_executor", lambda user: executor)
    return executor


async def _read(stream):
    return b"".join([chunk async for chunk in stream])


def _events(api, run_id, **headers):
    response = api.get(f"/ask/runs/{run_id}/events", HTTP_ACCEPT="text/event-stream", **headers)
    assert response.status_code == 200, response.content
    raw = async_to_sync(_read)(response.streaming_content).decode()
    events = []
    for block in raw.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((int(lines["id"]), lines["event"], json.loads(lines["data"])))
    return events


def test_ask_answers_the_completed_body_of_the_run_it_queued(alice, alice_api, chat, executor):
    executor.answers["jira_search"] = lambda args: LocalResult('{"issues": ["KAN-1"]}')
    chat.script(tool_calls(("jira_search", SEARCH)), text("KAN-1 is open."))
    response = alice_api.post("/ask", {"prompt": "List KAN"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "completed" and body["message"] == "KAN-1 is open."
    run = AssistantRun.objects.get(pk=body["data"]["runId"])
    assert run.status == "completed" and run.started_at is not None

    polled = alice_api.get(f"/ask/runs/{run.pk}")
    assert polled.status_code == 200
    assert polled.json() == body  # the same body, read back from the stored run


def test_ask_answers_a_completed_run_from_its_done_event_without_reading_it_back(
    alice, alice_api, chat, monkeypatch
):
    """The worker puts /ask's body in the run's ``done`` event: the waiting request
    answers with it (no thread, no query); the run row stays what GET reads."""

    def read_back(run_id, token):
        raise AssertionError("a completed run was read back from the database")

    monkeypatch.setattr(async_views, "_result", read_back)
    chat.script(text("Hello."))
    response = alice_api.post("/ask", {"prompt": "Hi"}, format="json")
    assert response.status_code == 200, response.content
    run_id = response.json()["data"]["runId"]
    done = AssistantRunEvent.objects.get(run_id=run_id, kind="done").data
    assert done == {"status": "completed", "body": response.json()}
    assert alice_api.get(f"/ask/runs/{run_id}").json() == response.json()


def test_ask_follows_a_new_run_from_its_first_event_and_confirm_from_its_last(
    alice, alice_api, chat, monkeypatch
):
    """A new run is stored with no events: /ask follows it from the first without asking
    where its events stand; /ask/confirm resumes a run with events, followed from its last."""
    looked_up: list[int] = []
    real = async_views.run_events_last_seq

    def last_seq(*, run_id):
        looked_up.append(run_id)
        return real(run_id=run_id)

    monkeypatch.setattr(async_views, "run_events_last_seq", last_seq)
    chat.script(tool_calls(("jira_create_issue", CREATE)), text("Created KAN-2."))
    body = alice_api.post("/ask", {"prompt": "Create", "confirm": True}, format="json").json()
    assert body["status"] == "pending_confirmation" and looked_up == []
    token = body["confirmation_token"]
    confirmed = alice_api.post(
        "/ask/confirm", {"confirmation_token": token, "approved": True}, format="json"
    )
    assert confirmed.status_code == 200, confirmed.content
    assert confirmed.json()["data"]["response"] == "Created KAN-2."
    assert looked_up == [body["data"]["runId"]]


def test_a_pending_runs_done_event_carries_no_body_and_no_token(alice, alice_api, chat):
    chat.script(tool_calls(("jira_create_issue", CREATE)))
    body = alice_api.post("/ask", {"prompt": "Create", "confirm": True}, format="json").json()
    assert body["status"] == "pending_confirmation" and body["confirmation_token"]
    done = AssistantRunEvent.objects.get(run_id=body["data"]["runId"], kind="done").data
    assert done == {"status": "pending_confirmation"}


def test_no_credits_is_402_before_any_run_is_stored_or_queued(chat, settings):
    settings.BILLING_STARTER_GRANT_USD = "0"
    dora = APIClient()
    dora.force_authenticate(UserFactory(email="dora@example.com"))
    response = dora.post("/ask", {"prompt": "List KAN"}, format="json")
    assert response.status_code == 402, response.content
    assert "add credits or add your own OpenAI key" in response.json()["error"]["message"]
    assert not AssistantRun.objects.exists() and chat.requests == []


def test_a_refusal_found_in_the_worker_reaches_the_waiting_request(
    alice, alice_api, chat, monkeypatch
):
    # The real tool layer: alice has not connected Jira.
    monkeypatch.setattr(runs, "tool_executor", McpToolExecutor)
    response = alice_api.post("/ask", {"prompt": "List KAN"}, format="json")
    assert response.status_code == 409, response.content
    assert response.json()["error"]["code"] == "jira_not_connected"
    run = AssistantRun.objects.get()
    assert run.status == "failed" and run.error_status == 409 and chat.requests == []
    # Read back later, the run tells the same error.
    again = alice_api.get(f"/ask/runs/{run.pk}")
    assert again.status_code == 409 and again.json() == response.json()


def test_a_queued_run_reports_running_with_its_id(alice, alice_api):
    run = AssistantRun.objects.create(owner=alice, mode="one_shot", prompt="Hi", status="queued")
    response = alice_api.get(f"/ask/runs/{run.pk}")
    assert response.status_code == 202
    assert response.json()["status"] == "running" and response.json()["run_id"] == run.pk


def test_bob_cannot_read_alices_run_or_its_events(alice, bob_api):
    run = AssistantRun.objects.create(owner=alice, mode="one_shot", prompt="Hi")
    AssistantRunEvent.objects.create(run=run, seq=1, kind="text", data={"delta": "secret"})
    for url in (f"/ask/runs/{run.pk}", f"/ask/runs/{run.pk}/events"):
        response = bob_api.get(url)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
        assert b"secret" not in response.content


def test_the_events_stream_tells_tool_steps_and_text_deltas_in_order(
    alice, alice_api, chat, executor
):
    executor.answers["jira_search"] = lambda args: LocalResult("KAN-1", duration_ms=7)
    chat.script(tool_calls(("jira_search", SEARCH)), text("KAN-1 is the only open one."))
    run_id = alice_api.post("/ask", {"prompt": "List KAN"}, format="json").json()["data"]["runId"]

    events = _events(alice_api, run_id)
    assert [seq for seq, _, _ in events] == list(range(1, len(events) + 1))
    kinds = [kind for _, kind, _ in events]
    assert kinds[:2] == ["tool_start", "tool_end"] and kinds[-1] == "done"
    step = {"name": "jira_search", "result": "KAN-1", "durationMs": 7, "error": None}
    assert events[1][2] == step
    deltas = [data["delta"] for _, kind, data in events if kind == "text"]
    assert len(deltas) > 1 and "".join(deltas) == "KAN-1 is the only open one."

    # Reconnecting with Last-Event-ID sends only what came after it.
    rest = _events(alice_api, run_id, HTTP_LAST_EVENT_ID=str(len(events) - 1))
    assert [kind for _, kind, _ in rest] == ["done"]


def test_reading_a_pending_run_issues_no_token_and_the_askers_token_still_works(
    alice, alice_api, chat, executor
):
    chat.script(tool_calls(("jira_create_issue", CREATE)))
    body = alice_api.post("/ask", {"prompt": "Create", "confirm": True}, format="json").json()
    assert body["status"] == "pending_confirmation" and executor.calls == []
    assert body["confirmation_token"].startswith("confirm_")
    run_id = body["data"]["runId"]
    filed_under = PendingConfirmation.objects.get().token_hash

    # Any number of reads (a poll, a cross-site navigation) writes nothing and shows no
    # token: the page's own token keeps working.
    for _ in range(2):
        reread = alice_api.get(f"/ask/runs/{run_id}")
        assert reread.status_code == 200
        assert reread.json()["status"] == "pending_confirmation"
        assert "confirmation_token" not in reread.json()
        assert reread.json()["data"]["action"]["tool"] == "jira_create_issue"
    assert PendingConfirmation.objects.get().token_hash == filed_under

    chat.script(text("Created KAN-2."))
    done = alice_api.post(
        "/ask/confirm",
        {"confirmation_token": body["confirmation_token"], "approved": True},
        format="json",
    )
    assert done.status_code == 200, done.content
    assert done.json()["message"] == "Action confirmed and executed successfully"
    assert executor.calls == [("jira_create_issue", CREATE)]
    assert alice_api.get(f"/ask/runs/{run_id}").json() == done.json()


def test_a_confirm_run_answered_with_202_shows_its_token_in_that_body_only(
    alice, alice_api, chat, executor, monkeypatch, settings
):
    # No worker picks the run up while /ask waits: it answers 202.
    settings.ASK_SYNC_TIMEOUT = 0.3
    monkeypatch.setattr(async_views, "run_enqueue", lambda *, run_id: None)
    chat.script(tool_calls(("jira_create_issue", CREATE)))
    accepted = alice_api.post("/ask", {"prompt": "Create", "confirm": True}, format="json")
    assert accepted.status_code == 202, accepted.content
    token = accepted.json()["confirmation_token"]
    run_id = accepted.json()["run_id"]
    assert token.startswith("confirm_")

    assert run_execute(run_id=run_id) == "pending_confirmation"  # the worker, later
    monkeypatch.setattr(async_views, "run_enqueue", runs.run_enqueue)  # workers are back
    polled = alice_api.get(f"/ask/runs/{run_id}").json()
    assert polled["status"] == "pending_confirmation" and "confirmation_token" not in polled

    chat.script(text("Created KAN-2."))
    done = alice_api.post(
        "/ask/confirm", {"confirmation_token": token, "approved": True}, format="json"
    )
    assert done.status_code == 200, done.content
    assert executor.calls == [("jira_create_issue", CREATE)]


def test_a_one_shot_run_answered_with_202_has_no_token(
    alice, alice_api, chat, monkeypatch, settings
):
    settings.ASK_SYNC_TIMEOUT = 0.3
    monkeypatch.setattr(async_views, "run_enqueue", lambda *, run_id: None)
    accepted = alice_api.post("/ask", {"prompt": "List KAN"}, format="json")
    assert accepted.status_code == 202
    assert set(accepted.json()) == {"status", "run_id", "message"}


def test_the_events_stream_follows_the_run_through_its_approval_to_the_end(
    alice, alice_api, chat, executor
):
    chat.script(tool_calls(("jira_create_issue", CREATE)))
    body = alice_api.post("/ask", {"prompt": "Create", "confirm": True}, format="json").json()
    run_id = body["data"]["runId"]
    response = alice_api.get(f"/ask/runs/{run_id}/events", HTTP_ACCEPT="text/event-stream")

    def approve():
        chat.script(text("Created KAN-2."))
        return alice_api.post(
            "/ask/confirm",
            {"confirmation_token": body["confirmation_token"], "approved": True},
            format="json",
        )

    async def follow():
        seen = []
        async for chunk in response.streaming_content:
            lines = dict(line.split(": ", 1) for line in chunk.decode().strip().split("\n"))
            seen.append((lines["event"], json.loads(lines["data"])))
            if seen[-1] == ("done", {"status": "pending_confirmation"}):
                # The client is still connected when the user approves.
                assert (await sync_to_async(approve)()).status_code == 200
        return seen

    seen = async_to_sync(follow)()
    kinds = [kind for kind, _ in seen]
    assert kinds[:2] == ["pending", "done"]
    assert seen[0][1]["action"] == {"tool": "jira_create_issue", "arguments": CREATE}
    assert "confirm_" not in json.dumps(seen)  # tokens never travel in events
    assert kinds[2:4] == ["tool_start", "tool_end"] and seen[3][1]["name"] == "jira_create_issue"
    assert kinds[-1] == "done" and seen[-1][1]["status"] == "completed"
    assert seen[-1][1]["body"] == alice_api.get(f"/ask/runs/{run_id}").json()
    assert "".join(d["delta"] for k, d in seen if k == "text") == "Created KAN-2."


def test_a_finished_runs_stream_replays_both_parts_of_an_approved_run(
    alice, alice_api, chat, executor
):
    chat.script(tool_calls(("jira_create_issue", CREATE)))
    body = alice_api.post("/ask", {"prompt": "Create", "confirm": True}, format="json").json()
    chat.script(text("Created KAN-2."))
    confirmed = alice_api.post(
        "/ask/confirm",
        {"confirmation_token": body["confirmation_token"], "approved": True},
        format="json",
    )
    events = _events(alice_api, body["data"]["runId"])
    kinds = [kind for _, kind, _ in events]
    assert kinds.count("done") == 2 and kinds[-1] == "done"
    assert events[-1][2] == {"status": "completed", "body": confirmed.json()}


def test_an_unanswered_actions_stream_ends_when_the_confirmation_expires(
    alice, alice_api, chat, executor
):
    chat.script(tool_calls(("jira_create_issue", CREATE)))
    body = alice_api.post("/ask", {"prompt": "Create", "confirm": True}, format="json").json()
    PendingConfirmation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    events = _events(alice_api, body["data"]["runId"])
    assert [kind for _, kind, _ in events][-3:] == ["pending", "done", "done"]
    assert events[-1][2] == {"status": "expired"}


def test_a_ninth_open_stream_of_one_user_is_refused_until_one_ends(alice, bob, alice_api, bob_api):
    run = AssistantRun.objects.create(owner=alice, mode="one_shot", prompt="Hi", status="completed")
    bobs = AssistantRun.objects.create(owner=bob, mode="one_shot", prompt="Hi", status="queued")
    url = f"/ask/runs/{run.pk}/events"
    open_streams = [alice_api.get(url, HTTP_ACCEPT="text/event-stream") for _ in range(8)]
    assert [r.status_code for r in open_streams] == [200] * 8
    refused = alice_api.get(url, HTTP_ACCEPT="text/event-stream")
    assert refused.status_code == 429 and refused["Retry-After"]
    assert refused.json()["error"]["code"] == "rate_limited"
    # Per user: bob's streams are his own count.
    assert bob_api.get(f"/ask/runs/{bobs.pk}/events").status_code == 200

    async_to_sync(_read)(open_streams[0].streaming_content)  # read to its end
    assert alice_api.get(url, HTTP_ACCEPT="text/event-stream").status_code == 200
    assert alice_api.get(url, HTTP_ACCEPT="text/event-stream").status_code == 429

    # Closed by the server without being read (the client went away): given back once,
    # however often it is closed.
    with connections_kept_on_close():  # as the test client closes
        open_streams[1].close()
        open_streams[1].close()
    assert alice_api.get(url, HTTP_ACCEPT="text/event-stream").status_code == 200
    assert alice_api.get(url, HTTP_ACCEPT="text/event-stream").status_code == 429


def test_a_cancelled_action_runs_nothing_and_the_run_says_so(alice, alice_api, chat, executor):
    chat.script(tool_calls(("jira_create_issue", CREATE)))
    token = alice_api.post("/ask", {"prompt": "Create", "confirm": True}, format="json").json()[
        "confirmation_token"
    ]
    chat.script(text("Alright, nothing created."))
    done = alice_api.post(
        "/ask/confirm", {"confirmation_token": token, "approved": False}, format="json"
    )
    assert done.status_code == 200 and done.json()["message"] == "Action cancelled"
    assert executor.calls == []
    assert PendingConfirmation.objects.get().approved is False


def test_a_redelivered_task_does_not_run_the_run_again(alice, alice_api, chat, executor):
    chat.script(tool_calls(("jira_search", SEARCH)), text("Done."))
    run_id = alice_api.post("/ask", {"prompt": "List KAN"}, format="json").json()["data"]["runId"]
    assert run_execute(run_id=run_id) == "skipped"  # acks_late: a worker died after the run
    assert len(executor.calls) == 1 and len(chat.requests) == 2


def test_an_invalid_ask_is_a_400_and_stores_nothing(alice_api):
    response = alice_api.post("/ask", {"prompt": ""}, format="json")
    assert response.status_code == 400
    assert "prompt" in response.json()["error"]["fields"]
    assert not AssistantRun.objects.exists()


def test_ask_needs_a_signed_in_user(api_client):
    response = api_client.post("/ask", {"prompt": "List KAN"}, format="json")
    assert response.status_code == 401
    assert not AssistantRun.objects.exists()


def test_a_personal_api_token_authenticates_ask_as_the_drf_views_do(alice, chat):
    chat.script(text("Hello."))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=alice, name='cli')[1]}")
    response = client.post("/ask", {"prompt": "Hi"}, format="json")
    assert response.status_code == 200, response.content
    assert AssistantRun.objects.get().owner == alice


def test_a_browser_session_needs_the_csrf_token(alice, chat):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    refused = browser.post("/ask", {"prompt": "Hi"}, content_type="application/json")
    assert refused.status_code == 403 and not AssistantRun.objects.exists()

    browser.get("/dashboard/assistant/")  # sets the CSRF cookie
    chat.script(text("Hello."))
    allowed = browser.post(
        "/ask",
        {"prompt": "Hi"},
        content_type="application/json",
        HTTP_X_CSRFTOKEN=browser.cookies["csrftoken"].value,
    )
    assert allowed.status_code == 200, allowed.content


def test_a_run_whose_approval_was_purged_reads_as_expired(alice, alice_api, chat, executor):
    """Old code: once the purge deleted its unanswered confirmation, the run read back as
    `completed` with an empty message, as if something had been done."""
    chat.script(tool_calls(("jira_create_issue", CREATE)))
    body = alice_api.post("/ask", {"prompt": "Create", "confirm": True}, format="json").json()
    run_id = body["data"]["runId"]
    PendingConfirmation.objects.all().delete()  # what the purge does a day after expiry
    response = alice_api.get(f"/ask/runs/{run_id}")
    assert response.status_code == 410, response.content
    error = response.json()["error"]
    assert error["code"] == "confirmation_expired"
    assert "nothing was done" in error["message"]
    assert executor.calls == []
