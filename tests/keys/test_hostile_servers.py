"""A user's OpenAI-compatible server is anyone's. A check against it ends by its deadline
however slowly the server answers, reads a bounded answer, never inflates a compressed one,
and an answer that is not a model list leaves the key unverified instead of failing."""

import pytest

from keys.models import ApiKey
from keys.providers import PROVIDERS
from tests.fakes.hostile import Answer, HostileServer, compressed, huge

SECRET = "sk-hostile-check-0001"
COULD_NOT_READ = "it sent an answer we could not read"


@pytest.fixture
def hostile(settings):
    """Starts a misbehaving server on 127.0.0.1 (private addresses allowed for the test)."""
    settings.KEYS_ALLOW_PRIVATE_BASE_URLS = True
    servers = []

    def start(answer: Answer) -> HostileServer:
        servers.append(HostileServer(answer).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def check(server):
    return PROVIDERS["openai_compatible"].check(SECRET, server.base_url)


def test_a_well_behaved_server_still_checks_valid(hostile):
    server = hostile(Answer())
    assert check(server).status == "valid"
    assert server.accept_encoding == "identity"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"not json", "application/json"),
        (b"[]", "application/json"),
        (b"42", "application/json"),
        (b"<html><body>Welcome to nginx</body></html>", "text/html"),
    ],
    ids=["not json", "a list", "a number", "an html page"],
)
def test_an_answer_that_is_not_a_model_list_leaves_the_key_unverified(hostile, body, content_type):
    result = check(hostile(Answer(body=body, content_type=content_type)))
    assert result.status == "unverified"
    assert COULD_NOT_READ in result.detail


def test_adding_a_key_for_such_a_server_saves_it_unverified_not_a_500(alice_api, hostile):
    server = hostile(Answer(body=b"<html></html>", content_type="text/html"))
    response = alice_api.post(
        "/api/keys",
        {"provider": "openai_compatible", "name": "n", "key": SECRET, "base_url": server.base_url},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert ApiKey.objects.get().status == "unverified"


@pytest.mark.parametrize("part", ["headers", "body"])
def test_a_trickled_answer_cannot_hold_a_check_past_its_deadline(hostile, settings, part):
    """One byte every 0.1 s never trips a 0.3 s read timeout; the whole answer (about 17 s)
    must still be cut off at the deadline (connect + read timeout)."""
    settings.KEYS_VALIDATION_TIMEOUT = 0.3
    answer = Answer(trickle_head=part == "headers", trickle_body=part == "body", interval=0.1)
    server = hostile(answer)
    result = check(server)
    assert result.status == "unverified"
    assert "timed out" in result.detail
    assert server.sent < server.total


def test_a_huge_answer_is_not_read_past_the_cap(hostile):
    server = hostile(huge(40 * 1024 * 1024))
    result = check(server)
    assert result.status == "unverified"
    assert server.sent < server.total


def test_a_compressed_answer_is_never_inflated(hostile):
    """50 MB of JSON in about 50 kB of gzip, sent although we asked for no compression."""
    server = hostile(compressed(50 * 1024 * 1024))
    result = check(server)
    assert result.status == "unverified"
    assert COULD_NOT_READ in result.detail
