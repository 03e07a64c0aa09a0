"""Every string a page hands Streamlit's markdown renderer, on a project of hostile strings, renders as text.

AppTest gives each element's markdown source (bodies of markdown, captions, headings and alerts; labels and
tooltips of widgets, expanders and metrics; progress text). Each is rendered with markdown-it-py and must
draw no image, link or script, and the hostile label shows as written. The browser test
(`test_browser_injection.py`) checks the same in Chromium, with the Map and the charts; this one needs no browser.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from datagen_core.embed import Embedder
from datagen_core.markdown import md

from .injection import PROJECT, Hostile, make_injection_project
from .studio_helpers import Studio, studio_session

markdown_it = pytest.importorskip("markdown_it")
RENDERER = markdown_it.MarkdownIt("commonmark").enable(["table", "strikethrough"])
HOSTILE = Hostile("http://127.0.0.1:9")
#: Where Streamlit reads markdown in an element's message; plain-text elements (st.text, st.code) are skipped.
MARKDOWN_FIELDS = ("body", "label", "help", "text")
PLAIN_TYPES = ("text", "code")


@pytest.fixture
def studio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedder: Embedder) -> Iterator[Studio]:
    for session in studio_session(tmp_path, monkeypatch):
        session.home.mkdir(parents=True)
        make_injection_project(session.home, HOSTILE, embedder)
        yield session


def markdown_sources(node: Any) -> Iterator[str]:
    """The markdown strings of `node` and everything below it (an expander's title included)."""
    proto = getattr(node, "proto", None)
    if proto is not None and getattr(node, "type", None) not in PLAIN_TYPES:
        for name in MARKDOWN_FIELDS:
            value = getattr(proto, name, None)
            if isinstance(value, str) and value:
                yield value
    for child in getattr(node, "children", {}).values():
        yield from markdown_sources(child)


def text_of(rendered: str) -> str:
    return html.unescape(re.sub(r"<[^>]*>", "", rendered)).replace("\u200b", "")


@pytest.mark.parametrize(
    ("page", "literal"),
    [("pages/project.py", HOSTILE.image_label), ("pages/genes.py", HOSTILE.constraint),
     ("pages/evolve.py", HOSTILE.html_label), ("pages/review.py", None), ("pages/export.py", HOSTILE.task)],
)
def test_pages_hand_the_renderer_no_markup_from_user_strings(studio: Studio, page: str, literal: str | None) -> None:
    at = studio.app()
    at.session_state["project"] = PROJECT
    at = studio.open_page(page, at)
    rendered = [RENDERER.render(source) for source in markdown_sources(at.main)]
    assert len(rendered) > 5, page
    for source, out in zip(markdown_sources(at.main), rendered, strict=True):
        assert "<img" not in out and "<a " not in out and "<script" not in out, (page, source)
    if literal is not None:
        assert literal in "\n".join(text_of(out) for out in rendered), page


def test_the_walk_sees_labels_tooltips_and_expander_titles(studio: Studio) -> None:
    """Not only markdown bodies: the test above would pass vacuously on widgets otherwise."""
    at = studio.app()
    at.session_state["project"] = PROJECT
    sources = list(markdown_sources(studio.open_page("pages/evolve.py", at).main))
    assert "New run" in sources and "Target per label" in sources
    assert any(source.startswith("Genetic Prompt, or a baseline") for source in sources)
    assert f"**{md(HOSTILE.image_label)}**: 2/2 kept · 0 filtered · 0 failed · 0 in flight" in sources  # progress
