"""The open project lives in the URL: a reload, a new tab or a typed address opens the same project, never the
demo behind the user's back (issue 14.1), in a real browser."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from datagen_core.demo import ensure_demo_project

from .browser import CHROMIUM, CHROMIUM_FLAGS, IDLE, require_chromium, studio_server
from .conftest import make_project

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

WAIT_MS = 120_000
TREC_ROWS = re.compile(r"18 sample\(s\) match")


def test_reload_new_tab_and_typed_url_keep_the_project(tmp_path: Path) -> None:
    require_chromium()
    home = tmp_path / "projects"
    ensure_demo_project(home)
    make_project(home)  # "trec"
    env = {"DATAGEN_BASE_URL": "http://127.0.0.1:9/v1", "DATAGEN_MODEL": "m"}  # no embedded model needed
    with studio_server(home, env, tmp_path / "studio.log") as url, playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(WAIT_MS)
        # the freshly started studio's very first visit is a bookmark of a page: it opens that page of that
        # project, through app.py's navigation (Streamlit would otherwise run the page alone by its pages/ folder)
        page.goto(f"{url}/review?project=trec")
        expect(page.get_by_text(TREC_ROWS)).to_be_visible()
        expect(page.get_by_test_id("stSidebarNav").get_by_role("link", name="Genes & constraints")).to_be_visible()
        page.goto(url)
        page.locator(IDLE).wait_for()
        page.get_by_test_id("stSidebar").get_by_label("Project").click()
        page.get_by_role("option", name="trec", exact=True).click()
        expect(page.get_by_role("heading", name="Project trec")).to_be_visible()
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Review").click()
        expect(page.get_by_role("heading", name="Review")).to_be_visible()
        page.locator(IDLE).wait_for()
        assert "project=trec" in page.url
        page.reload()  # a reload is a new session: the URL brings the project back
        expect(page.get_by_role("heading", name="Review")).to_be_visible()
        page.locator(IDLE).wait_for()
        expect(page.get_by_text(TREC_ROWS)).to_be_visible()  # trec's 18 seeds, not the demo's 60
        tab = browser.new_page()  # a link shared with a colleague: another tab, the same address
        tab.set_default_timeout(WAIT_MS)
        tab.goto(page.url)
        tab.locator(IDLE).wait_for()
        expect(tab.get_by_text(TREC_ROWS)).to_be_visible()
        tab.goto(f"{url}/?project=nope")  # a typed address naming no project: the demo, and it says so
        expect(tab.get_by_text("No project nope in this folder")).to_be_visible()
        browser.close()
