"""Service connections after seed 003 "Database": Kay sessions, OAuth states, connections.

Identifiers that act as credentials (the CLI's ``session_id``, the OAuth ``state``) are
stored as SHA-256 digests; OAuth tokens are encrypted with ``core.fields``.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone

from core.fields import EncryptedTextField


class KaySession(models.Model):
    """The CLI's persistent ``session_id``; linked to a user on its first connection."""

    key_hash = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="kay_sessions",
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "Kay session"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Kay session {self.pk}"


class OAuthState(models.Model):
    """One authorisation attempt: single use, 10 minutes, bound to a session and service."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        AWAITING_CONFIRMATION = "awaiting", "Waiting for the browser to confirm"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        COLLECTED = "collected", "Tokens collected"

    class Origin(models.TextChoices):
        CLI = "cli", "CLI"
        DASHBOARD = "dashboard", "Dashboard"

    state_hash = models.CharField(max_length=64, unique=True)
    session = models.ForeignKey(KaySession, on_delete=models.CASCADE, related_name="states")
    service = models.CharField(max_length=32)
    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.CLI)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    account_id = models.CharField(max_length=128, blank=True)
    # Set only on the session's first connection: the CLI session whose tokens
    # GET /auth/status hands out once.
    cli_session = models.ForeignKey(
        "accounts.CliSession", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.CharField(max_length=300, blank=True)
    # Who asked, shown on the confirmation page so a person can tell their CLI from a
    # phisher's: the code the CLI printed, its address and program.
    user_code = models.CharField(max_length=16, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    client_name = models.CharField(max_length=200, blank=True)
    # SHA-256 of a nonce kept in the Django session of the browser allowed to finish:
    # the one that started a dashboard connection, or that brought a CLI's code back.
    browser_hash = models.CharField(max_length=64, blank=True)
    # A CLI's first connection, exchanged but not yet confirmed: the provider's tokens
    # (encrypted) and the identity and sites they showed (not secret).
    pending_tokens = EncryptedTextField(aad_owner_field="session", null=True, blank=True)
    pending_identity = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["expires_at"])]

    def __str__(self) -> str:
        return f"OAuth state {self.pk} ({self.service}, {self.status})"


class Connection(models.Model):
    """A user's authorised link to one service, with its (encrypted) OAuth tokens."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Connected"
        NEEDS_REAUTH = "needs_reauth", "Needs re-authorisation"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="connections"
    )
    service = models.CharField(max_length=32)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    external_account_id = models.CharField(max_length=128, blank=True)
    access_token = EncryptedTextField(aad_owner_field="user")
    refresh_token = EncryptedTextField(aad_owner_field="user", null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    scopes = models.TextField(blank=True)
    connected_at = models.DateTimeField(default=timezone.now)
    last_refreshed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["service"]
        constraints = [
            models.UniqueConstraint(fields=["user", "service"], name="connection_user_service")
        ]
        indexes = [models.Index(fields=["status", "expires_at"])]

    def __str__(self) -> str:
        return f"{self.service} connection of {self.user_id}"


class AccessibleResource(models.Model):
    """An Atlassian site (cloud id) a connection's token may reach."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="resources")
    resource_id = models.CharField(max_length=64)
    name = models.CharField(max_length=200)
    url = models.URLField(max_length=500)
    scopes = models.JSONField(default=list)
    avatar_url = models.URLField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "resource_id"], name="resource_connection_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.url})"
