"""What the catalog API takes and answers, one serializer per shape (shown in /api/docs/).
The models-by-provider document is built in ``snapshot.py``, not by a serializer."""

from rest_framework import serializers


class PreferencesInputSerializer(serializers.Serializer):
    allowed_models = serializers.ListField(
        child=serializers.CharField(max_length=200), max_length=2000, default=list
    )
    allowed_providers = serializers.ListField(
        child=serializers.CharField(max_length=100), max_length=500, default=list
    )
    preferred_model = serializers.CharField(max_length=200, allow_null=True, default=None)


class PreferencesOutputSerializer(serializers.Serializer):
    allowed_models = serializers.ListField(child=serializers.CharField())
    allowed_providers = serializers.ListField(child=serializers.CharField())
    preferred_model = serializers.CharField(allow_null=True)
    restricted = serializers.BooleanField()
