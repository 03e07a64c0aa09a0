"""What a run keeps and how fast it gives up when things go wrong, measured through the real CLI.

    python benchmarks/faults.py [--per-label 40] [--in-flight 16]

Three scenarios against the loopback server, each in a fresh project of 3 TREC labels:
1. `kill -9` while the first batch is being written (the writer is held before it embeds): answers the server
   sent, call records found in the file, and what `--resume` then asks again.
2. A server that accepts requests and never answers: seconds until the run stops by itself, with the message.
3. 30 % of calls failing once (500, 429, a garbled body): retries by kind and the time lost, as `datagen runs`
   reports them.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from datagen_core.store import SampleFilter, Store  # noqa: E402
from tests.conftest import make_project  # noqa: E402
from tests.loopback_server import LoopbackServer  # noqa: E402

ENV = {**os.environ, "DATAGEN_BASE_URL": "", "DATAGEN_MODEL": "", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
STUCK_WRITER = (
    "import sys, threading\n"
    "from datagen_core.engine.runner import Runner\n"
    "Runner._write = lambda self, candidates: threading.Event().wait()\n"
    "from datagen_core.cli.app import main\n"
    "main(sys.argv[1:])\n"
)


def cli(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "datagen_core.cli.app", *args, "--home", str(home)]


def is_check(body: dict[str, Any]) -> bool:
    return body["messages"][-1]["content"] == "Say OK."


def killed_before_the_first_batch(home: Path, per_label: int, in_flight: int) -> None:
    make_project(home)
    with LoopbackServer(latency_s=0.02) as server:
        url = ["--base-url", server.base_url, "--model", "loopback", "--in-flight", str(in_flight)]
        proc = subprocess.Popen([sys.executable, "-c", STUCK_WRITER, "run", "trec", "--per-label", str(per_label),
                                 *url, "--home", str(home)], env=ENV, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while server.stats.completions < 3 * per_label and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        served = server.stats.completions - 2  # the CLI's and the run's connection checks
        with Store.open(home / "trec.duckdb") as store:
            (run,) = store.runs()
            stored = int(store.run_usage(run.id)["calls"])
            samples = store.count_samples(SampleFilter(run_ids=(run.id,), include_filtered=True))
        before = server.stats.completions
        subprocess.run(cli(home, "run", "trec", "--resume", *url), env=ENV, check=True, capture_output=True)
        asked_again = server.stats.completions - before - 2
    with Store.open(home / "trec.duckdb") as store:
        kept = store.kept_counts(run.id)
    print(f"1. kill -9 before the first batch: the server answered {served} calls, the file holds {stored} "
          f"({served - stored} lost) and {samples} samples; --resume asked {asked_again} calls and ended at {kept}")


def hung_endpoint(home: Path) -> None:
    make_project(home)
    hang = LoopbackServer(faults=lambda number, body: None if is_check(body) else "timeout", timeout_sleep_s=3600)
    with hang:
        started = time.monotonic()
        done = subprocess.run(cli(home, "run", "trec", "--per-label", "5", "--base-url", hang.base_url, "--model",
                                  "loopback", "--first-byte-timeout", "5", "--give-up-after", "30"),
                              env=ENV, capture_output=True, text=True)
        seconds = time.monotonic() - started
    first = next((line for line in done.stdout.splitlines() if "endpoint fault" in line), "")
    print(f"2. a server that never answers (--first-byte-timeout 5 --give-up-after 30): exit {done.returncode} after "
          f"{seconds:.1f} s; {done.stderr.strip()!r}; first warning: {first.strip()[:90]!r}")


def flaky_endpoint(home: Path, per_label: int, in_flight: int) -> None:
    make_project(home)
    kinds = {0: "500", 1: "429", 2: "garbage"}
    plan = lambda number, body: None if is_check(body) or number % 10 >= 3 else kinds[number % 10]  # noqa: E731
    with LoopbackServer(latency_s=0.05, faults=plan) as server:
        url = ["--base-url", server.base_url, "--model", "loopback", "--in-flight", str(in_flight)]
        started = time.monotonic()
        done = subprocess.run(cli(home, "run", "trec", "--per-label", str(per_label), *url), env=ENV,
                              capture_output=True, text=True, check=True)
        seconds = time.monotonic() - started
    with Store.open(home / "trec.duckdb") as store:
        (run,) = store.runs()
        kept = store.kept_counts(run.id)
    print(f"3. 30 % of calls failing once: {kept} in {seconds:.1f} s; "
          f"{done.stdout.strip().splitlines()[-1].split('; ', 1)[1]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-label", type=int, default=40)
    parser.add_argument("--in-flight", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        killed_before_the_first_batch(Path(tmp) / "a", args.per_label, args.in_flight)
        hung_endpoint(Path(tmp) / "b")
        flaky_endpoint(Path(tmp) / "c", args.per_label, args.in_flight)


if __name__ == "__main__":
    main()
