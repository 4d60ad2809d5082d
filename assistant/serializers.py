"""What the assistant's endpoints answer (seed 003 bodies)."""

from rest_framework import serializers


class McpToolOutputSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()


class McpStatusOutputSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(help_text="Whether this server offers the Jira tools.")
    connected = serializers.BooleanField(help_text="Whether the MCP server answered.")
    initialized = serializers.BooleanField(help_text="Whether your MCP session is set up.")
    toolCount = serializers.IntegerField(help_text="How many tools you may use.")
    tools = McpToolOutputSerializer(many=True)
