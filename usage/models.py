"""Usage records: provider-reported and Kay-metered buckets, their daily rollup, and where
each vault key's scheduled fetch stands.

Amounts are integer micro-dollars (1 USD = 1,000,000), never floats.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Source(models.TextChoices):
    OPENAI_ADMIN = "openai_admin", "OpenAI organisation usage"
    ANTHROPIC_ADMIN = "anthropic_admin", "Anthropic organisation usage"
    OPENROUTER = "openrouter", "OpenRouter"
    KAY_METERED = "kay_metered", "Kay's own calls"


class Granularity(models.TextChoices):
    HOUR = "hour", "Hourly"
    DAY = "day", "Daily"


class CostSource(models.TextChoices):
    PROVIDER = "provider", "Reported by the provider"
    COMPUTED = "computed", "Computed from catalog prices"


# What makes two buckets the same (UsageBucket's unique constraint and upsert key).
BUCKET_IDENTITY = (
    "owner",
    "source",
    "provider",
    "model",
    "external_project_id",
    "external_key_id",
    "bucket_start",
    "granularity",
)


def _count() -> models.PositiveBigIntegerField:
    return models.PositiveBigIntegerField(default=0)


class UsageBucket(models.Model):
    """One provider's usage of one model in one hour or day, as fetched or metered.

    Its identity (the unique constraint) holds only NOT NULL columns: PostgreSQL never
    treats two NULLs as equal, so a nullable column there would let duplicates in. The
    vault key and project are attributes, not identity: a key added later can take over
    usage already stored."""

    # The identity and time indexes both lead with the owner: no index of its own.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="usage_buckets",
        db_index=False,
    )
    # The stored key the usage is attributed to. Usage outlives a deleted key.
    api_key = models.ForeignKey(
        "keys.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    project = models.ForeignKey(
        "keys.Project", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(max_length=20, choices=Source.choices)
    provider = models.CharField(max_length=32)
    model = models.CharField(max_length=200, blank=True)
    # The provider's own ids (an OpenAI project, an Anthropic workspace, an API key id);
    # "" when the provider gave none. Kay's metered calls put "vault:<key id>" here.
    external_project_id = models.CharField(max_length=100, blank=True, default="")
    external_key_id = models.CharField(max_length=100, blank=True, default="")
    bucket_start = models.DateTimeField()
    granularity = models.CharField(max_length=8, choices=Granularity.choices)
    input_tokens = _count()
    output_tokens = _count()
    cached_tokens = _count()
    requests = _count()
    cost_micros = _count()
    cost_source = models.CharField(
        max_length=8, choices=CostSource.choices, default=CostSource.COMPUTED
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-bucket_start", "id"]
        constraints = [
            models.UniqueConstraint(fields=list(BUCKET_IDENTITY), name="usage_bucket_identity"),
        ]
        indexes = [
            # Hourly views read one owner's time range.
            models.Index(fields=["owner", "bucket_start"], name="usage_bucket_owner_time"),
        ]

    def __str__(self) -> str:
        return (
            f"{self.provider} {self.model or '(all models)'} at {self.bucket_start:%Y-%m-%d %H:%M}"
        )


class UsageDaily(models.Model):
    """The buckets of one owner summed per UTC day, source, provider, model, key and
    project: what day views read, so a month is a few hundred rows at any bucket count.

    Rewritten from the buckets by the services whenever they write, in the same
    transaction (never edited on its own)."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    day = models.DateField()
    source = models.CharField(max_length=20, choices=Source.choices)
    provider = models.CharField(max_length=32)
    model = models.CharField(max_length=200, blank=True)
    api_key = models.ForeignKey(
        "keys.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    project = models.ForeignKey(
        "keys.Project", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    input_tokens = _count()
    output_tokens = _count()
    cached_tokens = _count()
    requests = _count()
    cost_micros = _count()

    class Meta:
        ordering = ["-day", "id"]
        verbose_name = "daily usage total"
        indexes = [models.Index(fields=["owner", "day"], name="usage_daily_owner_day")]

    def __str__(self) -> str:
        return f"{self.provider} {self.model} on {self.day}"


class UsageFetchState(models.Model):
    """Where the scheduled fetch of one vault key stands."""

    class Status(models.TextChoices):
        NEVER = "never", "Not fetched yet"
        OK = "ok", "Fetched"
        ERROR = "error", "Failed, will retry"
        RATE_LIMITED = "rate_limited", "Rate limited, will retry"
        INVALID_KEY = "invalid_key", "Key refused by the provider"

    api_key = models.OneToOneField(
        "keys.ApiKey", on_delete=models.CASCADE, related_name="usage_fetch_state"
    )
    # Usage before this moment is stored; the next fetch starts here (less the re-read
    # window providers need for late reports).
    cursor = models.DateTimeField(null=True, blank=True)
    last_fetched_at = models.DateTimeField(null=True, blank=True)
    last_status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEVER)
    # Words for the owner, written by Kay: never a secret or a provider's raw response.
    last_error = models.CharField(max_length=300, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "usage fetch state"

    def __str__(self) -> str:
        return f"usage fetch of key {self.api_key_id}: {self.get_last_status_display()}"


class ProviderAccount(models.Model):
    """What a provider says about a key's own spend and limit, as of the last fetch
    (OpenRouter's ``GET /api/v1/key``: a spend limit and what is left of it). Amounts in
    micro-dollars; ``None`` when the provider sets no limit."""

    api_key = models.OneToOneField(
        "keys.ApiKey", on_delete=models.CASCADE, related_name="usage_provider_account"
    )
    limit_micros = models.BigIntegerField(null=True, blank=True)
    remaining_micros = models.BigIntegerField(null=True, blank=True)
    # The provider's own words for when the limit resets ("monthly", "daily", …), if any.
    limit_reset = models.CharField(max_length=20, blank=True)
    spent_today_micros = models.BigIntegerField(default=0)
    spent_month_micros = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"provider account of key {self.api_key_id}"


class ExternalKeyLink(models.Model):
    """A provider's API key id (OpenAI ``key_…``, Anthropic ``apikey_…``) that is one of
    the owner's stored keys: fetched usage of that id is attributed to the stored key.

    Found by matching the provider's ``redacted_value`` against each stored key's secret
    (never against Kay's own mask)."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    provider = models.CharField(max_length=32)
    external_key_id = models.CharField(max_length=100)
    api_key = models.ForeignKey("keys.ApiKey", on_delete=models.CASCADE, related_name="+")
    checked_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "provider", "external_key_id"], name="usage_external_key_link"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.external_key_id} → key {self.api_key_id}"


class Budget(models.Model):
    """A monthly spending budget for one of the owner's projects, or one of their keys.

    Exactly one of ``project`` and ``api_key`` is set; at most one budget per project and
    per key."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="usage_budgets"
    )
    project = models.ForeignKey(
        "keys.Project", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    api_key = models.ForeignKey(
        "keys.ApiKey", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    monthly_limit_micros = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(project__isnull=False, api_key__isnull=True)
                    | models.Q(project__isnull=True, api_key__isnull=False)
                ),
                name="usage_budget_one_scope",
            ),
            models.UniqueConstraint(
                fields=["project"],
                condition=models.Q(project__isnull=False),
                name="usage_budget_one_per_project",
            ),
            models.UniqueConstraint(
                fields=["api_key"],
                condition=models.Q(api_key__isnull=False),
                name="usage_budget_one_per_key",
            ),
        ]

    def __str__(self) -> str:
        scope = f"project {self.project_id}" if self.project_id else f"key {self.api_key_id}"
        return f"budget of {scope}"


class BudgetAlert(models.Model):
    """One threshold crossed by one budget in one month. The unique constraint is what
    makes the email go once: the evaluator that inserts the row sends it; any other
    worker evaluating at the same moment fails the insert and sends nothing."""

    class Threshold(models.IntegerChoices):
        WARNING = 80, "80 %"
        EXCEEDED = 100, "100 %"

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    month = models.DateField()  # the first day of the month, UTC
    threshold = models.PositiveSmallIntegerField(choices=Threshold.choices)
    spent_micros = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["budget", "month", "threshold"], name="usage_budget_alert_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.threshold} % of budget {self.budget_id} in {self.month:%Y-%m}"


class MeteredLlmCall(models.Model):
    """One LLM call Kay made, recorded once: what billing charges and links to.

    ``call_id`` is the caller's idempotency key (an assistant run's step, say): the same
    call recorded twice is one row, and its tokens count once in its hour bucket."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    # The owner's stored key that paid; None: the server's own key (billed to credits).
    api_key = models.ForeignKey(
        "keys.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    provider = models.CharField(max_length=32)
    model = models.CharField(max_length=200)
    input_tokens = _count()
    output_tokens = _count()
    cached_tokens = _count()
    cost_micros = _count()
    # False: the catalog had no price for the model, so the call cost 0.
    priced = models.BooleanField(default=True)
    call_id = models.CharField(max_length=100)
    bucket = models.ForeignKey(
        UsageBucket, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "metered LLM call"
        constraints = [
            models.UniqueConstraint(fields=["owner", "call_id"], name="usage_metered_call_once"),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.model} call {self.call_id}"
