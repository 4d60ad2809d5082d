"""The model catalog: OpenRouter providers, models and the models_by_provider table.

Prices are USD per token as ``Decimal`` (OpenRouter publishes them as decimal strings).
A price of ``None`` means "not published" or "varies per request" (OpenRouter's ``-1``
for routers such as ``openrouter/auto``).
"""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone


def price_field() -> "models.DecimalField[Decimal | None, Decimal | None]":
    """USD per token: 15 decimal places hold OpenRouter's smallest published prices."""
    return models.DecimalField(max_digits=24, decimal_places=15, null=True, blank=True)


class DataPolicy(models.TextChoices):
    TRAINS = "trains", "Trains on prompts"
    RETAINS = "retains", "Retains prompts"
    ZERO_RETENTION = "zero_retention", "Zero retention"
    UNKNOWN = "unknown", "Unknown"


class Synced(models.Model):
    """A row the sync upserts: the fingerprint of its values as last written (unchanged
    rows are skipped), and when the sync first and last saw it."""

    fingerprint = models.CharField(max_length=64, blank=True, editable=False)
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)

    class Meta:
        abstract = True


class Provider(Synced):
    """A company serving models through OpenRouter (``GET /api/v1/providers``)."""

    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    headquarters = models.CharField(max_length=8, blank=True, help_text="ISO country code")
    datacenters = models.JSONField(default=list, blank=True, help_text="ISO country codes")
    privacy_policy_url = models.URLField(max_length=500, blank=True)
    terms_of_service_url = models.URLField(max_length=500, blank=True)
    status_page_url = models.URLField(max_length=500, blank=True)
    # OpenRouter publishes no data policy, so it is curated by operators in the admin.
    data_policy = models.CharField(
        max_length=20, choices=DataPolicy.choices, default=DataPolicy.UNKNOWN
    )
    location_curated = models.BooleanField(
        default=False,
        help_text="Keep the headquarters and data centres set here; the sync will not "
        "overwrite them.",
    )
    # True when OpenRouter's /providers lists it; False when only known from a model.
    listed = models.BooleanField(default=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def locations(self) -> list[str]:
        codes = [self.headquarters] if self.headquarters else []
        return sorted({*codes, *(self.datacenters or [])})


class Model(Synced):
    """One OpenRouter model (``GET /api/v1/models``)."""

    openrouter_id = models.CharField(max_length=200, unique=True)
    canonical_slug = models.CharField(max_length=200, blank=True)
    author = models.CharField(max_length=100, db_index=True)
    name = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    hugging_face_id = models.CharField(max_length=300, blank=True)
    created = models.DateTimeField(null=True, blank=True)
    context_length = models.PositiveIntegerField(null=True, blank=True)
    modality = models.CharField(max_length=100, blank=True)
    input_modalities = models.JSONField(default=list, blank=True)
    output_modalities = models.JSONField(default=list, blank=True)
    tokenizer = models.CharField(max_length=100, blank=True)
    prompt_price = price_field()
    completion_price = price_field()
    request_price = price_field()
    image_price = price_field()
    cache_read_price = price_field()
    cache_write_price = price_field()
    # Every published price component as OpenRouter sent it (tiers, audio, web search...).
    pricing = models.JSONField(default=dict, blank=True)
    supported_parameters = models.JSONField(default=list, blank=True)
    top_context_length = models.PositiveIntegerField(null=True, blank=True)
    top_max_completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    is_moderated = models.BooleanField(null=True, blank=True)
    is_active = models.BooleanField(default=True, db_index=True)
    # is_active follows OpenRouter (False once it stops listing the model); disabled is
    # an operator's decision the sync never overrides.
    disabled = models.BooleanField(default=False, help_text="Hidden from users by an operator")
    is_featured = models.BooleanField(default=False, help_text="Listed first")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.openrouter_id

    def supports(self, parameter: str) -> bool:
        return parameter in (self.supported_parameters or [])


class ModelEndpoint(Synced):
    """One provider serving one model: the ``models_by_provider`` table."""

    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="endpoints")
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="endpoints")
    tag = models.CharField(max_length=200, help_text="OpenRouter's endpoint tag")
    name = models.CharField(max_length=300, blank=True)
    context_length = models.PositiveIntegerField(null=True, blank=True)
    max_completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    max_prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    prompt_price = price_field()
    completion_price = price_field()
    pricing = models.JSONField(default=dict, blank=True)
    quantization = models.CharField(max_length=50, blank=True)
    status = models.IntegerField(null=True, blank=True, help_text="0 is healthy")
    uptime_last_30m = models.DecimalField(max_digits=7, decimal_places=4, null=True, blank=True)
    supported_parameters = models.JSONField(default=list, blank=True)
    # Built from the model listing alone (its top provider) because no /endpoints data
    # was available: an offline load or the shipped snapshot.
    inferred = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["model", "provider"]
        constraints = [
            models.UniqueConstraint(fields=["model", "tag"], name="catalog_endpoint_model_tag"),
        ]
        indexes = [models.Index(fields=["is_active", "model"])]

    def __str__(self) -> str:
        return f"{self.model_id} @ {self.tag}"


class SyncRun(models.Model):
    """One catalog sync, kept as a log the admin shows."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    source = models.CharField(max_length=300)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    added = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    deactivated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    details = models.JSONField(default=dict, blank=True, help_text="Counts per kind of row")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.source} at {self.started_at:%Y-%m-%d %H:%M} ({self.status})"

    @property
    def origin(self) -> str:
        """Where the data came from, in words for users (``source`` names files and URLs)."""
        return {
            "openrouter": "from OpenRouter",
            "backup": "from the catalog snapshot shipped with Kay",
            "file": "from a file an operator loaded",
        }.get(self.source.split(" ", 1)[0], "")


class CatalogPreference(models.Model):
    """A user's allowed models/providers and preferred model (used by the assistant)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="catalog_preference"
    )
    allowed_models = models.ManyToManyField(Model, blank=True, related_name="+")
    allowed_providers = models.ManyToManyField(Provider, blank=True, related_name="+")
    preferred_model = models.ForeignKey(
        Model, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Model preferences of {self.user}"
