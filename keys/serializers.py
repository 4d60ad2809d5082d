"""API shapes of the key vault (seed 001). No serializer here has a field for plaintext
output or for the ciphertext."""

from __future__ import annotations

from rest_framework import serializers

from core.ids import IdField
from keys.models import ApiKey
from keys.providers import CHOICES, PROVIDERS

KEY_HELP = (
    "The provider's API key, in the provider's format (e.g. sk-ant-… for Anthropic): a key "
    "that cannot be the provider's is refused with 400 key_format before it is sent anywhere."
)


def _provider_field() -> serializers.ChoiceField:
    # Lists the choices instead of quoting the rejected value (DRF's default).
    message = f"Choose one of: {', '.join(PROVIDERS)}."
    return serializers.ChoiceField(choices=CHOICES, error_messages={"invalid_choice": message})


class ApiKeyOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    provider = serializers.CharField()
    name = serializers.CharField()
    project_id = serializers.IntegerField(allow_null=True)
    masked_key = serializers.CharField()
    kind = serializers.ChoiceField(
        choices=ApiKey.Kind.choices,
        help_text="admin: an organisation admin key (OpenAI sk-admin-…, Anthropic "
        "sk-ant-admin…, an OpenRouter management key), used to read usage and costs and "
        "never handed out as the provider's key for model calls.",
    )
    status = serializers.CharField()
    is_default = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    last_validated_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True)


class ApiKeyCreateInputSerializer(serializers.Serializer):
    provider = _provider_field()
    name = serializers.CharField(max_length=100)
    key = serializers.CharField(max_length=4096, trim_whitespace=True, help_text=KEY_HELP)
    project_id = IdField(required=False, allow_null=True)
    base_url = serializers.URLField(required=False, allow_blank=True, max_length=300)
    is_default = serializers.BooleanField(required=False, default=False)


class ApiKeyUpdateInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    project_id = IdField(required=False, allow_null=True)
    is_default = serializers.BooleanField(required=False)
    key = serializers.CharField(
        max_length=4096, required=False, trim_whitespace=True, help_text=KEY_HELP
    )

    def validate(self, attrs: dict) -> dict:
        if not attrs:
            raise serializers.ValidationError("Send name, project_id, is_default or key.")
        return attrs


class ApiKeyFetchInputSerializer(serializers.Serializer):
    user_id = IdField()
    provider = _provider_field()
    project_id = IdField(required=False, allow_null=True)


class ApiKeyFetchOutputSerializer(serializers.Serializer):
    key = serializers.CharField()
    key_id = serializers.IntegerField()
    provider = serializers.CharField()


class ProjectOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    key_count = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class ProjectInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)


class AuditEventOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    action = serializers.CharField()
    source = serializers.CharField()  # type: ignore[assignment]
    actor = serializers.CharField(source="actor_label")
    ip_address = serializers.IPAddressField(allow_null=True)
    detail = serializers.DictField()
    created_at = serializers.DateTimeField()
