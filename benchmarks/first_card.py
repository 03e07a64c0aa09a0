"""Seconds from *Start run* on the Evolve page to the first offspring card, in Chromium, on a freshly started studio.

    python benchmarks/first_card.py [--latency 0.3] [--per-label 4] [--repeat 3]

The demo project in a temporary folder; the model is the loopback OpenAI-compatible server of the tests (each
answer after `--latency` seconds), so the figure is the studio's own cost: its first embedder load (the studio
now loads it in the background when it starts), embedding the population, the first answers and the redraw.
Each repetition starts a new studio; the last one also reports the run's state line once it has completed.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from datagen_core.demo import ensure_demo_project  # noqa: E402
from tests.browser import CHROMIUM, CHROMIUM_FLAGS, IDLE, studio_server  # noqa: E402
from tests.loopback_server import LoopbackServer  # noqa: E402


def one(latency: float, per_label: int) -> tuple[float, str]:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "projects"
        ensure_demo_project(home)
        with LoopbackServer(latency_s=latency) as server, \
                studio_server(home, {"DATAGEN_BASE_URL": server.base_url, "DATAGEN_MODEL": "loopback"},
                              Path(tmp) / "studio.log") as url, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(180_000)
            page.goto(f"{url}/evolve")
            page.locator(IDLE).wait_for()
            page.get_by_label("Target per label").fill(str(per_label))
            started = time.perf_counter()
            page.get_by_role("button", name="Start run").click()
            page.get_by_text(re.compile(r"#\d+ · (ham|spam)")).first.wait_for()
            seconds = time.perf_counter() - started
            page.get_by_text(re.compile(r"^Run [0-9a-f]{12}: completed$")).wait_for()
            state = page.get_by_text(re.compile(r"^Run [0-9a-f]{12}: ")).inner_text()
            browser.close()
    return seconds, state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--per-label", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    figures, state = [], ""
    for _ in range(args.repeat):
        seconds, state = one(args.latency, args.per_label)
        figures.append(seconds)
    print(f"Start run -> first card: median {statistics.median(figures):.1f} s "
          f"(range {min(figures):.1f}-{max(figures):.1f}, n={len(figures)}), answers after {args.latency} s; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"state line after the run: {state!r}")


if __name__ == "__main__":
    main()
