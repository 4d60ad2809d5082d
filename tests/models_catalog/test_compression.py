"""models-by-provider answers compressed with gzip or Brotli when the client accepts it."""

import gzip
import json
from unittest import mock

import brotli
import pytest
from rest_framework.test import APIClient

from models_catalog import compression

URL = "/api/openrouter/models-by-provider"
DECODE = {"gzip": gzip.decompress, "br": brotli.decompress}
pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    return APIClient()


def _vary(response) -> set[str]:
    return {part.strip().lower() for part in response.get("Vary", "").split(",")}


@pytest.mark.parametrize("coding", ["gzip", "br"])
def test_a_compressed_answer_decompresses_to_the_same_json_and_is_5x_smaller(api, coding):
    # An empty database serves the shipped snapshot: 414 models, the real size.
    plain = api.get(URL)
    packed = api.get(URL, HTTP_ACCEPT_ENCODING=coding)
    assert packed.status_code == 200
    assert packed["Content-Encoding"] == coding
    assert packed["Content-Type"] == "application/json"
    assert int(packed["Content-Length"]) == len(packed.content)
    assert "accept-encoding" in _vary(packed) and "accept-encoding" in _vary(plain)
    assert json.loads(DECODE[coding](packed.content)) == json.loads(plain.content)
    assert len(packed.content) * 5 <= len(plain.content)


@pytest.mark.parametrize(
    "accept", [None, "identity", "gzip;q=0", "gzip;q=0, br;q=0", "deflate", "identity;q=0"]
)
def test_clients_that_do_not_accept_gzip_or_brotli_get_plain_json(api, accept):
    headers = {} if accept is None else {"HTTP_ACCEPT_ENCODING": accept}
    response = api.get(f"{URL}?provider=openai", **headers)
    assert response.status_code == 200
    assert "Content-Encoding" not in response
    assert int(response["Content-Length"]) == len(response.content)
    assert response.json()["total_models"] > 0
    assert "accept-encoding" in _vary(response)


def test_a_browser_gets_brotli_and_a_gzip_only_client_gets_gzip(api):
    browser = api.get(URL, HTTP_ACCEPT_ENCODING="gzip, deflate, br, zstd")
    assert browser["Content-Encoding"] == "br"
    python = api.get(URL, HTTP_ACCEPT_ENCODING="gzip, deflate")
    assert python["Content-Encoding"] == "gzip"
    refuses_br = api.get(URL, HTTP_ACCEPT_ENCODING="br;q=0, *")
    assert refuses_br["Content-Encoding"] == "gzip"


def test_the_compressed_answers_etag_gets_a_304_in_any_coding(api):
    first = api.get(URL, HTTP_ACCEPT_ENCODING="gzip")
    etag = first["ETag"]
    again = api.get(URL, HTTP_ACCEPT_ENCODING="gzip", HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304 and again.content == b""
    assert again["ETag"] == etag and "accept-encoding" in _vary(again)
    assert "Content-Encoding" not in again
    # Same data, same weak tag: a client that stops asking for gzip keeps its copy.
    plain = api.get(URL, HTTP_IF_NONE_MATCH=etag)
    assert plain.status_code == 304
    assert api.get(URL, HTTP_ACCEPT_ENCODING="br")["ETag"] == etag


def test_each_document_is_compressed_once_not_per_request(api):
    with mock.patch.object(compression, "encode", wraps=compression.encode) as encode:
        api.get(URL, HTTP_ACCEPT_ENCODING="gzip")
        built = encode.call_count
        for accept in ["gzip", "br", "gzip", "identity", "br"]:
            assert api.get(URL, HTTP_ACCEPT_ENCODING=accept).status_code == 200
    assert built == len(compression.CODINGS)  # every coding, once, when first cached
    assert encode.call_count == built


def test_without_the_cache_it_compresses_only_what_the_request_needs(api):
    broken = mock.Mock(side_effect=ConnectionError("cache down"))
    with (
        mock.patch("models_catalog.api.cache.get", broken),
        mock.patch.object(compression, "encode", wraps=compression.encode) as encode,
    ):
        response = api.get(URL, HTTP_ACCEPT_ENCODING="br")
    assert response.status_code == 200 and response["Content-Encoding"] == "br"
    assert json.loads(brotli.decompress(response.content))["source"] == "backup"
    assert [call.args[1] for call in encode.call_args_list] == ["br"]


@pytest.mark.parametrize(
    ("header", "coding"),
    [
        ("gzip", "gzip"),
        ("GZIP", "gzip"),
        ("x-gzip", "gzip"),
        ("br", "br"),
        ("gzip, br", "br"),
        ("br;q=0.5, gzip", "gzip"),
        ("gzip;q=0.8, br;q=0.9", "br"),
        ("*", "br"),
        ("*;q=0, gzip", "gzip"),
        ("gzip;q=0.5, identity", "identity"),
        ("gzip;q=0", "identity"),
        ("gzip; q=0.000", "identity"),
        ("gzip;q=nan", "identity"),
        ("gzip;q=2", "identity"),
        ("gzip;q=high", "identity"),
        ("identity;q=0", "identity"),
        ("deflate, zstd", "identity"),
        (",,;", "identity"),
        ("", "identity"),
        (None, "identity"),
    ],
)
def test_the_coding_follows_accept_encoding_weights(header, coding):
    assert compression.coding_for(header) == coding
