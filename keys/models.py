"""Key vault: projects, encrypted provider keys, their audit trail, onboarding progress."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from core.fields import Ciphertext, EncryptedTextField, decrypt_field
from keys.providers import CHOICES as PROVIDER_CHOICES
from keys.providers import PROVIDERS


class Project(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="key_projects"
    )
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint("owner", Lower("name"), name="keys_project_name_unique"),
        ]

    def __str__(self) -> str:
        return self.name


class ApiKey(models.Model):
    class Status(models.TextChoices):
        VALID = "valid", "Valid"
        INVALID = "invalid", "Invalid"
        UNVERIFIED = "unverified", "Unverified"

    class Kind(models.TextChoices):
        API = "api", "API key"
        # An organisation admin key (OpenAI's sk-admin-…, Anthropic's sk-ant-admin…, an
        # OpenRouter management key): reads usage and costs, cannot call models, so it is
        # never handed out as an LLM key (keys.access).
        ADMIN = "admin", "Admin key"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.RESTRICT, related_name="api_keys"
    )
    provider = models.CharField(max_length=32, choices=PROVIDER_CHOICES)
    name = models.CharField(max_length=100)
    secret = EncryptedTextField(aad_owner_field="owner")
    # The only part of the secret kept readable: first 4 + last 4 characters.
    masked_key = models.CharField(max_length=32)
    base_url = models.URLField(blank=True, max_length=300)
    # Set from the plaintext whenever a new secret is saved (see save()): the mask shows
    # too little of the key to tell an admin key apart.
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.API)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UNVERIFIED)
    status_detail = models.CharField(max_length=300, blank=True)
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_validated_at = models.DateTimeField(null=True, blank=True)
    # "Last used" is not a column: it is the newest "used"/"fetched" audit event
    # (selectors annotate it), so a fetch costs one INSERT and no UPDATE.

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API key"
        constraints = [
            models.UniqueConstraint(
                "owner",
                "project",
                Lower("name"),
                condition=Q(project__isnull=False),
                name="keys_apikey_name_unique_in_project",
            ),
            models.UniqueConstraint(
                "owner",
                Lower("name"),
                condition=Q(project__isnull=True),
                name="keys_apikey_name_unique_without_project",
            ),
            models.UniqueConstraint(
                fields=["project", "provider"],
                condition=Q(is_default=True, project__isnull=False),
                name="keys_apikey_one_default_per_project_provider",
            ),
            models.UniqueConstraint(
                fields=["owner", "provider"],
                condition=Q(is_default=True, project__isnull=True),
                name="keys_apikey_one_default_per_owner_provider",
            ),
        ]
        indexes = [models.Index(fields=["owner", "provider"], name="keys_apikey_owner_provider")]

    def __str__(self) -> str:
        return f"{self.name} ({self.provider}, {self.masked_key})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # A plain str is a new plaintext secret (EncryptedTextField seals it in pre_save):
        # the only moment its kind can be read without decrypting anything.
        # Where no prefix tells (OpenRouter's management keys), the kind the services set
        # from the provider's answer stands.
        if isinstance(self.secret, str) and not isinstance(self.secret, Ciphertext):
            spec = PROVIDERS.get(self.provider)
            if spec is not None and spec.admin_prefix is not None:
                admin = spec.is_admin_key(self.secret)
                self.kind = self.Kind.ADMIN if admin else self.Kind.API
            update_fields = kwargs.get("update_fields")
            if update_fields is not None and "secret" in update_fields:
                kwargs["update_fields"] = {*update_fields, "kind"}
        super().save(*args, **kwargs)

    @property
    def is_admin(self) -> bool:
        return self.kind == self.Kind.ADMIN

    @property
    def provider_label(self) -> str:
        """ "OpenAI", or "OpenAI admin key" for an admin key ("OpenRouter management key"):
        how pages name the key."""
        label = self.get_provider_display()
        if not self.is_admin:
            return label
        spec = PROVIDERS.get(self.provider)
        return f"{label} {spec.admin_label if spec else 'admin key'}"

    def get_secret(self) -> str:
        """The plaintext. Call only from ``keys.services``/``keys.access``, which audit it."""
        return decrypt_field(self, "secret") or ""


class KeyAuditEvent(models.Model):
    class Action(models.TextChoices):
        CREATED = "created", "Created"
        UPDATED = "updated", "Updated"
        DEFAULT_SET = "default_set", "Made default"
        VALIDATED = "validated", "Validated"
        ROTATED = "rotated", "Rotated"
        USED = "used", "Used by a backend service"
        FETCHED = "fetched", "Fetched over the API"
        FETCH_DENIED = "fetch_denied", "Fetch refused"
        DELETED = "deleted", "Deleted"

    class Source(models.TextChoices):
        DASHBOARD = "dashboard", "Dashboard"
        API = "api", "API"
        BACKEND = "backend", "Backend service"
        FETCH_API = "fetch_api", "Fetch API"
        SCHEDULE = "schedule", "Nightly check"
        COMMAND = "command", "Management command"

    USE_ACTIONS = ("used", "fetched")

    # Who the event concerns. Null only for refused fetches naming no known user.
    # The composite indexes below lead with owner/api_key, so the FKs need no own index:
    # every index is paid on each insert, and fetches insert one row each.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="key_audit_events",
        db_index=False,
    )
    # Kept after the key is deleted, so the trail still shows what happened to it.
    api_key = models.ForeignKey(
        ApiKey,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="audit_events",
        db_index=False,
    )
    key_label = models.CharField(max_length=200, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    action = models.CharField(max_length=16, choices=Action.choices)
    source = models.CharField(max_length=16, choices=Source.choices)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    # Never a secret: outcome, reason, changed field names.
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Refusals that come in floods (wrong server secrets, limits) are one row per address
    # and window, counted up (keys.access), not one row each. ``aggregate_key`` names that
    # row; empty on every other event, which the partial unique index leaves out.
    count = models.PositiveIntegerField(default=1)
    aggregate_key = models.CharField(max_length=200, blank=True, default="", editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="keys_audit_owner_time"),
            models.Index(fields=["api_key", "-created_at"], name="keys_audit_key_time"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["aggregate_key"],
                condition=~Q(aggregate_key=""),
                name="keys_audit_aggregate_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.key_label} at {self.created_at:%Y-%m-%d %H:%M}"

    @property
    def actor_label(self) -> str:
        if self.actor_id:
            return str(self.actor)
        return self.get_source_display()


class OnboardingSession(models.Model):
    """First-run wizard progress (seed 002): project → keys → validate → done."""

    STEPS = ["project", "keys", "validate", "done"]

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="key_onboarding"
    )
    current_step = models.PositiveSmallIntegerField(default=1)
    progress = models.FloatField(default=0.0)
    started_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"onboarding of {self.user} (step {self.current_step})"
