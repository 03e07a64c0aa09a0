"""The studio under a signal: SIGTERM while a run goes on leaves the run interrupted, with every answer kept."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from datagen_core.demo import DEMO_PROJECT
from datagen_core.store import Store, project_path

from .browser import CHROMIUM, CHROMIUM_FLAGS, require_chromium, studio_process
from .loopback_server import LoopbackServer

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect


def test_sigterm_to_the_studio_leaves_its_run_interrupted_and_resumable(tmp_path: Path) -> None:
    require_chromium()
    home = tmp_path / "projects"
    with LoopbackServer(latency_s=0.5) as llm:
        env = {"DATAGEN_BASE_URL": llm.base_url, "DATAGEN_MODEL": "loopback"}
        with studio_process(home, env, tmp_path / "studio.log") as (url, proc), \
                playwright_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.goto(url)
            expect(page.get_by_role("heading", name="Project", exact=True)).to_be_visible()
            page.get_by_test_id("stSidebarNav").get_by_role("link", name="Evolve").click()
            page.get_by_label("Target per label").fill("50")
            page.get_by_label("Requests in flight").fill("2")
            page.get_by_role("button", name="Start run").click()
            expect(page.get_by_text("kept", exact=False).first).to_be_visible()
            deadline = 600
            while llm.stats.completions < 6 and deadline:
                page.wait_for_timeout(100)
                deadline -= 1
            browser.close()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0, (tmp_path / "studio.log").read_text()[-2000:]
    with Store.open(project_path(home, DEMO_PROJECT)) as store:
        (run,) = store.runs()
        assert run.status == "interrupted", run
        assert store.run_usage(run.id)["calls"] >= 5
        # what landed before the signal became samples; an answer that raced the cancel of its request (at most
        # one per request in flight) is stored with its call, and a resume makes it into its sample
        assert len(store.unused_answers(run.id)) <= 2
