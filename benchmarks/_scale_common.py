"""What the scale benchmarks share: the project they build and read, timing, memory and the figures table."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

PROJECT = "scale-100k"
RUN_A = "scale-a"
RUN_B = "scale-b"
LABELS = ("DESC", "ENTY", "HUM", "LOC", "NUM")
#: Run B's NUM offspring that passed the filters: exactly this many, all pending (nobody has reviewed them yet),
#: so a bulk action on the filter (run B, label NUM) changes exactly this many samples.
BULK_RUN, BULK_LABEL, BULK_SIZE = RUN_B, "NUM", 10_000


def load() -> str:
    """`uptime`'s load averages (1, 5, 15 min) and the core count, for the report."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} cores"


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])  # the name may hold spaces and parentheses
        tree.setdefault(parent, []).append(int(entry.name))
    return tree


def _rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_rss(pid: int) -> int:
    """Resident memory of a process and all its descendants, in bytes (Linux /proc; no psutil needed)."""
    tree, total, todo = _children(), 0, [pid]
    while todo:
        current = todo.pop()
        total += _rss_bytes(current)
        todo.extend(tree.get(current, []))
    return total


@dataclass
class Timing:
    """Seconds of each repetition of one measure."""

    name: str
    target: float | None
    unit: str = "s"
    values: list[float] = field(default_factory=list)
    note: str = ""

    def figure(self) -> str:
        if not self.values:
            return "not measured"
        if len(self.values) == 1:
            return f"{self.values[0]:.2f} {self.unit}"
        low, high = min(self.values), max(self.values)
        return f"{statistics.median(self.values):.2f} {self.unit} ({low:.2f}–{high:.2f}, n={len(self.values)})"

    def verdict(self) -> str:
        if self.target is None or not self.values:
            return "—"
        return "pass" if statistics.median(self.values) <= self.target else "MISS"


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def table(rows: list[Timing]) -> str:
    """measure | target | figure (median, range) | pass/miss, as aligned plain text."""
    lines = [("measure", "target", "figure: median (range)", "verdict")]
    for row in rows:
        target = f"≤ {row.target:g} {row.unit}" if row.target is not None else "(info)"
        lines.append((row.name + (f" [{row.note}]" if row.note else ""), target, row.figure(), row.verdict()))
    widths = [max(len(line[i]) for line in lines) for i in range(4)]
    rendered = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in lines]
    rendered.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(rendered)
