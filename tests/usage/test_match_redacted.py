"""match_redacted(): which stored key an OpenAI ``redacted_value`` (its first and last few
characters around "...", how many varies) can be — compared with the plaintext, never with
Kay's own mask, and never guessed when several keys fit."""

import pytest

from keys.services import mask_secret
from usage.providers.openai import match_redacted

PROJECT_KEY = "sk-proj-Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56Qr78St90Uv12Wx9z"
SERVICE_KEY = "sk-svcacct-Zz98Yy76Xx54Ww32Vv10Uu98Tt76Ss54Rr32Qq10Pdef"
ADMIN_KEY = "sk-admin-Mm11Nn22Oo33Pp44Qq55Rr66Ss77Tt88Uu99Vv00xyz"
LEGACY_KEY = "sk-abcT3BlbkFJ0000000000000000000000000000000000def"
STORED = {1: PROJECT_KEY, 2: SERVICE_KEY, 3: ADMIN_KEY, 4: LEGACY_KEY}


@pytest.mark.parametrize(
    ("redacted", "key_id"),
    [
        ("sk-abc...def", 4),  # OpenAI's documented example
        ("sk-proj-Ab...Wx9z", 1),
        ("sk-proj-Ab12Cd...Uv12Wx9z", 1),  # more shown at both ends
        ("sk-...x9z", 1),  # the prefix alone says little, the end tells them apart
        ("sk-svcacct-Z...Pdef", 2),
        ("sk-admin...xyz", 3),
        ("sk-proj-Ab…Wx9z", 1),  # a Unicode ellipsis
        ("sk-proj-Ab*****Wx9z", 1),  # asterisks
        ("  sk-abc...def ", 4),
    ],
)
def test_a_redacted_value_matches_the_stored_key_it_shows(redacted, key_id):
    assert match_redacted(redacted, STORED) == key_id


def test_it_compares_with_the_plaintext_not_with_our_mask():
    """Kay's mask (4 + 4 characters around "…") differs from OpenAI's redaction of the same
    key; only the plaintext tells whether they are one key."""
    assert mask_secret(PROJECT_KEY) == "sk-p…Wx9z"
    assert match_redacted("sk-proj-Ab...Wx9z", {1: PROJECT_KEY}) == 1
    assert match_redacted("sk-proj-Ab...Wx9z", {1: mask_secret(PROJECT_KEY)}) is None


@pytest.mark.parametrize(
    "redacted",
    [
        "sk-proj-Zz...Wx9z",  # another prefix
        "sk-proj-Ab...Wx9y",  # another end
        "sk-abc...xyz",  # the start of one key, the end of another
        "sk-proj-Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56Qr78St90Uv12...Uv12Wx9z",  # longer than it
    ],
)
def test_a_key_we_do_not_hold_matches_nothing(redacted):
    assert match_redacted(redacted, STORED) is None


def test_two_stored_keys_that_both_fit_match_neither():
    twin = PROJECT_KEY[:-6] + "zzWx9z"
    assert match_redacted("sk-proj-Ab...Wx9z", {1: PROJECT_KEY, 7: twin}) is None
    assert match_redacted("sk-proj-Ab...zzWx9z", {1: PROJECT_KEY, 7: twin}) == 7


@pytest.mark.parametrize(
    "redacted",
    [
        "sk-proj-Ab12...",  # no end shown: every project key starting so would fit
        "sk-proj-Ab12...9z",  # too little of the end to tell keys apart
        PROJECT_KEY,  # not a redaction at all
        "",
        "...",
    ],
)
def test_a_redaction_that_shows_too_little_matches_nothing(redacted):
    assert match_redacted(redacted, STORED) is None


def test_no_stored_keys_match_nothing():
    assert match_redacted("sk-abc...def", {}) is None
