"""What core's own endpoint answers (``GET /health``), shown in /api/docs/."""

from rest_framework import serializers


class HealthCheckSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=["healthy", "unhealthy", "not_configured", "unknown"],
        help_text="unknown: not checked yet (mcp_jira reports its last known state).",
    )
    latencyMs = serializers.FloatField(help_text="How long the check took.")
    error = serializers.CharField(
        required=False, help_text="Why it failed: an exception's class name or a short reason."
    )


class HealthOutputSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["healthy", "unhealthy"])
    timestamp = serializers.DateTimeField()
    services = serializers.DictField(
        child=HealthCheckSerializer(),
        help_text="database, broker, worker, openai and mcp_jira; each may add details "
        "(engine, transport, configured, enabled, connected, toolCount).",
    )
