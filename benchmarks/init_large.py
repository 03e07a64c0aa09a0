"""Wall time and peak memory of `datagen init` on a large CSV, run as a user would (a subprocess).

    python benchmarks/init_large.py [--mb 200] [--labels 4] [--holdout 0.2]

Generates a CSV of about `--mb` megabytes of distinct texts in a temporary folder, runs `datagen init` on it
and prints the rows, the wall time and the child's peak resident memory (the target: under 1 GB for 200 MB).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima",
         "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform", "victor", "whiskey",
         "xray", "yankee", "zulu", "offer", "free", "call", "now", "win", "prize", "meeting", "tomorrow", "lunch",
         "today", "tonight", "please", "reply", "stop", "text", "message")


def write_csv(path: Path, megabytes: float, labels: int, seed: int = 0) -> int:
    """A `text,label` CSV of about `megabytes` MB whose texts are all distinct; returns its row count."""
    rng = np.random.default_rng(seed)
    target = int(megabytes * 1024 * 1024)
    rows = 0
    with path.open("w", encoding="utf-8") as out:
        out.write("text,label\n")
        while out.tell() < target:
            words = rng.choice(WORDS, size=(10_000, 16))
            lines = [f"{' '.join(w)} {rows + i},label{(rows + i) % labels}\n" for i, w in enumerate(words)]
            out.write("".join(lines))
            rows += len(lines)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=200.0, help="size of the generated CSV")
    parser.add_argument("--labels", type=int, default=4)
    parser.add_argument("--holdout", type=float, default=0.0, help="fraction held out (copies the frame once)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="datagen-init-large-") as tmp:
        data = Path(tmp) / "large.csv"
        rows = write_csv(data, args.mb, args.labels)
        size = data.stat().st_size / 1024 / 1024
        command = [sys.executable, "-m", "datagen_core.cli.app", "init", "large", "--data", str(data),
                   "--task", "benchmark", "--holdout", str(args.holdout), "--home", str(Path(tmp) / "home")]
        started = time.perf_counter()
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # kilobytes on Linux
        if result.returncode != 0:
            sys.exit(f"datagen init failed ({result.returncode}):\n{result.stderr}")
        progress = result.stderr.strip().splitlines()
        project_mb = (Path(tmp) / "home" / "large.duckdb").stat().st_size / 1024 / 1024
        print(f"csv: {size:.0f} MB, {rows} rows, {args.labels} labels, holdout {args.holdout}")
        print(f"datagen init: {seconds:.1f} s wall, peak RSS {peak_mb:.0f} MB, project file {project_mb:.0f} MB")
        print(f"progress lines on stderr: {len(progress)} (last: {progress[-1] if progress else '-'})")
        print(result.stdout.strip())


if __name__ == "__main__":
    main()
