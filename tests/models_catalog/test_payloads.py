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
