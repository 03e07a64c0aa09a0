"""Measure the studio and the store against the 100,000-sample project that scale_project.py builds.

    python benchmarks/scale_project.py --home /tmp/scale
    python benchmarks/scale_studio.py --home /tmp/scale [--repeat 3] [--skip-store] [--skip-studio]

Two phases, since DuckDB lets one process at a time hold a project file:

1. the store, with the studio stopped: a bulk status change of 10,000 samples through
   `Store.set_status_where` (what the Review page's Confirm calls; run B's NUM offspring, set to accepted,
   rejected, then pending again, so the project ends as it started), and the export of all 100,000 offspring
   (`--include-filtered`) to Parquet through `datagen_core.export` (open, `export_frame`, `write_export`) and
   through the CLI (`datagen export`, the whole process);
2. the studio from outside: a real `streamlit run app.py` on 127.0.0.1, driven by Playwright with Debian's
   Chromium. Each repetition is a fresh browser session that opens the scale project in the sidebar, then
   times, from the click to the page drawn and the script idle: the Review page's first render, a page turn
   (Page 2, Enter), the Map (projection already cached), the Export page (information); the last session also times
   the bulk action through the UI (filters run B + NUM, Apply, Confirm: click to the "10000 sample(s) set to"
   message). Resident memory of the studio process and its children is sampled every 0.2 s throughout.

Prints the table measure, target, figure (median and range over the repetitions), pass/miss, with the machine's
load; the studio's log is kept in the project folder (scale-studio.log).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._scale_common import (
    BULK_LABEL,
    BULK_RUN,
    BULK_SIZE,
    PROJECT,
    Timing,
    load,
    table,
    timed,
    tree_rss,
)
from datagen_core.export import export_frame, write_export
from datagen_core.store import SampleFilter, Store, project_path
from tests.browser import CHROMIUM, CHROMIUM_FLAGS, studio_process

#: An endpoint is configured, so the studio starts no embedded model.
STUDIO_ENV = {"DATAGEN_BASE_URL": "http://127.0.0.1:9/v1", "DATAGEN_MODEL": "scale-synthetic"}

IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
WAIT_MS = 120_000
BULK_STATUSES = ("accepted", "rejected", "pending")  # pending last: the project ends as it started
GIB = 2**30


# ------------------------------------------------------------------------------------------------ the store
def store_phase(home: Path, repeat: int, rows: dict[str, Timing]) -> None:
    path = project_path(home, PROJECT)
    chosen = SampleFilter(run_ids=(BULK_RUN,), labels=(BULK_LABEL,))
    bulk = rows["bulk_api"]
    with Store.open(path) as store:
        assert store.count_samples(chosen) == BULK_SIZE, "the bulk set is not the project's: rebuild it"
        for i in range(repeat):
            status = BULK_STATUSES[i % len(BULK_STATUSES)]
            started = time.perf_counter()
            changed = store.set_status_where(chosen, status, actor="benchmark")
            bulk.values.append(time.perf_counter() - started)
            assert changed == BULK_SIZE, (status, changed)
        if repeat % len(BULK_STATUSES):
            store.set_status_where(chosen, "pending", actor="benchmark")  # leave the set as scale_project made it
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "export.parquet"
        for _ in range(repeat):
            def export() -> None:
                with Store.open(path) as store:
                    frame = export_frame(store, statuses=(), include_filtered=True)
                write_export(frame, out, "parquet")
                rows["export_api"].note = f"{len(frame):,} rows, {out.stat().st_size / 2**20:.0f} MiB"
            rows["export_api"].values.append(timed(export))
        datagen = Path(sys.executable).with_name("datagen")
        command = [str(datagen), "export", PROJECT, "--format", "parquet", "--out", str(out), "--include-filtered",
                   "--home", str(home)]
        for _ in range(repeat):
            started = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            rows["export_cli"].values.append(time.perf_counter() - started)
            if done.returncode != 0:
                raise RuntimeError(f"datagen export failed:\n{done.stdout}\n{done.stderr}")
            rows["export_cli"].note = done.stdout.strip().splitlines()[-1][:60]


# ----------------------------------------------------------------------------------------------- the studio
class PeakMemory:
    """The largest resident memory of a process tree, sampled in a thread; `phase` names what was going on."""

    def __init__(self, pid: int, every_s: float = 0.2) -> None:
        self.pid, self.every_s = pid, every_s
        self.peak, self.peak_phase, self.phase = 0, "", "start"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = tree_rss(self.pid)
            if rss > self.peak:
                self.peak, self.peak_phase = rss, self.phase
            self._stop.wait(self.every_s)


def idle(page: object) -> None:
    page.locator(IDLE).wait_for()  # type: ignore[attr-defined]


def until(page: object, locator: object, started: float) -> float:
    """Seconds from `started` until `locator` is visible and the script has finished."""
    locator.wait_for(state="visible")  # type: ignore[attr-defined]
    idle(page)
    return time.perf_counter() - started


def open_session(browser: object, url: str) -> object:
    """A fresh browser session on the studio, with the scale project chosen in the sidebar."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)  # type: ignore
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(url)
    expect(page.get_by_role("heading", name="Project", exact=True)).to_be_visible()
    idle(page)
    page.get_by_test_id("stSidebar").get_by_label("Project").click()
    page.get_by_role("option", name=PROJECT, exact=True).click()
    expect(page.get_by_role("heading", name=f"Project {PROJECT}")).to_be_visible()
    page.wait_for_timeout(300)
    idle(page)
    return page


def nav(page: object, title: str) -> float:
    started = time.perf_counter()
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()  # type: ignore[attr-defined]
    return started


def studio_phase(home: Path, repeat: int, rows: dict[str, Timing], memory_row: Timing) -> None:
    from playwright.sync_api import sync_playwright

    log = home / "scale-studio.log"
    with (studio_process(home, STUDIO_ENV, log) as (url, proc), PeakMemory(proc.pid) as memory,
          sync_playwright() as p):
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            for _ in range(repeat):
                memory.phase = "open project"
                page = open_session(browser, url)

                memory.phase = "Review"
                started = nav(page, "Review")
                quality = page.get_by_text("Quality checks on the filtered samples")
                rows["review_first"].values.append(until(page, quality, started))
                count = page.get_by_text(re.compile(r"sample\(s\) match · showing"))
                rows["review_first"].note = count.inner_text().split(" · showing")[0].replace("**", "")

                page.get_by_label("Page", exact=True).fill("2")
                started = time.perf_counter()
                page.get_by_label("Page", exact=True).press("Enter")
                rows["page_turn"].values.append(until(page, page.get_by_text(re.compile(r"· page 2 of \d+")),
                                                      started))

                memory.phase = "Map"
                started = nav(page, "Map")
                legend = page.get_by_test_id("stPlotlyChart").locator(".legend .traces").first
                rows["map"].values.append(until(page, legend, started))
                shown = page.get_by_text(re.compile(r"point\(s\) shown")).inner_text()
                rows["map"].note = shown.split(" · ")[0]
                if page.get_by_text(re.compile("WebGL", re.I)).count():
                    rows["map"].note += "; the browser reports no WebGL"

                memory.phase = "Export page"
                started = nav(page, "Export")
                rows["export_page"].values.append(until(page, page.get_by_text("Samples in this export"), started))
                with page.expect_download(timeout=WAIT_MS) as download:
                    started = time.perf_counter()
                    page.get_by_role("button", name="Download Parquet").click()
                download.value.path()  # waits until the file is complete
                rows["export_download"].values.append(time.perf_counter() - started)
                page.context.close()

            memory.phase = "bulk (UI)"
            page = open_session(browser, url)
            nav(page, "Review")
            idle_after = page.get_by_text("Quality checks on the filtered samples")
            idle_after.wait_for()
            idle(page)
            for label, option in (("Run", BULK_RUN), ("Label", BULK_LABEL)):
                page.get_by_role("combobox", name=label, exact=True).first.click()
                page.get_by_role("option", name=option, exact=True).click()
                page.keyboard.press("Escape")
                page.wait_for_timeout(300)
                idle(page)
            page.get_by_text(re.compile(rf"\*?\*?{BULK_SIZE}\*?\*? sample\(s\) match")).wait_for()
            for status in BULK_STATUSES[:repeat] if repeat <= 3 else BULK_STATUSES * (repeat // 3):
                box = page.get_by_role("combobox", name="Set status")
                box.click()
                if not page.get_by_role("listbox").is_visible():  # the first click may only focus it
                    box.click()
                page.get_by_role("option", name=status, exact=True).click()
                page.wait_for_timeout(300)
                idle(page)
                page.get_by_role("button", name=f"Apply to all {BULK_SIZE} filtered…").click()
                confirm = page.get_by_role("button", name="Confirm")
                confirm.wait_for()
                idle(page)
                started = time.perf_counter()
                confirm.click()
                done = page.get_by_text(f"{BULK_SIZE} sample(s) set to {status}.")
                rows["bulk_ui"].values.append(until(page, done, started))
            if rows["bulk_ui"].values and BULK_STATUSES[(len(rows["bulk_ui"].values) - 1) % 3] != "pending":
                rows["bulk_ui"].note = "the bulk set was left changed: run with --repeat 3"
            page.context.close()
        finally:
            browser.close()
            memory_row.values.append(memory.peak / GIB)
            memory_row.note = f"peak during {memory.peak_phase}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True, help="the folder scale_project.py built the project in")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of each timing (default 3)")
    parser.add_argument("--skip-store", action="store_true", help="only the studio phase")
    parser.add_argument("--skip-studio", action="store_true", help="only the store phase")
    args = parser.parse_args()
    if not project_path(args.home, PROJECT).exists():
        sys.exit(f"no {PROJECT} project in {args.home}: run benchmarks/scale_project.py --home {args.home} first")
    rows = {
        "review_first": Timing("Review: first render (nav click → drawn, idle)", 2.0),
        "page_turn": Timing("Review: page turn (Page 2 + Enter → drawn, idle)", 0.5),
        "map": Timing("Map, projection cached (nav click → chart, idle)", 3.0),
        "bulk_api": Timing(f"bulk status of {BULK_SIZE:,}: Store.set_status_where", 2.0),
        "bulk_ui": Timing(f"bulk status of {BULK_SIZE:,}: Review Confirm → message", 2.0),
        "export_api": Timing("export 100k → Parquet: datagen_core.export", 5.0),
        "export_cli": Timing("export 100k → Parquet: `datagen export` process", 5.0),
        "export_page": Timing("Export page render (nav click → drawn, idle)", None),
        "export_download": Timing("Export page: Download Parquet → file", None),
    }
    memory = Timing("studio peak RSS incl. children", 2.5, unit="GiB")
    loads = [f"start: {load()}"]
    if not args.skip_store:
        store_phase(args.home, args.repeat, rows)
        loads.append(f"after the store phase: {load()}")
    if not args.skip_studio:
        studio_phase(args.home, args.repeat, rows, memory)
        loads.append(f"after the studio phase: {load()}")
    print(table([*rows.values(), memory]))
    print("\n".join(loads))


if __name__ == "__main__":
    main()
