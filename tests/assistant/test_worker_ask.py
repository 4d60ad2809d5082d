"""/ask end to end through a real Celery worker (queue ``assistant``): the test's request
stores and queues the run, the worker executes it against the fake chat server and the
stdio MCP test server with alice's own token, publishes its progress on Redis, and the
request answers the seed's body. One worker serves the whole module.

PostgreSQL and Redis only: the worker is another process, so it must reach the test
database over the network, and the run's events travel through Redis."""

import json
import time

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import connection

from assistant.models import AssistantRun
from tests.assistant.chat import SERVER_KEY
from tests.assistant.mcp.conftest import ALICE_TOKEN, STDIO_SERVER, connect_jira
from tests.fakes.openai_chat import FakeOpenAIChat, text, tool_calls
from tests.helpers.processes import running

pytestmark = [
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql" or not settings.REDIS_URL,
        reason="the worker process needs PostgreSQL, the run's events Redis",
    ),
]

SEARCH = {"jql": "project = KAN"}


def database_url() -> str:
    """The test database, as the worker's ``DATABASE_URL``."""
    db = connection.settings_dict
    return (
        f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}"
    )


@pytest.fixture(scope="module")
def chat():
    fake = FakeOpenAIChat().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def worker(django_db_setup, django_db_blocker, chat, tmp_path_factory):
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    with django_db_blocker.unblock():
        url = database_url()
    with running(
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        "--pool=threads",
        "--concurrency=4",
        "-Q",
        "assistant",
        "--loglevel=INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        log=log,
        env={
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": url,
            "REDIS_URL": settings.REDIS_URL,
            "OPENAI_BASE_URL": chat.base_url,
            "OPENAI_API_KEY": SERVER_KEY,
            "OPENAI_MAX_RETRIES": "0",
            "MCP_JIRA_ENABLED": "true",
            "MCP_JIRA_URL": "",
            "MCP_JIRA_COMMAND": STDIO_SERVER[0],
            "MCP_JIRA_ARGS": ",".join(STDIO_SERVER[1:]),
            "MCP_JIRA_SITE_URL": "https://example.atlassian.net",
        },
        ready=lambda: "ready." in log.read_text(),
    ):
        yield log


@pytest.fixture
def alice_jira(alice):
    return connect_jira(alice, ALICE_TOKEN, "cloud-alice")


@pytest.fixture
def settings_for_runs(settings, chat):
    settings.OPENAI_BASE_URL = chat.base_url
    settings.OPENAI_API_KEY = SERVER_KEY
    settings.ASK_SYNC_TIMEOUT = 60
    return settings


def _holds_closed(user, timeout: float = 10) -> None:
    from billing.models import CreditHold

    deadline = time.monotonic() + timeout
    while CreditHold.objects.filter(account__user=user, status="open").exists():
        assert time.monotonic() < deadline, "the run's hold was never closed"
        time.sleep(0.02)


def _ask(api, **body):
    return api.post("/ask", {"prompt": "List KAN", **body}, format="json")


async def _read(stream):
    return b"".join([chunk async for chunk in stream])


def _events(api, run_id):
    response = api.get(f"/ask/runs/{run_id}/events", HTTP_ACCEPT="text/event-stream")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    raw = async_to_sync(_read)(response.streaming_content).decode()
    events = []
    for block in raw.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_a_real_worker_answers_ask_and_reuses_the_mcp_session_across_two_requests(
    worker, chat, settings_for_runs, alice, alice_jira, alice_api
):
    chat.script(tool_calls(("jira_search", SEARCH)), text("KAN has one ticket."))
    first = _ask(alice_api)
    assert first.status_code == 200, first.content
    body = first.json()
    assert body["status"] == "completed" and body["message"] == "KAN has one ticket."
    [call] = body["data"]["toolCalls"]
    assert call["name"] == "jira_search" and call["error"] is None
    first_answer = json.loads(call["result"])
    assert first_answer["token"] == ALICE_TOKEN  # alice's own token, in the worker

    # The answer goes out before the run's calls are charged and its hold closed (the
    # hold lowered to their cost meanwhile: test_ask_credits); the charge done, nothing
    # is left open.
    _holds_closed(alice)
    chat.script(tool_calls(("jira_search", SEARCH)), text("Still one."))
    second = _ask(alice_api)
    assert second.status_code == 200, second.content
    second_answer = json.loads(second.json()["data"]["toolCalls"][0]["result"])
    # One spawn, two calls: the worker's pooled session served both requests.
    assert second_answer["pid"] == first_answer["pid"]
    assert first_answer["pid"] not in (None, 0)

    run = AssistantRun.objects.get(pk=body["data"]["runId"])
    assert run.status == "completed" and run.owner == alice and run.started_at is not None
    assert "assistant.tasks.assistant_run_execute" in worker.read_text()


def test_past_the_sync_timeout_ask_answers_202_and_the_run_is_polled_to_its_body(
    worker, chat, settings_for_runs, alice, alice_jira, alice_api, bob_api
):
    settings_for_runs.ASK_SYNC_TIMEOUT = 0.01
    # Slow enough that the run cannot end before the request even starts waiting (a
    # loaded CI machine took over a second between storing the run and the wait).
    chat.script(text("Slow but sure.", delay=4.0))
    started = _ask(alice_api)
    assert started.status_code == 202, started.content
    assert started.json()["status"] == "running"
    run_id = started.json()["run_id"]

    assert bob_api.get(f"/ask/runs/{run_id}").status_code == 404
    deadline = time.monotonic() + 30
    while (polled := alice_api.get(f"/ask/runs/{run_id}")).status_code == 202:
        assert polled.json() == started.json()
        assert time.monotonic() < deadline, "the worker did not finish the run"
        time.sleep(0.2)
    assert polled.status_code == 200
    assert polled.json()["status"] == "completed"
    assert polled.json()["message"] == "Slow but sure."


def test_the_events_stream_yields_text_deltas_and_tool_steps_in_order(
    worker, chat, settings_for_runs, alice, alice_jira, alice_api, bob_api
):
    chat.script(tool_calls(("jira_search", SEARCH)), text("KAN has one open ticket."))
    answered = _ask(alice_api).json()
    run_id = answered["data"]["runId"]

    events = _events(alice_api, run_id)
    kinds = [kind for kind, _ in events]
    assert kinds[:2] == ["tool_start", "tool_end"]
    assert kinds[-1] == "done" and events[-1][1] == {"status": "completed", "body": answered}
    assert set(kinds[2:-1]) == {"text"} and len(kinds[2:-1]) > 1  # streamed in pieces
    assert events[0][1] == {"name": "jira_search", "arguments": SEARCH}
    assert "".join(data["delta"] for kind, data in events if kind == "text") == (
        "KAN has one open ticket."
    )
    # Someone else's run is as unknown as a missing one, its events included.
    assert bob_api.get(f"/ask/runs/{run_id}/events").status_code == 404


def test_confirm_through_the_worker_runs_the_write_once_after_approval(
    worker, chat, settings_for_runs, alice, alice_jira, alice_api
):
    create = {"project_key": "KAN", "summary": "Fix login bug", "issue_type": "Task"}
    chat.script(tool_calls(("jira_create_issue", create)))
    pending = _ask(alice_api, confirm=True)
    assert pending.status_code == 200, pending.content
    body = pending.json()
    assert body["status"] == "pending_confirmation"
    assert body["data"]["action"] == {"tool": "jira_create_issue", "arguments": create}
    assert body["confirmation_token"].startswith("confirm_")
    assert body["data"]["toolCalls"] == []  # nothing written before approval

    chat.script(text("Created KAN-2."))
    token = body["confirmation_token"]
    done = alice_api.post(
        "/ask/confirm", {"confirmation_token": token, "approved": True}, format="json"
    )
    assert done.status_code == 200, done.content
    assert done.json()["status"] == "completed"
    assert done.json()["message"] == "Action confirmed and executed successfully"
    [call] = done.json()["data"]["toolCalls"]
    assert call["name"] == "jira_create_issue" and call["error"] is None
    assert json.loads(call["result"])["token"] == ALICE_TOKEN

    again = alice_api.post(
        "/ask/confirm", {"confirmation_token": token, "approved": True}, format="json"
    )
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "confirmation_used"
