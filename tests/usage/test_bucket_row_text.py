"""A provider's names and ids with control characters (a NUL PostgreSQL cannot store, a line
break or a terminal escape) are refused by ``BucketRow``, never cleaned, so the fetch ends
as an error recorded on the key instead of a crashed save or a rewritten id."""

import json
from datetime import UTC, datetime

import pytest

from tests.keys.factories import ApiKeyFactory
from tests.usage.test_hostile_provider import OPENAI_ADMIN, Figures
from usage.models import UsageBucket, UsageFetchState
from usage.records import BucketRow
from usage.services.fetching import usage_fetch_for_key

DAY = datetime(2025, 1, 10, tzinfo=UTC)
HOSTILE = ["\x00", "\n", "\t", "\x1b[31m", "\x7f", "\x85", "\x9f"]


def row(**text) -> BucketRow:
    values = {"provider": "openai", "model": "gpt-4o-mini", "external_key_id": "key_1"}
    return BucketRow(
        **(values | text),
        bucket_start=DAY,
        granularity="day",
        input_tokens=1,
        output_tokens=1,
        cached_tokens=0,
        requests=1,
        cost_micros=1,
    )


@pytest.mark.parametrize("field", ["provider", "model", "external_project_id", "external_key_id"])
@pytest.mark.parametrize("bad", HOSTILE)
def test_a_bucket_row_refuses_a_control_character_in_any_name_or_id(field, bad):
    with pytest.raises(ValueError, match="control character"):
        row(**{field: f"x{bad}y"})


def test_names_with_any_printable_text_are_kept_as_they_came():
    kept = row(model="claude-sonnet-4.5 (beta) · é", external_key_id="key_Ab-9_")
    assert (kept.model, kept.external_key_id) == ("claude-sonnet-4.5 (beta) · é", "key_Ab-9_")


class EscapedKeyId(Figures):
    """OpenAI usage and costs whose ``api_key_id`` carries a terminal escape."""

    def answer(self, path: str, query: dict[str, list[str]]) -> bytes:
        body = super().answer(path, query).decode()
        return body.replace('"key_1"', json.dumps("key_\x1b[2J")).encode()


@pytest.mark.django_db
def test_a_fetch_naming_a_key_with_a_control_character_is_an_error_on_the_key(settings, alice):
    server = EscapedKeyId().start()
    settings.OPENAI_BASE_URL = server.origin + "/v1"
    try:
        key = ApiKeyFactory(owner=alice, secret=OPENAI_ADMIN)
        result = usage_fetch_for_key(api_key_id=key.pk, since=DAY)
    finally:
        server.stop()

    assert result.status == "error"
    state = UsageFetchState.objects.get(api_key=key)
    assert state.last_status == "error" and "\x1b" not in state.last_error
    assert not UsageBucket.objects.filter(owner=alice).exists()
