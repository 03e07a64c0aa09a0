"""Evaluations in a background thread, so a fine-tune (about a minute each) does not block the studio.

Like generation runs, an evaluation job lives in the process, not in a browser session: the user may leave
the Metrics page and come back, and every session sees the same job. Every finished step is cached in the
store by the `Evaluator`, so a cancelled or failed job keeps what it finished. One job per project at a time:
two jobs would train the same models twice and race on the same cache keys.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from datagen_core.embed import Embedder
from datagen_core.engine.background import BackgroundJob, JobManager, error_line
from datagen_core.errors import DatagenError
from datagen_core.evaluation.evaluator import Evaluation, Evaluator
from datagen_core.evaluation.trainers import ProgressFn
from datagen_core.store import Store

EvaluationState = Literal["running", "completed", "failed", "cancelled"]


@dataclass(frozen=True)
class JobStep:
    """One result to compute: a title for the progress line and the call that computes (and caches) it."""

    title: str
    run: Callable[[Evaluator, ProgressFn], Evaluation]


@dataclass(frozen=True)
class EvaluationSnapshot:
    """A consistent copy of a job's progress for drawing; never shares mutable objects with the thread."""

    state: EvaluationState
    done: int
    total: int
    step: str | None
    fraction: float
    message: str
    error: str | None
    results: tuple[Evaluation, ...]
    seconds: float
    cancelling: bool

    @property
    def active(self) -> bool:
        return self.state == "running"

    @property
    def overall(self) -> float:
        """Progress over all steps, the running step counted by its trainer's fraction."""
        return min((self.done + self.fraction) / self.total, 1.0) if self.total else 1.0


class EvaluationJob(BackgroundJob[EvaluationState, EvaluationSnapshot]):
    """Runs `steps` in order in a daemon thread with one `Evaluator`; `cancel()` stops between steps."""

    def __init__(self, store: Store, embedder: Embedder, steps: Sequence[JobStep], job_id: int = 0) -> None:
        super().__init__("running", thread_name=f"evaluation-{store.path.stem}")
        self.id = job_id
        self.store = store
        self.embedder = embedder
        self.steps = tuple(steps)
        self._done = 0
        self._step: str | None = None
        self._fraction = 0.0
        self._message = ""
        self._results: list[Evaluation] = []

    def start(self) -> None:
        """Start the steps; a job runs once (a new computation is a new job)."""
        with self._lock:
            if self._thread is None:
                self._start_thread("running")

    def cancel(self) -> None:
        """Stop after the step in progress (a training cannot be interrupted; its result is still cached)."""
        self._stop.set()

    def _work(self) -> EvaluationState:
        evaluator = Evaluator(self.store, self.embedder)
        for step in self.steps:
            if self._stop.is_set():
                return "cancelled"
            with self._lock:
                self._step, self._fraction, self._message = step.title, 0.0, "starting"
            result = step.run(evaluator, self._progress)
            with self._lock:
                self._results.append(result)
                self._done += 1
        return "completed"

    def _describe(self, exc: Exception) -> str:
        """The failed step's title, then what went wrong."""
        line = error_line(exc)
        return f"{self._step}: {line}" if self._step is not None else line

    def _settle(self, ended: EvaluationState | None) -> EvaluationState:
        self._step = None
        return ended or "failed"

    def _progress(self, fraction: float, message: str) -> None:
        with self._lock:
            self._fraction, self._message = min(max(fraction, 0.0), 1.0), message

    def snapshot(self) -> EvaluationSnapshot:
        with self._lock:
            return EvaluationSnapshot(
                state=self._state, done=self._done, total=len(self.steps), step=self._step, fraction=self._fraction,
                message=self._message, error=self._error, results=tuple(self._results), seconds=self._elapsed(),
                cancelling=self._state == "running" and self._stop.is_set(),
            )


class EvaluationJobs(JobManager[str, EvaluationJob]):
    """The latest evaluation job of each project file in this process; safe to call from any thread."""

    SHUTDOWN_TIMEOUT = 120.0  # a shutdown waits for the step in progress: a fine-tune takes about a minute

    def __init__(self, embedder: Embedder) -> None:
        super().__init__()
        self.embedder = embedder
        self._count = 0

    def start(self, store: Store, steps: Sequence[JobStep]) -> EvaluationJob:
        """Start computing `steps` in the background; refused while this project's last job still runs."""
        if not steps:
            raise DatagenError("nothing to compute: every result for these settings is cached")

        def choose(current: EvaluationJob | None) -> EvaluationJob:
            if current is not None and (snap := current.snapshot()).active:
                raise DatagenError(f"an evaluation of this project is already running (step {snap.done + 1} of "
                                   f"{snap.total}); wait for it or cancel it first")
            self._count += 1
            return EvaluationJob(store, self.embedder, steps, job_id=self._count)

        job = self._claim(str(store.path), choose)
        job.start()
        return job

    def job(self, store: Store) -> EvaluationJob | None:
        """This project's latest job, running or finished; None if none started in this process."""
        return self._get(str(store.path))
