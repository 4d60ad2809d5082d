"""Pages are written one way: labels, headings and buttons in sentence case with no trailing
colon (allauth's pages included), and text symbols rather than colour emoji."""

import re
from pathlib import Path

import pytest
from django.template import Context, Template
from django.utils.safestring import mark_safe

# Characters below U+1F000 that browsers draw as colour emoji by default.
EMOJI_IN_THE_BMP = set(
    "\u231a\u231b\u23f0\u23f3\u2614\u2615\u26a1\u26d4\u2705\u270a\u270b\u2728\u274c\u274e"
    "\u2753\u2757\u2b50"
)


def sentence_case(value) -> str:
    return Template("{% load wording %}{{ value|sentence_case }}").render(Context({"value": value}))


@pytest.mark.parametrize(
    ("allauth", "ours"),
    [
        ("Sign Up", "Sign up"),
        ("Remember Me", "Remember me"),
        ("Reset My Password", "Reset my password"),
        ("Sign In Via Google", "Sign in via Google"),
        ("API Tokens", "API tokens"),
        ("Forgot your password?", "Forgot your password?"),
    ],
)
def test_title_case_becomes_sentence_case_keeping_names_and_acronyms(allauth, ours):
    assert sentence_case(allauth) == ours


def test_markup_is_kept_and_text_is_escaped():
    assert sentence_case(mark_safe('<a href="/Accounts/">Sign In</a>')) == (
        '<a href="/Accounts/">Sign in</a>'
    )
    assert sentence_case("Make Primary <b>") == "Make primary &lt;b&gt;"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "labels", "button"),
    [
        ("/accounts/login/", ["Email", "Password", "Remember me"], "Sign in"),
        ("/accounts/signup/", ["Email", "Password", "Password (again)"], "Sign up"),
        ("/accounts/password/reset/", ["Email"], "Reset my password"),
    ],
)
def test_allauth_pages_label_fields_like_kays_own_forms(client, url, labels, button):
    html = client.get(url).content.decode()
    for label in labels:
        assert f">{label}</label>" in html
    assert re.search(rf">\s*{re.escape(button)}\s*</button>", html)
    assert ":</label>" not in html


def test_the_tokens_form_has_no_colon_and_its_help_text_is_referenced(alice_browser):
    html = alice_browser.get("/dashboard/tokens/").content.decode()
    assert '<label for="id_name">Token name</label>' in html
    assert 'aria-describedby="id_name_helptext"' in html
    assert 'id="id_name_helptext"' in html


def test_no_page_uses_an_emoji_where_the_rest_use_symbols():
    """Pages mark things with text symbols (✓ ⚷ ◇); a colour emoji such as 🔑 stands out."""
    root = Path(__file__).resolve().parents[2]
    found = [
        f"{path.relative_to(root)}: {char}"
        for directory in (root / "templates", root / "models_catalog" / "templates")
        for path in directory.rglob("*.html")
        for char in set(path.read_text())
        if ord(char) >= 0x1F000 or char in EMOJI_IN_THE_BMP
    ]
    assert found == []
