"""`md` and `code`: a user's or a model's string in a markdown context shows exactly as written.

Each escaped string is rendered by markdown-it-py (CommonMark with raw HTML on, stricter than Streamlit, plus GFM
tables and strikethrough), and the HTML must hold no image, link, script, heading, list or table, only the
original characters as text.
"""

from __future__ import annotations

import html
import re

import pytest

from datagen_core.markdown import code, md

markdown_it = pytest.importorskip("markdown_it")
pytest.importorskip("linkify_it")
#: CommonMark with GFM's tables, strikethrough and bare-URL links, as Streamlit and hubs render markdown.
RENDERER = markdown_it.MarkdownIt("commonmark", {"linkify": True}).enable(["table", "strikethrough", "linkify"])
#: Tags a plain paragraph (or an inline code span) may produce; anything else means markdown or HTML was drawn.
PLAIN_TAGS = {"p", "/p", "br", "br /", "code", "/code"}

HOSTILE = [
    "![x](http://h/a.png)",
    "![x][r]\n\n[r]: http://h/a.png",
    "[click](http://h/)",
    "<http://h/auto>",
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    '<a href="http://h/">a</a>',
    "# heading",
    "title\n===",
    "- item\n+ item\n* item",
    "1. first\n2) second",
    "> quoted",
    "**bold** _em_ *em* ~~gone~~",
    "a|b\n-|-\nc|d",
    "`code` and ``more``",
    "&lt;b&gt; &amp; &#x3C;img&#x3E;",
    "back\\slash \\*not em\\*",
    "---",
]


def rendered(markdown: str) -> str:
    return RENDERER.render(markdown)


def tags(rendered_html: str) -> set[str]:
    return {tag.strip().split(" ")[0] if not tag.startswith("br") else tag.strip()
            for tag in re.findall(r"<([^>]*)>", rendered_html)}


def text_of(rendered_html: str) -> str:
    """What a reader sees: the rendered HTML's text, whitespace-normalised, without zero-width spaces."""
    inline = re.sub(r"</?code>", "", rendered_html)  # a code span is part of its sentence, not a break
    return " ".join(html.unescape(re.sub(r"<[^>]*>", " ", inline)).replace("\u200b", "").split())


@pytest.mark.parametrize("text", HOSTILE)
def test_md_shows_markdown_and_html_as_written(text: str) -> None:
    out = rendered(md(text))
    assert "<img" not in out and "<a " not in out and "<script" not in out
    assert tags(out) <= PLAIN_TAGS, out
    assert text_of(out) == " ".join(text.split())


@pytest.mark.parametrize("text", HOSTILE)
def test_code_shows_everything_in_one_span(text: str) -> None:
    out = rendered(code(text))
    assert "<img" not in out and "<a " not in out and "<script" not in out
    assert tags(out) <= PLAIN_TAGS, out
    spans = re.findall(r"<code>(.*?)</code>", out, flags=re.DOTALL)
    assert len(spans) == 1 and html.unescape(spans[0]) == " ".join(text.split())


@pytest.mark.parametrize("text", ["`", "a`b", "``x``", "`lead", "trail`", "a ``` b"])
def test_code_spans_hold_any_backticks(text: str) -> None:
    (span,) = re.findall(r"<code>(.*?)</code>", rendered(f"Label {code(text)} here"))
    assert html.unescape(span) == text


def test_plain_words_and_identifiers_are_unchanged() -> None:
    for text in ("not_spam", "hello world", "SMS spam detection", "snake_case_name", "gpt-4o-mini", "r2d2",
                 "What's up? (really)", "3 + 4 = 7"):
        assert md(text) == text
    assert code("not_spam") == "`not_spam`"
    assert code("") == ""


def test_streamlit_only_syntax_is_broken_up() -> None:
    """Shortcodes and LaTeX are Streamlit's own (markdown-it draws neither): their markers must not survive."""
    for shortcode in (":material/home:", ":smile:", ":streamlit:", "see :red[alert] now"):
        escaped = md(shortcode)
        assert not re.search(r":(material/[a-z_]+|[A-Za-z+-][\w+-]*):", escaped), escaped
        assert re.search(r":\w+\[", escaped) is None  # no :colour[...] directive either
        assert escaped.replace("\u200b", "").replace("\\", "") == shortcode
    assert md("$x$ and $$y$$") == r"\$x\$ and \$\$y\$\$"
    assert text_of(rendered(md("costs $5 or $6"))) == "costs $5 or $6"


def test_bare_urls_and_addresses_stay_text_and_copy_exactly() -> None:
    """GFM links bare URLs whatever is escaped around them; in a code span none is, and it copies as written."""
    text = "see http://h/a.png, HTTPS://h/b_c, www.example.com. and a@b.co!"
    assert "<a " in rendered(text)  # the renderer does link them when left alone
    out = rendered(md(text))
    assert "<a " not in out and tags(out) <= PLAIN_TAGS, out
    assert text_of(out) == text
    assert re.findall(r"<code>([^<]*)</code>", out) == ["http://h/a.png", "HTTPS://h/b_c", "www.example.com", "a@b.co"]


def test_an_indented_line_shows_as_written() -> None:
    out = rendered(md("    ![x](http://h/a.png) <img src=x>"))
    assert "<img" not in out and "<a " not in out and tags(out) <= PLAIN_TAGS | {"pre", "/pre"}
    assert text_of(out) == "![x](http://h/a.png) <img src=x>"


def test_leading_underscores_and_emphasis_stay_literal() -> None:
    for text in ("_private_", "__dunder__", "a _b_ c", "*_*"):
        out = rendered(md(text))
        assert "<em>" not in out and "<strong>" not in out and text_of(out) == text
