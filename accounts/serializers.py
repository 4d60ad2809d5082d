"""What the accounts API takes and answers: one serializer per shape (shown in /api/docs/)."""

from rest_framework import serializers

from accounts.models import ApiToken


class AuthRefreshInputSerializer(serializers.Serializer):
    refresh_token = serializers.CharField(max_length=200)


class ApiTokenCreateInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False, allow_blank=True)


class DeviceAuthorizationInputSerializer(serializers.Serializer):
    client_name = serializers.CharField(max_length=100, required=False, allow_blank=True)


class DeviceTokenInputSerializer(serializers.Serializer):
    device_code = serializers.CharField(max_length=200)
    # Sent by standard RFC 8628 clients (form-encoded); ours may leave them out.
    grant_type = serializers.CharField(max_length=100, required=False)
    client_id = serializers.CharField(max_length=200, required=False)


class MeUpdateInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=150, allow_blank=True)


class MeOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    name = serializers.CharField()
    is_staff = serializers.BooleanField()
    date_joined = serializers.DateTimeField()


class TokenPairSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="The CLI session token (a JWT), for Bearer auth.")
    refresh_token = serializers.CharField(help_text="Single use: send it to /auth/refresh.")
    message = serializers.CharField()


class DeviceTokenSerializer(TokenPairSerializer):
    access_token = serializers.CharField(help_text="The same token, by RFC 6749's name.")
    token_type = serializers.CharField(help_text="Always Bearer.")
    expires_in = serializers.IntegerField(help_text="Seconds the session token lasts.")


class MessageSerializer(serializers.Serializer):
    message = serializers.CharField()


class ApiTokenOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "version", "created_at", "expires_at", "last_used_at"]


class ApiTokenCreatedSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="The token itself, shown only in this answer.")
    api_token = ApiTokenOutputSerializer()


class ApiTokenListSerializer(serializers.Serializer):
    tokens = ApiTokenOutputSerializer(many=True)


class DeviceAuthorizationSerializer(serializers.Serializer):
    device_code = serializers.CharField(help_text="Secret: poll /api/auth/device/token with it.")
    user_code = serializers.CharField(help_text="Show it to the user, e.g. BCDF-GHJK.")
    verification_uri = serializers.URLField()
    verification_uri_complete = serializers.URLField()
    interval = serializers.IntegerField(help_text="Seconds to wait between polls.")
    expires_in = serializers.IntegerField(help_text="Seconds until the codes expire.")
