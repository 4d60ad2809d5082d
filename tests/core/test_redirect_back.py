"""After a form's POST, pages send the user back where they came from, never off-site
(the keys page's "check again" and the Models page's allow buttons use it)."""

import pytest
from django.test import RequestFactory

from core.views import redirect_back

DEFAULT = "/dashboard/keys/1/"


def _back(next_value, *, secure=False):
    request = RequestFactory().post("/x", {"next": next_value} if next_value else {}, secure=secure)
    return redirect_back(request, DEFAULT)["Location"]


def test_it_returns_to_the_page_on_this_site():
    assert _back("/dashboard/models/?provider=openai") == "/dashboard/models/?provider=openai"


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/", "javascript:alert(1)", "", "/\\evil"]
)
def test_it_never_sends_the_user_off_site(target):
    assert _back(target) == DEFAULT


def test_an_https_page_does_not_send_the_user_to_plain_http():
    assert _back("http://testserver/dashboard/", secure=True) == DEFAULT
