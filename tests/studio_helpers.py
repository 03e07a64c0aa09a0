"""Shared AppTest helpers for the studio: a fresh project folder per test and the app on a given page.

Use in a test module:

    @pytest.fixture
    def studio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Studio]:
        yield from studio_session(tmp_path, monkeypatch)

    def test_x(studio: Studio) -> None:
        at = studio.open_page("pages/genes.py")

The app and the test share one process, so `studio.workspace()` is the very workspace the app uses
(one DuckDB connection per project file, as in production).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Button

from datagen_core.workspace import Workspace

APP = Path(__file__).resolve().parents[1] / "app.py"
TIMEOUT = 60.0  # the first run creates the demo project; a page that embeds pays ~7 s of imports once


@dataclass
class Studio:
    home: Path

    def app(self) -> AppTest:
        """The studio as a fresh browser session (its own session state), not yet run."""
        return AppTest.from_file(str(APP), default_timeout=TIMEOUT)

    def open_page(self, page: str, at: AppTest | None = None) -> AppTest:
        """Run the app, switch to `page` (e.g. "pages/genes.py") and run it; fails on any exception drawn."""
        at = self.app() if at is None else at
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        at.switch_page(page).run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    def workspace(self) -> Workspace:
        """The app's process-wide workspace (the same cached object the pages get)."""
        from studio import state

        return state.workspace()


def studio_session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Studio]:
    """An empty $DATAGEN_HOME, no endpoint from the environment, and no workspace cached from another test."""
    home = tmp_path / "projects"
    monkeypatch.setenv("DATAGEN_HOME", str(home))
    for name in ("DATAGEN_BASE_URL", "DATAGEN_MODEL", "OPENAI_API_KEY", "DATAGEN_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    st.cache_resource.clear()
    studio = Studio(home)
    try:
        yield studio
    finally:
        if home.exists() and os.environ.get("DATAGEN_HOME") == str(home):
            studio.workspace().close()  # release the project files and stop background runs
        st.cache_resource.clear()


def button(at: AppTest, label: str) -> Button:
    """The page's button with this label (fails with the labels there are)."""
    matches = [b for b in at.button if b.label == label]
    assert matches, f"no button {label!r}; have {[b.label for b in at.button]}"
    return matches[0]


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def as_shown(markdown: str) -> str:
    """A markdown string the studio escaped with `md()`, as a reader sees it: escapes, the code spans that keep
    URLs from becoming links and the zero-width spaces after shortcode colons undone."""
    plain = re.sub(r"`((?:https?://|www\.)[^`]*|[^`\s]+@[^`\s]+)`", r"\1", markdown)
    return re.sub(r"\\(.)", r"\1", plain).replace("\u200b", "")
