"""The assistant's API (seed 003): ``GET /mcp/status``."""

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from assistant.serializers import McpStatusOutputSerializer
from assistant.services.mcp import assistant_mcp_status


class McpStatusApi(APIView):
    """``GET /mcp/status``: whether the Jira tools answer for you, and which you may use."""

    @extend_schema(
        summary="Jira tools (MCP) status",
        description=(
            "Whether the MCP server for Jira and Confluence is enabled and answers with your "
            "Atlassian access, and the tools you may use (disabled ones left out). An "
            "unreachable server is reported as `connected: false`. 409 "
            "`jira_not_connected` when Jira is not connected (`kay connect jira`), 409 "
            "`connection_needs_reauth` when its token cannot be refreshed."
        ),
        responses={200: McpStatusOutputSerializer, 409: None},
    )
    def get(self, request: Request) -> Response:
        body = assistant_mcp_status(user=request.user)  # type: ignore[arg-type]
        return Response(McpStatusOutputSerializer(body).data)
