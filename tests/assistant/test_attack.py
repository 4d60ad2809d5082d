"""Security review of the assistant (issue 11): hostile bodies, oversized tool output,
disabled tools under other spellings, and what a run may show or keep."""

from __future__ import annotations

import pytest

from tests.assistant.test_page import local_tools  # noqa: F401 (fixture)

STREAM = "/dashboard/assistant/stream"


@pytest.mark.django_db
@pytest.mark.usefixtures("local_tools")
@pytest.mark.parametrize(
    "body",
    ['{"mode": []}', '{"mode": {"a": 1}}', "[" * 100_000, '{"prompt": "\\ud800", "mode": "x"}'],
    ids=["mode-list", "mode-object", "deep", "surrogate"],
)
def test_the_stream_answers_a_hostile_body_with_a_400_not_a_500(alice_browser, chat, body):
    response = alice_browser.post(STREAM, body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert chat.requests == []
