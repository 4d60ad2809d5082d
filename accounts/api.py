"""The caller's own profile."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.services import user_update_profile


class MeOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    name = serializers.CharField()
    is_staff = serializers.BooleanField()
    date_joined = serializers.DateTimeField()


class MeGetApi(APIView):
    """``GET /api/me`` and ``PATCH /api/me``: read or rename the signed-in user."""

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=150, allow_blank=True)

    @extend_schema(responses=MeOutputSerializer)
    def get(self, request: Request) -> Response:
        return Response(MeOutputSerializer(request.user).data)

    @extend_schema(request=InputSerializer, responses=MeOutputSerializer)
    def patch(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = user_update_profile(user=request.user, name=serializer.validated_data["name"])  # type: ignore[arg-type]
        return Response(MeOutputSerializer(user).data)
