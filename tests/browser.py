"""Real-browser harness: the studio as a subprocess on a free 127.0.0.1 port, driven by Debian's Chromium.

Playwright never downloads a browser here: it launches /usr/bin/chromium with flags that keep it off
the network. The server's output goes to a file (an unread pipe would stall it).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


#: Streamlit's app root while no script runs: the page has drawn.
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def idle(page: Any) -> None:
    """Wait until the page's script has run (a short pause first: a click's rerun may not have begun)."""
    page.wait_for_timeout(300)
    page.locator(IDLE).wait_for()


def go(page: Any, title: str) -> None:
    """Open a page from the sidebar navigation and wait until it has drawn."""
    from playwright.sync_api import expect

    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()
    expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible()
    idle(page)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def studio_server(home: Path, env: dict[str, str], log: Path, timeout_s: float = 120.0) -> Iterator[str]:
    """`streamlit run app.py` on 127.0.0.1; yields its URL once /_stcore/health answers."""
    with studio_process(home, env, log, timeout_s) as (url, _):
        yield url


@contextmanager
def studio_process(
    home: Path, env: dict[str, str], log: Path, timeout_s: float = 120.0
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The studio's URL and process (for tests that signal it); stopped with SIGTERM at the end."""
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.address", "127.0.0.1",
               "--server.port", str(port), "--server.headless", "true"]
    full_env = {**os.environ, "DATAGEN_HOME": str(home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **env}
    with log.open("w") as output:
        proc = subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=output, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"the studio exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the studio did not start in {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")
                time.sleep(0.3)
            yield url, proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def require_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium chromium-driver; .ci/run does)")
