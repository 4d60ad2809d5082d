"""Writes and outside calls for the assistant, one module per responsibility (the Jira
tools over MCP are ``mcp``)."""
