"""Every API error has the same JSON shape, whatever raised it."""

import pytest
from django.urls import path
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from core.errors import Conflict, RateLimited

pytestmark = pytest.mark.django_db


class _Boom(APIView):
    def get(self, request):
        raise RuntimeError("database password is hunter2-sk-live-secret")


class _Staff(APIView):
    def get(self, request):
        from rest_framework.exceptions import PermissionDenied

        raise PermissionDenied("Operators only.")


class _Conflict(APIView):
    def post(self, request):
        raise Conflict("A key with that name exists.", fields={"name": ["Already used."]})


class _OneAMinute(SimpleRateThrottle):
    rate = "1/min"

    def get_cache_key(self, request, view):
        return f"test-{request.user.pk}"


class _Throttled(APIView):
    throttle_classes = [_OneAMinute]

    def get(self, request):
        return Response({"ok": True})


class _AppLimited(APIView):
    def get(self, request):
        raise RateLimited("Slow down.", retry_after=17)


class _Choice(APIView):
    class InputSerializer(serializers.Serializer):
        color = serializers.ChoiceField(choices=["red", "blue"])
        colors = serializers.MultipleChoiceField(choices=["red", "blue"])

    def post(self, request):
        self.InputSerializer(data=request.data).is_valid(raise_exception=True)
        return Response({})


urlpatterns = [
    path("choice", _Choice.as_view()),
    path("boom", _Boom.as_view()),
    path("staff", _Staff.as_view()),
    path("conflict", _Conflict.as_view()),
    path("throttled", _Throttled.as_view()),
    path("limited", _AppLimited.as_view()),
]


def test_400_lists_field_errors(alice_api):
    response = alice_api.patch("/api/me", {"name": "x" * 200}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert "name" in error["fields"]


def test_400_for_malformed_json_gives_the_place_not_the_text(alice_api):
    response = alice_api.patch(
        "/api/me", '{"name": "x",\n not-json-sk-live', content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "parse_error",
        "message": "The request body is not valid JSON (line 2, column 2).",
    }


def test_415_does_not_repeat_the_content_type(alice_api):
    response = alice_api.patch("/api/me", "x", content_type="text/sk-live-secret")
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert "sk-live" not in response.content.decode()


def test_405_does_not_repeat_the_method(alice_api):
    response = alice_api.generic("SK-LIVE-SECRET", "/api/me")
    assert response.status_code == 405
    assert "SK-LIVE" not in response.content.decode()


@pytest.mark.urls("tests.core.test_api_errors")
def test_a_choice_error_does_not_repeat_the_rejected_value(alice_api):
    body = {"color": "sk-live-secret", "colors": ["sk-live-other"]}
    response = alice_api.post("/choice", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "color": ["Not one of the allowed values."],
        "colors": ["Not one of the allowed values."],
    }


def test_401_without_credentials(api_client):
    response = api_client.get("/api/me")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert "WWW-Authenticate" in response


def test_session_writes_need_csrf(client, alice):
    from rest_framework.test import APIClient

    api = APIClient(enforce_csrf_checks=True)
    api.force_login(alice)
    response = api.patch("/api/me", {"name": "Al"}, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]["message"]


def test_404_is_json_for_api_clients(alice_api):
    response = alice_api.get("/api/does-not-exist")
    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": "not_found", "message": "There is nothing at this address."}
    }


def test_405_for_a_wrong_method(alice_api):
    response = alice_api.delete("/api/me")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.urls("tests.core.test_api_errors")
def test_403_has_the_error_shape(alice_api):
    response = alice_api.get("/staff")
    assert response.status_code == 403
    assert response.json() == {"error": {"code": "permission_denied", "message": "Operators only."}}


@pytest.mark.urls("tests.core.test_api_errors")
def test_409_from_a_service_error_keeps_fields(alice_api):
    response = alice_api.post("/conflict", {}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["fields"] == {"name": ["Already used."]}


@pytest.mark.urls("tests.core.test_api_errors")
def test_429_has_retry_after(alice_api):
    assert alice_api.get("/throttled").status_code == 200
    response = alice_api.get("/throttled")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert int(response["Retry-After"]) > 0
    response = alice_api.get("/limited")
    assert response.status_code == 429
    assert response["Retry-After"] == "17"


@pytest.mark.urls("tests.core.test_api_errors")
def test_unexpected_exception_is_500_json_without_a_trace(alice_api, caplog):
    response = alice_api.get("/boom")
    assert response.status_code == 500
    body = response.json()
    assert body["error"]["code"] == "server_error"
    text = response.content.decode()
    assert "Traceback" not in text
    assert "hunter2" not in text
    assert "RuntimeError" in caplog.text  # logged for operators


def test_me_reads_and_renames(alice_api, alice):
    assert alice_api.get("/api/me").json()["email"] == alice.email
    response = alice_api.patch("/api/me", {"name": "  Alice A.  "}, format="json")
    assert response.status_code == 200
    alice.refresh_from_db()
    assert alice.name == "Alice A."
