"""The studio in a real browser (Debian's Chromium through Playwright), as a user drives it.

One studio process serves the whole module, on a loopback OpenAI-compatible server by default
(`STUDIO_BROWSER_LLM=embedded` runs it on the embedded SmolLM2 instead, as for the README's screenshots;
`STUDIO_SCREENSHOTS=docs/screenshots` keeps the screenshots there).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from .browser import CHROMIUM, CHROMIUM_FLAGS, go, idle, require_chromium, studio_server
from .conftest import shared_csv
from .loopback_server import LoopbackServer

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")
Page = playwright_api.Page
expect = playwright_api.expect

EMBEDDED = os.environ.get("STUDIO_BROWSER_LLM") == "embedded"
PER_LABEL = 4 if EMBEDDED else 8
WAIT_MS = 180_000 if EMBEDDED else 60_000
expect.set_options(timeout=WAIT_MS)


class Studio:
    """The running studio, the project folder behind it and where screenshots go."""

    def __init__(self, url: str, home: Path, shots: Path, browser: object) -> None:
        self.url = url
        self.home = home
        self.shots = shots
        self.browser = browser

    def new_page(self) -> Page:
        context = self.browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.goto(self.url)
        expect(page.get_by_role("heading", name="Project", exact=True)).to_be_visible()
        idle(page)
        return page

    def shot(self, page: Page, name: str) -> None:
        idle(page)
        page.screenshot(path=str(self.shots / f"{name}.png"))




def start_run(page: Page, per_label: int) -> None:
    """Fill the Evolve page's new-run form (opening it when earlier runs folded it) and start."""
    target = page.get_by_label("Target per label")
    if not target.is_visible():
        page.get_by_text("New run", exact=True).click()
    target.fill(str(per_label))
    page.get_by_label("Requests in flight").fill("2")
    page.get_by_role("button", name="Start run").click()


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Studio]:
    require_chromium()
    root = tmp_path_factory.mktemp("studio")
    home = root / "projects"
    shots = Path(os.environ.get("STUDIO_SCREENSHOTS") or root / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    with LoopbackServer(latency_s=0.4, max_requests=5_000) as llm:
        env = {"DATAGEN_BASE_URL": "", "DATAGEN_MODEL": ""} if EMBEDDED else \
            {"DATAGEN_BASE_URL": llm.base_url, "DATAGEN_MODEL": "loopback"}
        with studio_server(home, env, root / "studio.log") as url, playwright_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
            try:
                yield Studio(url, home, shots, browser)
            finally:
                browser.close()


def test_generate_watch_map_review_export(studio: Studio) -> None:
    page = studio.new_page()
    studio.shot(page, "project")
    go(page, "Genes & constraints")
    studio.shot(page, "genes")

    go(page, "Evolve")
    start_run(page, PER_LABEL)
    # offspring appear while the run goes on: the live feed redraws on its own
    expect(page.get_by_role("heading", name="Newest offspring")).to_be_visible()
    expect(page.get_by_text(re.compile(r"^Parent 1 · #\d+")).first).to_be_visible()
    first_cards = page.get_by_text(re.compile(r"^Parent 1 · #\d+")).count()
    assert first_cards >= 1
    expect(page.get_by_text(f"{PER_LABEL}/{PER_LABEL} kept").first).to_be_visible()
    expect(page.get_by_text(f"{PER_LABEL}/{PER_LABEL} kept")).to_have_count(2)
    expect(page.get_by_text("completed").first).to_be_visible()
    idle(page)  # the page redraws once when the run ends (the form returns to the top): count what it settles on
    assert page.get_by_text(re.compile(r"^Parent 2 · #\d+")).count() >= first_cards
    expect(page.get_by_text("From parent 1:").first).to_be_visible()
    page.mouse.wheel(0, 500)
    studio.shot(page, "evolve")

    go(page, "Map")
    chart = page.get_by_test_id("stPlotlyChart")
    expect(chart).to_be_visible()
    expect(chart.locator(".scatterlayer .point").first).to_be_attached()
    assert chart.locator(".scatterlayer .point").count() >= 60 + 2 * PER_LABEL
    # clicking an offspring (a synthetic trace's point) draws its lineage and shows both parents
    chart.locator(".scatterlayer .trace").nth(2).locator(".point").first.click(force=True)
    expect(page.get_by_text(re.compile(r"^Parent 2 · #\d+"))).to_be_visible()
    studio.shot(page, "map")

    go(page, "Review")
    page.get_by_label("Origin").click()
    page.get_by_role("option", name="synthetic", exact=True).click()
    idle(page)
    edited = "Edited in the browser: see you at the station at six."
    text_box = page.get_by_label("Text", exact=True)
    text_box.fill(edited)
    page.get_by_role("button", name="Save", exact=True).click()
    idle(page)
    studio.shot(page, "review")
    page.reload()  # a new browser session on the same page: what it shows comes from the store
    expect(page.get_by_role("heading", name="Review", exact=True)).to_be_visible()
    idle(page)
    page.get_by_label("Search text").fill("Edited in the browser")
    page.get_by_label("Search text").press("Enter")
    idle(page)
    expect(page.get_by_label("Text", exact=True)).to_have_value(edited)

    go(page, "Export")
    expect(page.get_by_text("Samples in this export")).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    exported = pd.read_csv(download.value.path())
    assert len(exported) == 2 * PER_LABEL and edited in set(exported["text"])
    assert {"parent_ids", "gene_split", "prompt", "model", "raw_response"} <= set(exported.columns)
    studio.shot(page, "export")
    page.context.close()


def test_two_sessions_edit_while_a_run_goes_on(studio: Studio) -> None:
    first, second = studio.new_page(), studio.new_page()
    go(first, "Evolve")
    start_run(first, PER_LABEL * 2)
    expect(first.get_by_role("heading", name="Newest offspring")).to_be_visible()

    edits = {}
    for page, word in ((second, "wonderful"), (first, "brainy")):
        go(page, "Review")
        page.get_by_label("Origin").click()
        page.get_by_role("option", name="real", exact=True).click()
        page.get_by_label("Search text").fill(word)
        page.get_by_label("Search text").press("Enter")
        idle(page)
        text = f"Session edit ({word}) while generating."
        # one editor once the search has drawn (the sidebar redraws while the run goes on: wait, do not race it)
        expect(page.get_by_label("Text", exact=True)).to_have_count(1)
        page.get_by_label("Text", exact=True).fill(text)
        page.get_by_role("button", name="Save", exact=True).click()
        idle(page)
        expect(page.get_by_text(re.compile("database is locked|Conflict", re.I))).to_have_count(0)
        edits[word] = text
    go(first, "Evolve")
    expect(first.get_by_text(f"{PER_LABEL * 2}/{PER_LABEL * 2} kept")).to_have_count(2)
    for page in (first, second):
        page.context.close()
    # the studio holds the file; a fresh session's Review page reads what both sessions wrote
    check = studio.new_page()
    go(check, "Review")
    for word, text in edits.items():
        check.get_by_label("Search text").fill(f"Session edit ({word})")
        check.get_by_label("Search text").press("Enter")
        idle(check)
        expect(check.get_by_label("Text", exact=True)).to_have_count(1)
        expect(check.get_by_label("Text", exact=True)).to_have_value(text)
    check.context.close()


def test_metrics_compare_two_runs(studio: Studio) -> None:
    """Two fresh runs on the Evolve page, then Metrics: Compute draws the comparison table and the charts."""
    page = studio.new_page()
    for per_label in (PER_LABEL // 2, PER_LABEL // 2 + 1):  # targets no other test uses: their "n/n kept" is ours
        go(page, "Evolve")  # a fresh draw, so the new-run form is either open or folded, not folding
        start_run(page, per_label)
        expect(page.get_by_text(f"{per_label}/{per_label} kept")).to_have_count(2)
    go(page, "Metrics")
    expect(page.get_by_text(re.compile(r"Downstream F1 is scored on 100 held-out"))).to_be_visible()
    page.locator('[data-testid="stExpander"] summary').filter(has_text="Settings").click()
    page.get_by_label("Scale curve: synthetic per label").fill("1, 2")
    page.get_by_label("Scale curve: synthetic per label").press("Enter")
    idle(page)
    page.get_by_role("button", name="Compute", exact=True).click()
    expect(page.get_by_text(re.compile(r"^Computed \d+ result\(s\)"))).to_be_visible()
    idle(page)  # every chart drawn
    expect(page.get_by_role("heading", name="Comparison")).to_be_visible()
    table = page.get_by_test_id("stDataFrame").first
    expect(table).to_be_visible()
    charts = page.get_by_test_id("stPlotlyChart")
    expect(charts.first.locator(".js-plotly-plot")).to_be_attached()
    assert charts.count() >= 5  # bars, labels, lengths, CMD per label, scale curve, confusion
    # the bars name both runs and the real seeds (plotly draws its axis labels as SVG text)
    ticks = " ".join(charts.first.locator(".xtick text").all_text_contents())
    assert "real seeds" in ticks and ticks.count("genetic") >= 2
    expect(page.get_by_role("heading", name="Scale curve")).to_be_visible()
    page.locator('[data-testid="stExpander"] summary').filter(has_text="Settings").click()  # fold it again
    page.mouse.move(700, 500)
    page.mouse.wheel(0, 450)  # the table and the bars
    page.mouse.move(10, 990)  # off the charts: no hover toolbar in the screenshot
    studio.shot(page, "metrics")
    page.reload()  # a new session reads the cached results: no Compute needed
    expect(page.get_by_role("heading", name="Metrics", exact=True)).to_be_visible()
    idle(page)
    expect(page.get_by_role("heading", name="Comparison")).to_be_visible()
    expect(page.get_by_role("button", name="Compute", exact=True)).to_be_disabled()
    page.context.close()


def test_bad_input_shows_a_message_and_the_studio_keeps_working(studio: Studio) -> None:
    page = studio.new_page()
    upload = page.locator('[data-testid="stFileUploaderDropzoneInput"]')
    upload.set_input_files(files=[{"name": "broken.csv", "mimeType": "text/csv",
                                   "buffer": b'text,label\n"never closed,ham\n'}])
    expect(page.get_by_text(re.compile("broken.csv: cannot parse|broken.csv: no rows"))).to_be_visible()
    upload.set_input_files(files=[{"name": "nolabel.csv", "mimeType": "text/csv",
                                   "buffer": b"text\nhello there\nhow are you\n"}])
    expect(page.get_by_text(re.compile("nolabel.csv: needs at least two columns"))).to_be_visible()

    page.get_by_text("OpenAI-compatible endpoint").click()
    idle(page)
    page.get_by_label("Base URL").fill("http://127.0.0.1:9/v1")
    page.get_by_role("textbox", name="Model", exact=True).fill("nobody")
    page.get_by_role("textbox", name="Model", exact=True).press("Tab")
    page.get_by_role("button", name="Test connection").click()
    expect(page.get_by_text(re.compile("cannot reach the LLM endpoint"))).to_be_visible()

    # a project without genes: its run is refused with a message, not a crash
    seeds = pd.read_csv(shared_csv("trec_coarse.csv")).groupby("label").head(3)
    upload.set_input_files(files=[{"name": "trec.csv", "mimeType": "text/csv",
                                   "buffer": seeds.to_csv(index=False).encode()}])
    form = page.get_by_test_id("stForm").filter(has=page.get_by_role("button", name="Create project"))
    form.get_by_role("textbox", name="Task").fill("question type classification")
    form.get_by_role("textbox", name="What one sample is").fill("question")
    form.get_by_role("button", name="Create project").click()
    expect(page.get_by_text("Created and opened")).to_be_visible()
    go(page, "Evolve")
    page.get_by_role("button", name="Start run").click()
    expect(page.get_by_text(re.compile("has no genes")).first).to_be_visible()
    go(page, "Review")  # the studio still works
    expect(page.get_by_role("heading", name="Review", exact=True)).to_be_visible()
    page.context.close()
