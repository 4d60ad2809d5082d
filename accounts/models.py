"""Accounts: a user is an email address (unique, case-insensitive)."""

from typing import Any, ClassVar

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone


def normalize_email(email: str) -> str:
    return (email or "").strip().lower()


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def get_by_natural_key(self, username: str | None) -> "User":
        return self.get(email__iexact=normalize_email(username or ""))

    def _create(self, email: str, password: str | None, **extra: Any) -> "User":
        if not email:
            raise ValueError("An email address is required")
        user = self.model(email=normalize_email(email), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> "User":
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> "User":
        extra.update(is_staff=True, is_superuser=True)
        return self._create(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    email = models.EmailField("email address", max_length=254, unique=True)
    name = models.CharField(max_length=150, blank=True)
    is_staff = models.BooleanField(
        default=False, help_text="Can log into the operator console (/admin/)."
    )
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    EMAIL_FIELD = "email"
    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        ordering = ["email"]
        constraints = [
            models.UniqueConstraint(Lower("email"), name="accounts_user_email_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.email

    def clean(self) -> None:
        super().clean()
        self.email = normalize_email(self.email)

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.email = normalize_email(self.email)
        super().save(*args, **kwargs)

    def get_full_name(self) -> str:
        return self.name or self.email

    def get_short_name(self) -> str:
        return self.name or self.email.split("@")[0]


# --- CLI sessions, personal API tokens, device login (issue 4) ---------------------------
# Secrets issued to clients (refresh tokens, API-token ids, device and user codes) are
# stored only as SHA-256 hex digests; the plaintext is shown to the client once.


class CliSession(models.Model):
    """One signed-in CLI: a refresh-token family. Its public id is the JWT's ``sid``."""

    class Origin(models.TextChoices):
        CONNECTION = "connection", "Service connection"
        DEVICE = "device", "Device login"

    public_id = models.UUIDField(unique=True, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="cli_sessions")
    account_id = models.CharField(
        max_length=128, blank=True, help_text="Atlassian account id, when signed in through one."
    )
    origin = models.CharField(max_length=16, choices=Origin.choices)
    client_name = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(help_text="Absolute end of the family, however refreshed.")
    last_refreshed_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=32, blank=True)

    class Meta:
        verbose_name = "CLI session"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["expires_at"])]

    def __str__(self) -> str:
        return f"CLI session {self.public_id} of {self.user_id}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now()


class RefreshToken(models.Model):
    """One member of a family. ``rotated_at`` set = spent; showing it again is theft."""

    session = models.ForeignKey(CliSession, on_delete=models.CASCADE, related_name="tokens")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    rotated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"refresh token {self.pk} of session {self.session_id}"


class ApiToken(models.Model):
    """A personal API token (seed 000). The JWT is shown once; only its ``jti`` hash stays."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    jti_hash = models.CharField(max_length=64, unique=True)
    version = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # The CLI sign-in that minted it: revoking that family revokes this token too, so a
    # phished CLI session cannot outlive its revocation through a token it created.
    cli_session = models.ForeignKey(
        CliSession, null=True, blank=True, on_delete=models.CASCADE, related_name="api_tokens"
    )

    class Meta:
        verbose_name = "API token"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"API token {self.name!r} of {self.user_id}"


class DeviceAuthorization(models.Model):
    """An RFC 8628 device authorization request from a CLI without a browser account link."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for approval"
        APPROVED = "approved", "Approved"
        DENIED = "denied", "Denied"
        COLLECTED = "collected", "Tokens collected"

    device_code_hash = models.CharField(max_length=64, unique=True)
    user_code_hash = models.CharField(max_length=64, unique=True)
    client_name = models.CharField(max_length=100)
    # Shown on the approval page, so a person can tell their own CLI from a phisher's.
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    user = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.CASCADE, related_name="device_logins"
    )
    cli_session = models.ForeignKey(
        CliSession, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    interval = models.PositiveIntegerField(default=5)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    last_polled_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "device login"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["expires_at"])]

    def __str__(self) -> str:
        return f"device login {self.pk} ({self.status})"


class SecurityEvent(models.Model):
    """One security-relevant event of an account (sign-ins, tokens, connections).

    Shaped like the vault's ``KeyAuditEvent``: who it concerns, who did it, from where.
    ``detail`` never holds a secret.
    """

    class Kind(models.TextChoices):
        CLI_SIGNED_IN = "cli_signed_in", "CLI signed in"
        REFRESH_REUSE = "refresh_reuse", "Refresh token reused: sign-in ended"
        CLI_SESSION_REVOKED = "cli_session_revoked", "CLI sign-in ended"
        API_TOKEN_CREATED = "api_token_created", "API token created"
        API_TOKEN_REVOKED = "api_token_revoked", "API token revoked"
        CONNECTED = "connected", "Service connected"
        DISCONNECTED = "disconnected", "Service disconnected"
        NEEDS_REAUTH = "needs_reauth", "Service needs re-authorisation"
        CONNECTION_UNREADABLE = "connection_unreadable", "Stored service token unreadable"

    user = models.ForeignKey(
        User, on_delete=models.CASCADE, related_name="security_events", db_index=False
    )
    actor = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=32, choices=Kind.choices)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    client = models.CharField(max_length=200, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["user", "-created_at"], name="security_event_user_time")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.user_id}"

    @property
    def summary(self) -> str:
        """One line for people: the kind, plus the service or token it names."""
        label = self.get_kind_display()
        named = (
            self.detail.get("service_label")
            or self.detail.get("service")
            or self.detail.get("token_name")
            or ""
        )
        return f"{label}: {named}" if named else label


class AtlassianProfile(models.Model):
    """The Atlassian identity linked to a user (seed 003 ``atlassian_user_info``)."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="atlassian_profile")
    account_id = models.CharField(max_length=128, unique=True)
    name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True)
    email_verified = models.BooleanField(default=False)
    picture = models.URLField(max_length=500, blank=True)
    account_type = models.CharField(max_length=32, blank=True)
    account_status = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "Atlassian profile"

    def __str__(self) -> str:
        return f"Atlassian account {self.account_id}"
