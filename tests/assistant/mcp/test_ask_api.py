"""POST /ask and /ask/confirm end to end: the real openai SDK against the fake chat server,
Kay's MCP layer against the real mcp-atlassian (streamable HTTP) or the small stdio server,
and the fake Jira behind it — each user's own token on the wire."""

from __future__ import annotations

import pytest

from assistant.models import AssistantRun
from tests.assistant.mcp.conftest import ALICE_TOKEN, BOB_TOKEN
from tests.fakes.openai_chat import error, text, tool_calls
from tests.helpers.processes import free_port

pytestmark = pytest.mark.django_db

CREATE = {"project_key": "KAN", "summary": "Fix login bug", "issue_type": "Task"}
PROMPT = "Create a ticket in project KAN with title 'Fix login bug'"


def _ask(api, **body):
    return api.post("/ask", {"prompt": PROMPT, **body}, format="json")


def _created(jira):
    return [i for i in jira.issues.values() if i["summary"] == "Fix login bug"]


def test_one_shot_creates_the_ticket_in_jira_with_alices_token(
    over_http, alice_jira, alice_api, chat
):
    chat.script(
        tool_calls(("jira_create_issue", CREATE)), text("I've created ticket KAN-2: Fix login bug")
    )
    response = _ask(alice_api, interactive=False, confirm=False)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "completed"
    assert body["message"] == "I've created ticket KAN-2: Fix login bug"
    assert body["data"]["prompt"] == PROMPT and body["data"]["response"] == body["message"]
    [call] = body["data"]["toolCalls"]
    assert call["name"] == "jira_create_issue" and call["arguments"] == CREATE
    assert "KAN-2" in call["result"] and call["error"] is None and call["durationMs"] >= 0
    [issue] = _created(over_http)
    assert issue["reporter"] == "alice"
    assert over_http.tokens_for(lambda seen: seen.method == "POST") == {ALICE_TOKEN}
    # The model was offered the real tools (less the disabled ones) and saw Jira's answer.
    assert "jira_create_issue" in chat.requests[0].tool_names
    assert "jira_delete_issue" not in chat.requests[0].tool_names
    assert "KAN-2" in chat.requests[1].messages[-1]["content"]


def test_bobs_request_carries_bobs_token(over_http, bob_jira, bob_api, chat):
    chat.script(tool_calls(("jira_search", {"jql": "project = KAN"})), text("One ticket."))
    response = bob_api.post("/ask", {"prompt": "List KAN"}, format="json")
    assert response.status_code == 200, response.content
    assert over_http.tokens_for(lambda seen: "search" in seen.path) == {BOB_TOKEN}


def test_confirm_over_the_api_creates_once_after_approval(over_http, alice_jira, alice_api, chat):
    chat.script(tool_calls(("jira_create_issue", CREATE)))
    pending = _ask(alice_api, confirm=True).json()
    assert pending["status"] == "pending_confirmation"
    assert pending["data"]["action"] == {"tool": "jira_create_issue", "arguments": CREATE}
    assert pending["message"].startswith("Kay wants to create issue in Jira")
    assert _created(over_http) == []  # nothing written before approval

    chat.script(text("Created KAN-2."))
    token = pending["confirmation_token"]
    done = alice_api.post(
        "/ask/confirm", {"confirmation_token": token, "approved": True}, format="json"
    )
    assert done.status_code == 200, done.content
    assert done.json()["status"] == "completed"
    assert done.json()["message"] == "Action confirmed and executed successfully"
    assert len(_created(over_http)) == 1

    again = alice_api.post(
        "/ask/confirm", {"confirmation_token": token, "approved": True}, format="json"
    )
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "confirmation_used"
    assert len(_created(over_http)) == 1


def test_bob_cannot_confirm_alices_action(
    over_stdio, alice_jira, bob_jira, alice_api, bob_api, chat
):
    chat.script(tool_calls(("jira_create_issue", CREATE)))
    token = _ask(alice_api, confirm=True).json()["confirmation_token"]
    response = bob_api.post(
        "/ask/confirm", {"confirmation_token": token, "approved": True}, format="json"
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "confirmation_not_found"
    assert len(chat.requests) == 1


def test_over_stdio_a_tool_error_is_explained_by_the_model(over_stdio, alice_jira, alice_api, chat):
    chat.script(
        tool_calls(("jira_get_issue", {"issue_key": "KAN-404"})), text("KAN-404 does not exist.")
    )
    body = _ask(alice_api, prompt="What is KAN-404?").json()
    assert body["status"] == "completed" and body["message"] == "KAN-404 does not exist."
    assert "not found" in body["data"]["toolCalls"][0]["error"]
    assert chat.requests[1].messages[-1]["content"].startswith("Error: ")


def test_interactive_returns_the_session_to_continue(over_stdio, alice_jira, alice_api, chat):
    chat.script(text("Hello Alice."), text("You said hi."))
    first = alice_api.post("/ask", {"prompt": "hi", "interactive": True}, format="json").json()
    session_id = first["session_id"]
    second = alice_api.post(
        "/ask",
        {"prompt": "What did I say?", "interactive": True, "session_id": session_id},
        format="json",
    ).json()
    assert second["session_id"] == session_id
    assert [m["content"] for m in chat.requests[1].messages[1:]] == [
        "hi",
        "Hello Alice.",
        "What did I say?",
    ]


def test_without_jira_it_says_connect_jira_first(alice, alice_api, chat):
    response = _ask(alice_api)
    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "jira_not_connected",
        "message": "Connect Jira first: kay connect jira",
    }
    assert chat.requests == []


def test_no_key_and_no_credits_is_402_before_any_model_call(alice_jira, alice_api, chat, settings):
    settings.OPENAI_API_KEY = ""
    response = _ask(alice_api)
    assert response.status_code == 402
    assert response.json()["error"]["code"] == "no_llm_key"
    assert chat.requests == [] and not AssistantRun.objects.exists()


def test_an_unreachable_mcp_server_is_503_and_the_model_is_not_called(
    alice_jira, alice_api, chat, settings
):
    settings.MCP_JIRA_URL = f"http://127.0.0.1:{free_port()}/mcp"
    settings.MCP_TIMEOUT = 3
    response = _ask(alice_api)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "mcp_unavailable"
    assert chat.requests == []


def test_a_model_failure_is_a_json_error(over_stdio, alice_jira, alice_api, chat):
    chat.script(error(500))
    response = _ask(alice_api)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "provider_unavailable"
    assert "fake vendor error text" not in response.content.decode()
    assert AssistantRun.objects.get().status == "failed"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/ask", {}, "prompt"),
        ("/ask", {"prompt": "   "}, "prompt"),
        ("/ask", {"prompt": "hi", "session_id": "abc"}, "session_id"),
        ("/ask", {"prompt": "hi", "confirm": "maybe"}, "confirm"),
        ("/ask/confirm", {"approved": True}, "confirmation_token"),
        ("/ask/confirm", {"confirmation_token": "confirm_x"}, "approved"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(alice_api, chat, path, body, field):
    response = alice_api.post(path, body, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert chat.requests == []


def test_signed_out_is_refused(client, chat):
    assert client.post("/ask", {"prompt": "hi"}, content_type="application/json").status_code in (
        401,
        403,
    )
