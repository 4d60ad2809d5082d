"""A signed-in browser's API request that fails the CSRF check is told what to do, without
its Origin or Referer header repeated back (API errors never echo the input)."""

import pytest
from django.test import Client

from keys.models import Project

pytestmark = pytest.mark.django_db

MARKER = "kay-raw-input-marker.example"


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_ORIGIN": f"https://{MARKER}"},
        {"HTTP_REFERER": f"https://{MARKER}/page?code=abc", "secure": True},
        {},
    ],
    ids=["foreign origin", "foreign referer", "no token"],
)
def test_a_failed_csrf_check_is_a_403_that_does_not_quote_the_request(alice, headers):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(
        "/api/projects", {"name": "cross-site"}, content_type="application/json", **headers
    )
    assert response.status_code == 403
    assert MARKER not in response.content.decode()
    assert "X-CSRFToken" in response.json()["error"]["message"]
    assert not Project.objects.exists()
