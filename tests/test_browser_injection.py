"""Hostile strings in a real browser: every page shows them as text and nothing fetches from where they point.

A counting HTTP server on 127.0.0.1 stands for an attacker's host; the project's labels, task, genes,
constraints, samples, offspring and model name all point at it with markdown images, `<img>` tags and links
(`tests/injection.py`). Every page is opened (the Map fitted, Metrics computed, the dataset card unfolded)
and the server must have received no request, nor may any page link to it; the CSV download must hold
formulas as text.
"""

from __future__ import annotations

import csv
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from datagen_core.embed import Embedder

from .browser import CHROMIUM, CHROMIUM_FLAGS, free_port, go, idle, require_chromium, studio_server
from .injection import PROJECT, Hostile, make_injection_project

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")
Page = playwright_api.Page
Locator = playwright_api.Locator
expect = playwright_api.expect

WAIT_MS = 120_000
REVIEW_SHOT = Path("/tmp/injection-review.png")


class CountingServer:
    """Answers every request with 404 and remembers its path: any request at all is a leak."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        lock = threading.Lock()
        paths = self.paths

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _count(self) -> None:
                with lock:
                    paths.append(f"{self.command} {self.path}")
                self.send_error(404)

            do_GET = do_POST = do_HEAD = do_OPTIONS = _count

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> CountingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class Visit:
    """What one walk through every page saw: requests the server got and links to it, per page, and the CSV."""

    hostile: Hostile
    fetched: dict[str, list[str]] = field(default_factory=dict)
    links: list[str] = field(default_factory=list)
    rows: list[dict[str, str]] = field(default_factory=list)




def as_read(text: str) -> re.Pattern[str]:
    """`text` as a reader sees it: md() may put invisible zero-width spaces in (to break up shortcodes)."""
    return re.compile("\u200b?".join(map(re.escape, text)))


def shown(scope: Page | Locator, text: str) -> Locator:
    """The first visible element showing `text` (a table's hidden accessibility cells hold it too)."""
    return scope.get_by_text(as_read(text)).filter(visible=True).first


def check_page(page: Page, server: CountingServer, visit: Visit, where: str) -> None:
    """Record the requests the server got by now and the links to it on the page; no image or script
    pointing at it may be in the page, nor an exception box."""
    page.wait_for_timeout(500)  # an image the page did draw has had time to be requested
    base = visit.hostile.base
    visit.fetched[where] = list(server.paths)
    for selector in (f'img[src^="{base}"]', f'script[src^="{base}"]'):
        assert page.locator(selector).count() == 0, f"{where}: {selector}"
    expect(shown(page.get_by_test_id("stSidebar"), visit.hostile.model)).to_be_visible()
    expect(page.get_by_test_id("stException")).to_have_count(0)
    links = page.locator(f'a[href^="{base}"]')
    visit.links += [f"{where}: {links.nth(i).evaluate('a => a.parentElement.outerHTML')}"
                    for i in range(links.count())]


def walk(page: Page, server: CountingServer, visit: Visit) -> None:
    """Open the project, then every page, checking each shows the hostile strings as written."""
    hostile = visit.hostile
    page.get_by_test_id("stSidebar").get_by_label("Project").click()
    page.get_by_role("option", name=PROJECT, exact=True).click()
    expect(page.get_by_role("heading", name=f"Project {PROJECT}")).to_be_visible()
    idle(page)
    # the label descriptions' inputs are titled with the label names, as written
    expect(shown(page, hostile.image_label)).to_be_visible()
    expect(shown(page, hostile.html_label)).to_be_visible()
    check_page(page, server, visit, "Project")

    go(page, "Genes & constraints")
    expect(shown(page, hostile.constraint)).to_be_visible()
    expect(shown(page, f"note {hostile.gene}")).to_be_visible()
    page.get_by_text("Topics per label", exact=False).click()
    expect(shown(page, hostile.image_label)).to_be_visible()
    check_page(page, server, visit, "Genes")

    go(page, "Evolve")
    expect(page.get_by_role("heading", name="Newest offspring")).to_be_visible()
    expect(shown(page, hostile.image_label)).to_be_visible()
    expect(shown(page, hostile.formula)).to_be_visible()
    expect(shown(page, hostile.gene)).to_be_visible()
    check_page(page, server, visit, "Evolve")

    go(page, "Map")
    chart = page.get_by_test_id("stPlotlyChart")
    expect(chart.locator(".scatterlayer .point").first).to_be_attached()
    expect(chart.get_by_text(hostile.image_label, exact=False).first).to_be_attached()  # the legend
    chart.locator(".scatterlayer .trace").last.locator(".point").first.click(force=True)
    idle(page)
    expect(page.get_by_text("Selected #", exact=False)).to_be_visible()
    check_page(page, server, visit, "Map")

    go(page, "Review")
    sample = page.get_by_role("combobox", name="Sample", exact=True)  # "#1 · <label> · accepted · <text>"
    expect(sample).to_have_value(re.compile(re.escape(hostile.image_label)))
    page.screenshot(path=str(REVIEW_SHOT), full_page=True)
    check_page(page, server, visit, "Review")

    go(page, "Metrics")
    page.get_by_role("button", name="Compute").click()
    expect(page.get_by_role("heading", name="Comparison")).to_be_visible()
    idle(page)
    charts = page.get_by_test_id("stPlotlyChart")
    expect(charts.get_by_text(hostile.image_label, exact=False).first).to_be_attached()  # tick labels
    check_page(page, server, visit, "Metrics")

    go(page, "Export")
    page.get_by_text("Dataset card", exact=True).click()
    idle(page)
    card = page.get_by_test_id("stExpander").filter(has_text="Dataset card")
    expect(shown(card, hostile.task)).to_be_visible()
    expect(shown(card, hostile.image_label)).to_be_visible()
    check_page(page, server, visit, "Export")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    with Path(download.value.path()).open(newline="", encoding="utf-8") as exported:
        visit.rows = list(csv.DictReader(exported))


@pytest.fixture(scope="module")
def visit(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Visit:
    """One walk through every page of the studio on the hostile project, in a 1280 px wide window."""
    require_chromium()
    root = tmp_path_factory.mktemp("injection")
    home = root / "projects"
    home.mkdir()
    with CountingServer() as server:
        visit = Visit(Hostile(server.base))
        make_injection_project(home, visit.hostile, embedder)
        env = {"DATAGEN_BASE_URL": f"http://127.0.0.1:{free_port()}/v1", "DATAGEN_MODEL": visit.hostile.model}
        with studio_server(home, env, root / "studio.log") as url, playwright_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
            try:
                page = browser.new_context(viewport={"width": 1280, "height": 1000}, accept_downloads=True).new_page()
                page.set_default_timeout(WAIT_MS)
                expect.set_options(timeout=WAIT_MS)
                page.goto(url)
                expect(page.get_by_role("heading", name="Project", exact=True)).to_be_visible()
                idle(page)
                walk(page, server, visit)
            finally:
                browser.close()
        visit.fetched["after the walk"] = list(server.paths)
    return visit


def test_no_page_fetches_what_user_strings_point_at(visit: Visit) -> None:
    assert all(paths == [] for paths in visit.fetched.values()), visit.fetched
    assert set(visit.fetched) == {"Project", "Genes", "Evolve", "Map", "Review", "Metrics", "Export", "after the walk"}


def test_the_csv_download_holds_formulas_as_text(visit: Visit) -> None:
    hostile = visit.hostile
    assert visit.rows and {row["label"] for row in visit.rows} == {hostile.image_label, hostile.html_label}
    for row in visit.rows:  # a spreadsheet shows the formula as text instead of running it
        assert row["text"].startswith("'="), row["text"]
        assert row["text"][1:].startswith(hostile.formula)


def test_no_page_links_to_urls_in_user_strings(visit: Visit) -> None:
    assert visit.links == [], "links to the counting server:\n" + "\n".join(visit.links)
