"""What the Kay CLI's connection endpoints take and answer (seed 003's bodies exactly), one
serializer per shape so /api/docs/ shows them."""

from rest_framework import serializers


class ConnectionConnectInputSerializer(serializers.Serializer):
    session_id = serializers.CharField(
        required=False,
        allow_blank=True,
        allow_null=True,
        max_length=200,
        help_text="The CLI's kay session, to add a service to it; omit to start one.",
    )


class ConnectionConnectOutputSerializer(serializers.Serializer):
    service = serializers.CharField()
    session_id = serializers.CharField()
    authorization_url = serializers.URLField()
    state = serializers.CharField(help_text="Poll GET /auth/status/<state> with it.")
    user_code = serializers.CharField(
        help_text="Print it: the browser shows it again before the CLI is signed in."
    )
    message = serializers.CharField()


class ConnectionListOutputSerializer(serializers.Serializer):
    connections = serializers.DictField(
        child=serializers.BooleanField(),
        help_text='Every service Kay offers, and whether it is connected: {"jira": true, ...}.',
    )


class ConnectionDisconnectInputSerializer(serializers.Serializer):
    session_id = serializers.CharField(max_length=200)


class ConnectionDisconnectOutputSerializer(serializers.Serializer):
    service = serializers.CharField()
    connected = serializers.BooleanField()
    message = serializers.CharField()


class AuthStatusOutputSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["pending", "completed"])
    account_id = serializers.CharField(
        required=False, help_text="The Atlassian account, once completed."
    )
    token = serializers.CharField(
        required=False,
        help_text="The CLI session token (a JWT), in the one answer that hands it out. "
        "Absent when the service was added to a session that already has tokens.",
    )
    refresh_token = serializers.CharField(
        required=False, help_text="Single use: send it to /auth/refresh."
    )
    message = serializers.CharField()


class AccessibleResourceSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The Atlassian cloud id of the site.")
    name = serializers.CharField()
    url = serializers.URLField()
    scopes = serializers.ListField(child=serializers.CharField())
    avatarUrl = serializers.CharField()


class AuthMeDataSerializer(serializers.Serializer):
    account_id = serializers.CharField(allow_null=True)
    name = serializers.CharField()
    email = serializers.EmailField()
    picture = serializers.URLField(allow_null=True)
    resources = AccessibleResourceSerializer(many=True)


class AuthMeOutputSerializer(serializers.Serializer):
    message = serializers.CharField()
    # A declared field, not the ``.data`` property (the metaclass takes it off the class).
    data = AuthMeDataSerializer()  # type: ignore[assignment]
