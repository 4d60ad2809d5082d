"""Normalising OpenRouter payloads (no database)."""

from decimal import Decimal

import pytest

from models_catalog import payloads
from models_catalog.templatetags.catalog import per_million, tokens


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0.00000125", Decimal("0.00000125")),
        ("0", Decimal(0)),
        (0, Decimal(0)),
        ("-1", None),  # OpenRouter's "varies" for routers
        (None, None),
        ("", None),
    ],
)
def test_prices_are_decimals(raw, expected):
    assert payloads.price(raw, where="t") == expected


@pytest.mark.parametrize("raw", ["cheap", [], True, "NaN"])
def test_bad_prices_are_rejected(raw):
    with pytest.raises(payloads.CatalogPayloadError):
        payloads.price(raw, where="t")


def test_the_old_2025_schema_without_canonical_slug_parses():
    fields = payloads.parse_model(
        {
            "id": "openai/gpt-4o",
            "name": "OpenAI: GPT-4o",
            "created": 1715558400,
            "architecture": {"modality": "text+image->text", "input_modalities": ["image", "text"]},
            "pricing": {"prompt": "0.0000025", "completion": "0.00001"},
            "top_provider": {"context_length": 128000, "max_completion_tokens": 16384},
        }
    )
    assert fields["canonical_slug"] == "" and fields["author"] == "openai"
    assert fields["input_modalities"] == ["image", "text"]
    assert fields["top_max_completion_tokens"] == 16384


def test_an_inferred_endpoint_uses_the_authors_first_party_provider():
    fields = payloads.parse_model({"id": "mistralai/mistral-large", "name": "Mistral: Large"})
    endpoint = payloads.inferred_endpoint(fields)
    assert endpoint["provider_slug"] == "mistral" and endpoint["inferred"]
    assert (
        payloads.inferred_endpoint(payloads.parse_model({"id": "~anthropic/x"}))["tag"]
        == "anthropic"
    )


def test_price_and_token_formatting():
    assert per_million(Decimal("0.00000125")) == "$1.25"
    assert per_million("0.00000015") == "$0.15"
    assert per_million("0.0000000375") == "$0.0375"
    assert per_million("0") == "Free"
    assert per_million("-1") == "varies"
    assert tokens(1_048_576) == "1M" and tokens(200_000) == "200K" and tokens(None) == "—"
    assert per_million("0.0000007") == "$0.70"
    # Real 2026 prices: never rounded to a different (lower) price than the one charged.
    assert per_million("0.000001125") == "$1.125"
    assert per_million("0.000004425") == "$4.425"
    assert per_million("0.000001875") == "$1.875"
    assert per_million("0.000078596") == "$78.596"
    assert per_million("0.00015") == "$150.00"
    assert per_million("0.0012") == "$1,200.00"
    assert per_million("0.000000078596") == "$0.0786"


@pytest.mark.parametrize(
    "model_id",
    [
        "openai/gpt-4o",
        "openai/gpt-4o:batch",
        "~anthropic/claude-sonnet-latest",
        "meta-llama/llama-3.3-70b-instruct:free",
        "qwen/qwen3.8-27b",
        "mistralai/mistral-small-3.1-24b-instruct",
        "router",
    ],
)
def test_real_model_ids_are_accepted(model_id):
    assert [m["openrouter_id"] for m in payloads.parse_models({"data": [{"id": model_id}]})] == [
        model_id
    ]


@pytest.mark.parametrize(
    "model_id",
    [
        "openai/gpt-4o\n",
        "evil/line\nbreak",
        "evil/tab\there",
        "evil/carriage\rreturn",
        "evil/with space",
        "evil/<script>",
        'evil/"quote',
        "evil/query?x=1",
        "evil/frag#x",
        "evil/percent%2F",
        "evil/back\\slash",
        "../etc/passwd",
        "evil/a/b",
        "evil/",
        "/evil",
        "evil/nul\0byte",
        "evil/ｆｕｌｌｗｉｄｔｈ",
        "evil/" + "x" * 200,
    ],
)
def test_unsafe_model_ids_are_skipped_and_logged(model_id, caplog):
    body = {"data": [{"id": "openai/gpt-4o", "name": "GPT-4o"}, {"id": model_id, "name": "Evil"}]}
    with caplog.at_level("WARNING", logger="models_catalog.payloads"):
        parsed = payloads.parse_models(body)
    assert [m["openrouter_id"] for m in parsed] == ["openai/gpt-4o"]
    assert "Skipped" in caplog.text and "\n" not in caplog.messages[0]  # no log injection


def test_a_models_body_with_only_unsafe_ids_is_malformed():
    with pytest.raises(payloads.CatalogPayloadError):
        payloads.parse_models({"data": [{"id": "evil/\n"}]})


def test_unsafe_provider_slugs_are_skipped_and_logged(caplog):
    body = {
        "data": [
            {"slug": "deepinfra", "name": "DeepInfra"},
            {"slug": "evil\nslug", "name": "Evil"},
            {"slug": "evil/slug", "name": "Evil"},
            {"slug": "évil", "name": "Evil"},
            {"name": "!!!"},  # no slug, and nothing of the name makes one
            {"name": "Google AI Studio"},
        ]
    }
    with caplog.at_level("WARNING", logger="models_catalog.payloads"):
        parsed = payloads.parse_providers(body)
    assert [p["slug"] for p in parsed] == ["deepinfra", "google-ai-studio"]
    assert caplog.text.count("Skipped") == 4


def test_endpoints_naming_an_unsafe_provider_are_skipped(caplog):
    body = {
        "data": {
            "endpoints": [
                {"tag": "deepinfra/fp8", "provider_name": "DeepInfra"},
                {"tag": "evil\nhost/fp8", "provider_name": "Evil"},
                {"tag": "!!!", "provider_name": "Evil"},
            ]
        }
    }
    with caplog.at_level("WARNING", logger="models_catalog.payloads"):
        parsed = payloads.parse_endpoints(body, "openai/gpt-4o")
    assert [e["provider_slug"] for e in parsed] == ["deepinfra"]
    assert caplog.text.count("Skipped") == 2
