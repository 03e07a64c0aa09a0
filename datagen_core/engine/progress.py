"""What a run reports while it goes and when it ends: per-label progress, the summary, the observer hooks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from datagen_core.records import NewSample


def describe_faults(faults: dict[str, int]) -> str:
    """'timeout 3, server_error 2' (most frequent first)."""
    return ", ".join(f"{kind} {n}" for kind, n in sorted(faults.items(), key=lambda item: -item[1])) or "none"


@dataclass
class LabelProgress:
    label: str
    target: int
    kept: int = 0
    filtered: int = 0
    failed: int = 0
    in_flight: int = 0
    exhausted: bool = False

    @property
    def needed(self) -> int:
        return self.target - self.kept - self.in_flight

    @property
    def done(self) -> bool:
        return self.kept >= self.target or (self.exhausted and self.in_flight == 0)


@dataclass
class RunSummary:
    run_id: str
    status: str
    progress: dict[str, LabelProgress]
    seconds: float
    new_offspring: int
    usage: dict[str, float] = field(default_factory=dict)

    @property
    def offspring_per_second(self) -> float:
        return self.new_offspring / self.seconds if self.seconds > 0 else 0.0


class RunObserver:
    """Hooks for interfaces (progress bars, the studio's live feed); every hook is optional."""

    def on_start(self, run_id: str, progress: dict[str, LabelProgress]) -> None: ...

    def on_batch(self, samples: Sequence[NewSample], progress: dict[str, LabelProgress]) -> None: ...

    def on_message(self, level: str, message: str) -> None: ...

    def on_phase(self, phase: str) -> None:
        """What the run is doing before offspring land ("starting the model", "embedding the seeds", "waiting for
        the first answer"), so a user waiting on a cold start sees why."""
