"""The assistant's records: conversations, runs and actions waiting for approval."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class InteractiveSession(models.Model):
    """A multi-turn conversation (seed 003 ``interactive_sessions``): its messages in the
    Chat Completions shape, without the system prompt (rendered afresh each turn)."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assistant_sessions"
    )
    title = models.CharField(max_length=200, blank=True)
    messages = models.JSONField(default=list)
    # The turn running on it (its run, from /ask until it ends, a wait for approval
    # included): claimed by one conditional UPDATE, so two turns never overwrite each
    # other's messages. Cleared when the run ends; a claim older than a turn can last is
    # stale (see assistant.services.sessions).
    busy_run = models.ForeignKey(
        "AssistantRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    turn_started_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-pk"]
        indexes = [models.Index(fields=["owner", "-updated_at"])]

    def __str__(self) -> str:
        return self.title or f"Session {self.pk}"


class AssistantRun(models.Model):
    """One ``/ask`` (or its confirmation): what was asked, answered, called and spent."""

    class Mode(models.TextChoices):
        ONE_SHOT = "one_shot"
        INTERACTIVE = "interactive"
        CONFIRM = "confirm"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        COMPLETED = "completed"
        PENDING_CONFIRMATION = "pending_confirmation"
        CANCELLED = "cancelled"
        FAILED = "failed"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assistant_runs"
    )
    session = models.ForeignKey(
        InteractiveSession, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    mode = models.CharField(max_length=16, choices=Mode.choices)
    # What the worker needs to run it (a confirm-mode run may also be a conversation).
    interactive = models.BooleanField(default=False)
    confirm = models.BooleanField(default=False)
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.RUNNING)
    prompt = models.TextField()
    response = models.TextField(blank=True)
    # A failed run's error as /ask answers it (the run may have failed in a worker).
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    error_status = models.PositiveSmallIntegerField(null=True, blank=True)
    provider = models.CharField(max_length=32, blank=True)
    model = models.CharField(max_length=200, blank=True)
    # The user's stored key that paid; null: the server's key, billed to credits.
    api_key = models.ForeignKey(
        "keys.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    tool_calls = models.JSONField(default=list)
    # Confirm mode: the SHA-256 of the token the request that started (or resumed) this
    # execution holds; a pause files its action under it. The token itself is shown once,
    # to that request, never by a read of the run.
    confirm_token_hash = models.CharField(max_length=64, blank=True)
    llm_calls = models.PositiveIntegerField(default=0)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cost_micros = models.BigIntegerField(default=0)
    # A completed run's calls whose usage records (on credits, charges) are written just
    # after its answer goes out: set with the run's end, cleared once written; the reaper
    # writes what a worker killed in between left (null: nothing left).
    calls_unrecorded = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["owner", "-created_at"]),
            # The reaper's minute-ly look for stuck runs reads only the few live ones.
            models.Index(
                fields=["status", "created_at"],
                condition=models.Q(status__in=["queued", "running"]),
                name="assistant_run_live_idx",
            ),
            models.Index(
                fields=["finished_at"],
                condition=models.Q(calls_unrecorded__isnull=False),
                name="assistant_run_unrecorded_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"Run {self.pk} ({self.status})"


class PendingConfirmation(models.Model):
    """A write the model asked for in confirm mode, waiting for the user's yes or no.

    Only the token's SHA-256 is stored (the token is shown once); ``state`` holds the
    conversation to resume. ``used_at`` is set by one conditional UPDATE, so a token
    works once even when two requests race."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    run = models.ForeignKey(AssistantRun, on_delete=models.CASCADE, related_name="+")
    token_hash = models.CharField(max_length=64, unique=True)
    tool = models.CharField(max_length=200)
    arguments = models.JSONField(default=dict)
    state = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)
    used_at = models.DateTimeField(null=True, blank=True)
    # The user's answer, set with the claim; the worker resumes the run with it.
    approved = models.BooleanField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Pending {self.tool} for run {self.run_id}"


class AssistantRunEvent(models.Model):
    """A run's progress (text deltas, tool steps, its end) for pages and waiting
    requests when there is no Redis: followers poll for rows past the last ``seq``."""

    run = models.ForeignKey(AssistantRun, on_delete=models.CASCADE, related_name="+")
    seq = models.PositiveIntegerField()
    kind = models.CharField(max_length=24)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["run", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="run_event_seq")]

    def __str__(self) -> str:
        return f"Run {self.run_id} event {self.seq} ({self.kind})"
