"""Model descriptions: OpenRouter's Markdown as safe HTML for the model page.

markdown-it-py renders CommonMark with raw HTML off (``<script>`` shows as text); images
become their alt text (no ``data:`` or tracking images). Every link is then judged here:
OpenRouter's links to a model (``/models/openai/gpt-4o``, ``/openai/gpt-4o``,
``https://openrouter.ai/openai/gpt-4o``) point at our model page when we have that
model, ``/models?q=…`` at our search, other https links stay, and any other link is
dropped with its text kept. nh3 (ammonia) then sanitises the HTML as a second
line: only the tags Markdown makes, ``href`` only https or site-relative, no attribute
that runs script or sets a style (the Content-Security-Policy refuses inline styles).
"""

from collections.abc import Callable
from urllib.parse import SplitResult, parse_qs, unquote, urlencode, urlsplit

import nh3
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt
from markdown_it.token import Token

from models_catalog.payloads import MAX_ID_LENGTH, SAFE_MODEL_ID

OPENROUTER_HOSTS = {"openrouter.ai", "www.openrouter.ai"}
TAGS = {
    "p", "br", "hr", "a", "em", "strong", "code", "pre", "blockquote",
    "ul", "ol", "li", "h3", "h4", "h5", "h6",
}  # fmt: skip
ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}
LINK_REL = "nofollow noopener noreferrer"
# Of these OpenRouter ids, the ones that have a model page here.
KnownModels = Callable[[set[str]], set[str]]


class _Markdown(MarkdownIt):
    def validateLink(self, url: str) -> bool:  # markdown-it calls it by this name
        # Keep every link in the token stream: _target() decides, and drops a bad one's
        # URL but keeps its text (markdown-it would leave the raw "[text](url)").
        return True


_markdown = _Markdown("commonmark", {"html": False})


def _model_id(parts: SplitResult) -> str | None:
    """The model id an OpenRouter site path names, if it has an id's shape."""
    path = unquote(parts.path).strip("/").removeprefix("models/")
    if len(path) <= MAX_ID_LENGTH and "/" in path and SAFE_MODEL_ID.fullmatch(path):
        return path
    return None


def _is_openrouter_path(parts: SplitResult) -> bool:
    """A link into OpenRouter's site: written site-relative, or to openrouter.ai."""
    if parts.scheme or parts.netloc:
        return parts.scheme.lower() == "https" and parts.hostname in OPENROUTER_HOSTS
    return True


def _target(href: str, known: set[str]) -> str | None:
    """Where a link in a description may point on our pages, or None to drop it."""
    parts = urlsplit(href)
    if _is_openrouter_path(parts):
        model_id = _model_id(parts)
        if model_id in known:
            return reverse("models_catalog:detail", args=[model_id])
        if parts.path.strip("/") == "models":  # OpenRouter's model search
            query = (parse_qs(parts.query).get("q") or [""])[0].strip()[:100]
            search = f"?{urlencode({'q': query})}" if query else ""
            return reverse("models_catalog:list") + search
    if parts.scheme.lower() == "https" and parts.hostname:
        return href
    # http:, javascript:, data:, mailto:, //host, and OpenRouter pages we do not have.
    return None


def _rewrite_links(children: list[Token], known: set[str]) -> list[Token]:
    kept: list[Token] = []
    dropping = False  # CommonMark links do not nest: one flag pairs open and close
    for token in children:
        if token.type == "link_open":
            target = _target(str(token.attrGet("href") or ""), known)
            if target is None:
                dropping = True
                continue
            title = token.attrGet("title")
            token.attrs = {"href": target, **({"title": title} if title else {})}
        elif token.type == "link_close" and dropping:
            dropping = False
            continue
        elif token.type == "image":
            token = Token("text", "", 0, content=token.content)
        kept.append(token)
    return kept


def description_html(text: str, *, known_models: KnownModels) -> SafeString:
    """``text`` (Markdown) as sanitised HTML. ``known_models`` is asked once, with every
    model id the links name, which of them have a model page."""
    tokens = _markdown.parse(text)
    inline = [token for token in tokens if token.type == "inline" and token.children]
    wanted = {
        model_id
        for token in inline
        for child in token.children or []
        if child.type == "link_open"
        and _is_openrouter_path(parts := urlsplit(str(child.attrGet("href") or "")))
        and (model_id := _model_id(parts))
    }
    known = known_models(wanted) if wanted else set()
    for token in inline:
        token.children = _rewrite_links(token.children or [], known)
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            # The page's own headings are h1 and h2: a description's start at h3.
            token.tag = f"h{min(6, int(token.tag[1]) + 2)}"
    html = _markdown.renderer.render(tokens, _markdown.options, {})
    clean = nh3.clean(
        html, tags=TAGS, attributes=ATTRIBUTES, url_schemes={"https"}, link_rel=LINK_REL
    )
    return mark_safe(clean)  # noqa: S308 (sanitised by nh3 just above)
