"""Model descriptions: OpenRouter's Markdown rendered, links pointed at our pages, and
every script or unsafe URL a description could carry neutralised."""

from html.parser import HTMLParser

import pytest

from models_catalog.descriptions import description_html
from tests.models_catalog.factories import ModelFactory, ProviderFactory, offer

OURS = {"openai/gpt-4o", "openai/gpt-5", "moonshotai/kimi-k2"}
SAFE_TAGS = {"p", "a", "em", "strong", "code", "pre", "ul", "ol", "li", "br", "h3", "h4"}


def render(text: str) -> str:
    return str(description_html(text, known_models=lambda ids: ids & OURS))


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))


def elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Elements()
    parser.feed(html)
    return parser.found


def assert_safe(html: str) -> None:
    """Only Markdown's tags; links only https or site-relative, with rel; nothing else."""
    for tag, attrs in elements(html):
        assert tag in SAFE_TAGS, html
        if tag == "a":
            assert set(attrs) <= {"href", "title", "rel"}, html
            assert attrs["href"].startswith(("https://", "/")), html
            assert not attrs["href"].startswith("//"), html
            assert attrs["rel"] == "nofollow noopener noreferrer", html
        else:
            assert not attrs, html


def test_markdown_links_to_openrouter_models_point_at_our_model_pages():
    html = render(
        "After [GPT-4 Omni](/models/openai/gpt-4o), [GPT-5](https://openrouter.ai/openai/gpt-5)"
        " and [Kimi](moonshotai/kimi-k2)."
    )
    assert '<a href="/dashboard/models/openai/gpt-4o/" rel=' in html
    assert '<a href="/dashboard/models/openai/gpt-5/" rel=' in html
    assert '<a href="/dashboard/models/moonshotai/kimi-k2/" rel=' in html
    assert "[GPT-4 Omni]" not in html
    assert_safe(html)


def test_openrouter_pages_we_do_not_have_lose_the_link_but_keep_the_text():
    html = render("By [Microsoft Research](/microsoft), see [rankings](/rankings#x), [Old](/a/b).")
    assert html == "<p>By Microsoft Research, see rankings, Old.</p>\n"


def test_openrouter_search_links_become_our_search():
    html = render("Built like the [Gemini models](/models?q=gemini).")
    assert 'href="/dashboard/models/?q=gemini"' in html


def test_https_links_stay_with_nofollow_noopener_and_an_unknown_model_on_openrouter_too():
    html = render(
        "[Blog](https://mistral.ai/news/x) <https://poolside.ai/> [New](https://openrouter.ai/x/new)"
    )
    assert '<a href="https://mistral.ai/news/x" rel="nofollow noopener noreferrer">Blog</a>' in html
    assert 'href="https://poolside.ai/"' in html and 'href="https://openrouter.ai/x/new"' in html
    assert_safe(html)


def test_markdown_formatting_is_rendered_and_headings_sit_below_the_page_headings():
    html = render("# Title\n\n**bold**, *it*, `code`\n\n- one\n- two\n\n```\nblock\n```")
    assert "<h3>Title</h3>" in html and "<h1>" not in html
    assert "<strong>bold</strong>" in html and "<em>it</em>" in html and "<code>code</code>" in html
    assert "<li>one</li>" in html and "<pre><code>block\n</code></pre>" in html


@pytest.mark.parametrize(
    "attack",
    [
        "[x](javascript:alert(1))",
        "[x](JaVaScRiPt:alert(1))",
        "[x](&#106;avascript:alert(1))",
        "[x](<javascript:alert(1)>)",
        "[x]( javascript:alert(1) )",
        "[x](java\tscript:alert(1))",
        "<javascript:alert(1)>",
        "[x](vbscript:msgbox(1))",
        "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
        "![x](https://tracker.example/pixel.gif)",
        "[x](http://plain.example/)",
        "[x](//evil.example/)",
        "[x](file:///etc/passwd)",
        "[x](mailto:someone@example.com)",
    ],
)
def test_unsafe_links_and_images_are_dropped_keeping_their_text(attack):
    html = render(f"Try {attack} now.")
    assert "<a" not in html and "<img" not in html
    assert_safe(html)


@pytest.mark.parametrize(
    "attack",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        '<a href="javascript:alert(1)">x</a>',
        "<iframe src=https://evil.example></iframe>",
        '<p style="position:fixed">x</p>',
        "<svg onload=alert(1)>",
        "<!-- <script>alert(1)</script> -->",
    ],
)
def test_raw_html_in_a_description_is_shown_as_text_never_run(attack):
    html = render(f"Hello {attack}")
    assert elements(html) == [("p", {})], html
    assert "&lt;" in html


def test_quotes_in_a_url_cannot_add_attributes():
    html = render(
        '[x](https://a.example/"onmouseover="alert(1)) [y](https://a.example/ "t\\" onclick=\\"z")'
    )
    assert_safe(html)
    assert all("onmouseover" not in attrs and "onclick" not in attrs for _, attrs in elements(html))


# --- On the model page, with the catalog's own models -------------------------------------


@pytest.fixture
def linked(db):
    openai = ProviderFactory(slug="openai", name="OpenAI")
    offer(provider=openai, openrouter_id="openai/gpt-4o", name="OpenAI: GPT-4o")
    ModelFactory(openrouter_id="openai/gpt-4-retired", is_active=False)
    return offer(
        provider=openai,
        openrouter_id="openai/gpt-4o-mini",
        name="OpenAI: GPT-4o mini",
        description=(
            "Newest after [GPT-4 Omni](/models/openai/gpt-4o), unlike [GPT-4](/models/openai/"
            "gpt-4-retired). <script>alert(1)</script> [x](javascript:alert(1))"
        ),
    ).model


def test_the_model_page_renders_the_description_with_links_to_our_pages(alice_browser, linked):
    body = alice_browser.get("/dashboard/models/openai/gpt-4o-mini/").content.decode()
    assert (
        '<a href="/dashboard/models/openai/gpt-4o/" rel="nofollow noopener noreferrer">'
        "GPT-4 Omni</a>" in body
    )
    assert "unlike GPT-4." in body  # inactive: no page, so no link
    assert "<script>alert(1)" not in body and "javascript:" not in body
    assert "[GPT-4 Omni](" not in body


def test_the_snapshots_gpt_4o_mini_links_to_the_gpt_4o_page(alice_browser, db):
    # An empty database serves the shipped snapshot, which has openai/gpt-4o.
    body = alice_browser.get("/dashboard/models/openai/gpt-4o-mini/").content.decode()
    assert '<a href="/dashboard/models/openai/gpt-4o/" rel=' in body
    assert "(/models/openai/gpt-4o)" not in body
