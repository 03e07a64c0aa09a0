"""Evaluations in a background thread, so a fine-tune (about a minute each) does not block the studio.

Like generation runs, an evaluation job lives in the process, not in a browser session: the user may leave
the Metrics page and come back, and every session sees the same job. Every finished step is cached in the
store by the `Evaluator`, so a cancelled or failed job keeps what it finished. One job per project at a time:
two jobs would train the same models twice and race on the same cache keys.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from .downstream import ProgressFn
from .embed import Embedder
from .errors import DatagenError
from .evaluation import Evaluation, Evaluator
from .store import Store

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


class EvaluationJob:
    """Runs `steps` in order in a daemon thread with one `Evaluator`; `cancel()` stops between steps."""

    def __init__(self, store: Store, embedder: Embedder, steps: Sequence[JobStep], job_id: int = 0) -> None:
        self.id = job_id
        self.store = store
        self.embedder = embedder
        self.steps = tuple(steps)
        self._lock = threading.Lock()
        self._state: EvaluationState = "running"
        self._done = 0
        self._step: str | None = None
        self._fraction = 0.0
        self._message = ""
        self._error: str | None = None
        self._results: list[Evaluation] = []
        self._started = time.monotonic()
        self._ended: float | None = None
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._work, name=f"evaluation-{store.path.stem}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def cancel(self) -> None:
        """Stop after the step in progress (a training cannot be interrupted; its result is still cached)."""
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the thread ends; True when it has."""
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _work(self) -> None:
        evaluator = Evaluator(self.store, self.embedder)
        final: EvaluationState = "completed"
        for step in self.steps:
            if self._cancel.is_set():
                final = "cancelled"
                break
            with self._lock:
                self._step, self._fraction, self._message = step.title, 0.0, "starting"
            try:
                result = step.run(evaluator, self._progress)
            except DatagenError as exc:
                final, error = "failed", f"{step.title}: {exc}"
            except Exception as exc:  # a bug must not vanish with the thread: show it on the page
                final, error = "failed", f"{step.title}: {type(exc).__name__}: {exc}"
            else:
                with self._lock:
                    self._results.append(result)
                    self._done += 1
                continue
            with self._lock:
                self._error = error
            break
        with self._lock:
            self._state, self._step, self._ended = final, None, time.monotonic()

    def _progress(self, fraction: float, message: str) -> None:
        with self._lock:
            self._fraction, self._message = min(max(fraction, 0.0), 1.0), message

    def snapshot(self) -> EvaluationSnapshot:
        with self._lock:
            end = self._ended if self._ended is not None else time.monotonic()
            return EvaluationSnapshot(
                state=self._state, done=self._done, total=len(self.steps), step=self._step, fraction=self._fraction,
                message=self._message, error=self._error, results=tuple(self._results),
                seconds=end - self._started, cancelling=self._state == "running" and self._cancel.is_set(),
            )


class EvaluationJobs:
    """The latest evaluation job of each project file in this process; safe to call from any thread."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self._jobs: dict[str, EvaluationJob] = {}
        self._count = 0
        self._lock = threading.Lock()

    def start(self, store: Store, steps: Sequence[JobStep]) -> EvaluationJob:
        """Start computing `steps` in the background; refused while this project's last job still runs."""
        if not steps:
            raise DatagenError("nothing to compute: every result for these settings is cached")
        with self._lock:
            current = self._jobs.get(str(store.path))
            if current is not None and current.snapshot().active:
                snap = current.snapshot()
                raise DatagenError(f"an evaluation of this project is already running (step {snap.done + 1} of "
                                   f"{snap.total}); wait for it or cancel it first")
            self._count += 1
            job = EvaluationJob(store, self.embedder, steps, job_id=self._count)
            self._jobs[str(store.path)] = job
        job.start()
        return job

    def job(self, store: Store) -> EvaluationJob | None:
        """This project's latest job, running or finished; None if none started in this process."""
        with self._lock:
            return self._jobs.get(str(store.path))

    def shutdown(self, timeout: float = 120.0) -> None:
        """Cancel every job and wait for the step in progress (process exit, tests)."""
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.cancel()
        for job in jobs:
            job.wait(timeout)
