"""What the assistant's endpoints answer (seed 003 bodies)."""

from typing import Any

from rest_framework import serializers

from assistant.services.ask import AskOutcome
from core.ids import IdField


class McpToolOutputSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()


class McpStatusOutputSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(help_text="Whether this server offers the Jira tools.")
    connected = serializers.BooleanField(help_text="Whether the MCP server answered.")
    initialized = serializers.BooleanField(help_text="Whether your MCP session is set up.")
    toolCount = serializers.IntegerField(help_text="How many tools you may use.")
    tools = McpToolOutputSerializer(many=True)


# --- /ask, /ask/confirm and conversations ----------------------------------------------


class AskInputSerializer(serializers.Serializer):
    prompt = serializers.CharField(max_length=20_000, trim_whitespace=True)
    interactive = serializers.BooleanField(required=False, default=False)
    confirm = serializers.BooleanField(required=False, default=False)
    session_id = IdField(
        required=False,
        allow_null=True,
        help_text="Continue this conversation (interactive); without it a new one starts.",
    )


class ConfirmInputSerializer(serializers.Serializer):
    confirmation_token = serializers.CharField(max_length=200)
    approved = serializers.BooleanField()


class ToolCallSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    arguments = serializers.JSONField()
    result = serializers.CharField(help_text="The start of what the tool answered.")
    durationMs = serializers.IntegerField()
    error = serializers.CharField(allow_null=True)


class AskDataSerializer(serializers.Serializer):
    prompt = serializers.CharField()
    response = serializers.CharField()
    toolCalls = ToolCallSerializer(many=True)
    runId = serializers.IntegerField()


class ActionSerializer(serializers.Serializer):
    tool = serializers.CharField()
    arguments = serializers.JSONField()


class PendingDataSerializer(serializers.Serializer):
    action = ActionSerializer()
    toolCalls = ToolCallSerializer(many=True)
    runId = serializers.IntegerField()


class AskOutputSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["completed", "pending_confirmation"])
    message = serializers.CharField()
    session_id = serializers.IntegerField(
        required=False, help_text="Interactive mode: the conversation to continue."
    )
    confirmation_token = serializers.CharField(
        required=False, help_text="Pending confirmation: send it to /ask/confirm within 10 minutes."
    )
    # DRF's metaclass moves declared fields off the class, so "data" does not shadow .data.
    data = serializers.JSONField(  # type: ignore[assignment]
        help_text="completed: AskData; pending_confirmation: PendingData"
    )


def ask_body(outcome: AskOutcome) -> dict[str, Any]:
    """The seed's body for an outcome: completed, or waiting for confirmation. Built as
    ``AskDataSerializer`` / ``PendingDataSerializer`` would build its ``data`` (the same
    keys and types: tests/assistant/test_ask_body.py), without their ~0.4 ms per answer."""
    body: dict[str, Any] = {"status": outcome.status, "message": outcome.message}
    if outcome.session_id is not None:
        body["session_id"] = outcome.session_id
    calls = [_tool_call(record) for record in outcome.tool_calls]
    if outcome.status == "pending_confirmation":
        if outcome.confirmation_token:  # only for the request that started the run
            body["confirmation_token"] = outcome.confirmation_token
        action = outcome.action
        body["data"] = {
            "action": None
            if action is None
            else {"tool": _text(action.get("tool")), "arguments": action.get("arguments")},
            "toolCalls": calls,
            "runId": int(outcome.run.pk),
        }
    else:
        body["data"] = {
            "prompt": _text(outcome.prompt),
            "response": _text(outcome.response),
            "toolCalls": calls,
            "runId": int(outcome.run.pk),
        }
    return body


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _tool_call(record: dict[str, Any]) -> dict[str, Any]:
    duration = record.get("durationMs")
    return {
        "id": _text(record.get("id")),
        "name": _text(record.get("name")),
        "arguments": record.get("arguments"),
        "result": _text(record.get("result")),
        "durationMs": None if duration is None else int(duration),
        "error": _text(record.get("error")),
    }


class SessionOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class SessionDetailOutputSerializer(SessionOutputSerializer):
    messages = serializers.JSONField(help_text="The conversation in Chat Completions' shape.")


class SessionRenameInputSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200)
