"""The studio on the embedded model in a real browser: the model's process crashes mid-run, the studio stays.

The model runs out of the studio's process (llama.cpp's server under a supervisor); killing that process with
SIGSEGV is how a native fault arrives. The page must say so in one line, keep serving, and the next run (or a
resume) must work on a fresh model process.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from datagen_core.llm.embedded import embedded_runtime

from .browser import CHROMIUM, CHROMIUM_FLAGS, IDLE, go, idle, require_chromium, studio_server
from .test_browser import start_run

pytestmark = [pytest.mark.browser, pytest.mark.slow]
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
WAIT_MS = 180_000


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[playwright_api.Page]:
    require_chromium()
    root = tmp_path_factory.mktemp("studio-embedded")
    shots = Path(os.environ.get("STUDIO_SCREENSHOTS") or root)
    with studio_server(root / "projects", {"DATAGEN_BASE_URL": "", "DATAGEN_MODEL": ""}, root / "studio.log") as url, \
            playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            opened = context.new_page()
            opened.set_default_timeout(WAIT_MS)
            opened.goto(url)
            expect(opened.get_by_role("heading", name="Project", exact=True)).to_be_visible(timeout=WAIT_MS)
            idle(opened)
            opened.shots = shots  # type: ignore[attr-defined]
            yield opened
        finally:
            browser.close()


def kept(page: playwright_api.Page) -> int:
    """Offspring kept so far, summed over the per-label progress lines ("**ham**: 1/3 kept · ...")."""
    return sum(int(n) for n in re.findall(r"(\d+)/\d+ kept", page.locator('[data-testid="stMain"]').inner_text()))


def test_a_crashed_model_shows_its_signal_and_the_next_run_works(page: playwright_api.Page) -> None:
    go(page, "Evolve")
    start_run(page, per_label=3)
    deadline = time.monotonic() + WAIT_MS / 1000
    while kept(page) < 1:  # the first offspring landed: the model is decoding the next ones
        assert time.monotonic() < deadline, "no offspring within the deadline"
        page.wait_for_timeout(500)
    pid = embedded_runtime().server_pid()  # the same machine-wide server the studio uses
    assert pid is not None
    os.kill(pid, signal.SIGSEGV)

    alert = page.get_by_test_id("stAlert").filter(has_text=re.compile("killed by SIGSEGV"))
    expect(alert.first).to_be_visible(timeout=WAIT_MS)
    assert "Traceback" not in page.locator('[data-testid="stMain"]').inner_text()
    page.screenshot(path=str(page.shots / "evolve-model-crashed.png"))  # type: ignore[attr-defined]

    page.get_by_role("button", name="Resume").click()  # a fresh model process finishes the same run
    expect(page.get_by_text(re.compile(r"completed")).first).to_be_visible(timeout=WAIT_MS)
    page.locator(IDLE).wait_for()
    assert kept(page) == 6
    assert embedded_runtime().server_pid() not in (None, pid)
    go(page, "Review")  # and the rest of the studio still serves
    expect(page.get_by_role("heading", name="Review", exact=True)).to_be_visible()
