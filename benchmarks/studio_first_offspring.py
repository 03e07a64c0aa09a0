"""Seconds from a cold `streamlit run app.py` to the first offspring on screen, on the embedded model.

    python benchmarks/studio_first_offspring.py [--per-label 3]

Starts the studio on a fresh project folder (the demo project is created on first visit), opens it in
Debian's Chromium, starts a run on the Evolve page and times each step a first-time user waits for.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import expect, sync_playwright  # noqa: E402

from tests.browser import CHROMIUM, CHROMIUM_FLAGS, studio_server  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-label", type=int, default=3)
    args = parser.parse_args()
    expect.set_options(timeout=300_000)
    marks: list[tuple[str, float]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "projects"
        env = {"DATAGEN_BASE_URL": "", "DATAGEN_MODEL": ""}
        with studio_server(home, env, Path(tmp) / "studio.log") as url, sync_playwright() as p:
            marks.append(("server healthy", time.perf_counter() - started))
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
            page = browser.new_page()
            page.goto(url)
            expect(page.get_by_role("heading", name="Project", exact=True)).to_be_visible()
            marks.append(("demo project open", time.perf_counter() - started))
            page.get_by_test_id("stSidebarNav").get_by_role("link", name="Evolve").click()
            page.get_by_label("Target per label").fill(str(args.per_label))
            clicked = time.perf_counter()
            page.get_by_role("button", name="Start run").click()
            expect(page.get_by_text(re.compile(r"^Parent 1 · #\d+")).first).to_be_visible()
            marks.append(("first offspring card", time.perf_counter() - started))
            first_card = time.perf_counter() - clicked
            done = f"{args.per_label}/{args.per_label} kept"
            expect(page.get_by_text(done)).to_have_count(2)
            marks.append((f"run complete ({2 * args.per_label} offspring)", time.perf_counter() - started))
            browser.close()
    print("cold start of the studio on the embedded SmolLM2-135M, demo project (ham/spam)")
    for name, seconds in marks:
        print(f"{name:<32} {seconds:7.1f} s after launch")
    print(f"{'Start run -> first card':<32} {first_card:7.1f} s")


if __name__ == "__main__":
    main()
