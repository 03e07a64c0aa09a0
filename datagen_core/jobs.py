"""Runs in background threads of one process, for interfaces that stay responsive while a run goes on.

The studio starts a run, the user browses other pages, pauses, resumes or stops it; every session of
the studio sees the same jobs. A job's truth is the store (what landed is committed); the job adds what
only lives in memory: live progress, recent messages and the thread itself. DuckDB lets one process hold
a project file, so a run started from the studio must run inside the studio's process.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from .config import LLMConfig
from .embed import Embedder
from .errors import DatagenError
from .records import NewSample, utcnow
from .runner import LabelProgress, RunObserver, run_generation
from .store import Store

JobState = Literal["starting", "running", "pausing", "paused", "stopping", "stopped", "completed", "failed"]
ACTIVE_STATES: tuple[JobState, ...] = ("starting", "running", "pausing", "stopping")


@dataclass(frozen=True)
class JobMessage:
    at: datetime
    level: str
    text: str


@dataclass(frozen=True)
class JobSnapshot:
    """A consistent copy of a job's state for drawing; never shares mutable objects with the thread."""

    run_id: str
    state: JobState
    progress: dict[str, LabelProgress]
    messages: tuple[JobMessage, ...]
    error: str | None
    seconds: float
    landed: int

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def kept(self) -> int:
        return sum(p.kept for p in self.progress.values())

    @property
    def target(self) -> int:
        return sum(p.target for p in self.progress.values())


class RunJob(RunObserver):
    """One run executing (or paused) in a background thread; pause and resume keep the same run id."""

    def __init__(self, store: Store, run_id: str, llm_config: LLMConfig, embedder: Embedder) -> None:
        self.store = store
        self.run_id = run_id
        self.llm_config = llm_config
        self.embedder = embedder
        self._lock = threading.Lock()
        self._state: JobState = "paused"
        self._progress: dict[str, LabelProgress] = {}
        self._messages: deque[JobMessage] = deque(maxlen=200)
        self._error: str | None = None
        self._landed = 0
        self._seconds = 0.0
        self._started = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -------------------------------------------------------------- control
    def start(self) -> None:
        """Start, or resume a paused run where it stopped (the store says what is missing)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            if self._state in ("stopped", "completed"):
                raise DatagenError(f"run {self.run_id} is {self._state}; start a new run instead")
            self._stop = threading.Event()
            self._state, self._error, self._started = "starting", None, time.monotonic()
            self._thread = threading.Thread(target=self._work, name=f"run-{self.run_id}", daemon=True)
            self._thread.start()

    def pause(self) -> None:
        """Let requests in flight land, ask nothing new; `start()` resumes."""
        with self._lock:
            if self._state in ("starting", "running"):
                self._state = "pausing"
                self._stop.set()

    def stop(self) -> None:
        """End the run for good: what landed stays, the run is marked stopped and is not resumed."""
        with self._lock:
            if self._state in ("starting", "running", "pausing"):
                self._state = "stopping"
                self._stop.set()
                return
            if self._state not in ("paused", "failed"):  # a failed run may be given up too
                return
            self._state = "stopped"
        self.store.set_run_status(self.run_id, "stopped")

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the thread ends; True when it has."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    # --------------------------------------------------------------- thread
    def _work(self) -> None:
        final: JobState = "failed"
        try:
            summary = run_generation(self.store, self.llm_config, self.run_id, embedder=self.embedder,
                                     observer=self, stop=self._stop)
            final = "completed" if summary.status == "completed" else "paused"
        except DatagenError as exc:
            self._error = str(exc)
            self.on_message("error", str(exc))
        except Exception as exc:  # a bug must not kill the studio silently: show it on the page
            self._error = f"{type(exc).__name__}: {exc}"
            self.on_message("error", self._error)
        with self._lock:
            self._seconds += time.monotonic() - self._started
            if final == "paused" and self._state == "stopping":
                final = "stopped"
            self._state = final
        if final == "stopped":
            self.store.set_run_status(self.run_id, "stopped")

    # ------------------------------------------------------------- observer
    def on_start(self, run_id: str, progress: dict[str, LabelProgress]) -> None:
        with self._lock:
            self._progress = {k: replace(v) for k, v in progress.items()}
            if self._state == "starting":
                self._state = "running"

    def on_batch(self, samples: Sequence[NewSample], progress: dict[str, LabelProgress]) -> None:
        with self._lock:
            self._progress = {k: replace(v) for k, v in progress.items()}
            self._landed += len(samples)

    def on_message(self, level: str, message: str) -> None:
        with self._lock:
            self._messages.append(JobMessage(utcnow(), level, message))

    # ----------------------------------------------------------------- view
    def snapshot(self) -> JobSnapshot:
        with self._lock:
            running = time.monotonic() - self._started if self._state in ACTIVE_STATES else 0.0
            return JobSnapshot(
                run_id=self.run_id, state=self._state, progress={k: replace(v) for k, v in self._progress.items()},
                messages=tuple(self._messages), error=self._error, seconds=self._seconds + running,
                landed=self._landed,
            )


class RunManager:
    """Every job of this process, per project file; safe to call from any thread."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self._jobs: dict[tuple[str, str], RunJob] = {}
        self._lock = threading.Lock()

    def launch(self, store: Store, run_id: str, llm_config: LLMConfig) -> RunJob:
        """Start (or resume) a recorded run in the background; one job per run."""
        key = (str(store.path), run_id)
        with self._lock:
            job = self._jobs.get(key)
            if job is None:
                # No job in this process (studio restarted, CLI run): the store says whether it may go on.
                status = store.run(run_id).status
                if status in ("stopped", "completed"):
                    raise DatagenError(f"run {run_id} is {status}; start a new run instead")
                job = RunJob(store, run_id, llm_config, self.embedder)
                self._jobs[key] = job
            elif not job.snapshot().active:
                job.llm_config = llm_config  # a resume may use this session's model settings
        job.start()
        return job

    def job(self, store: Store, run_id: str) -> RunJob | None:
        with self._lock:
            return self._jobs.get((str(store.path), run_id))

    def jobs(self, store: Store) -> list[RunJob]:
        with self._lock:
            return [job for (path, _), job in self._jobs.items() if path == str(store.path)]

    def active(self, store: Store) -> list[RunJob]:
        return [job for job in self.jobs(store) if job.snapshot().active]

    def shutdown(self, timeout: float = 30.0) -> None:
        """Pause every job and wait for in-flight requests to land (process exit, tests)."""
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.pause()
        for job in jobs:
            job.wait(timeout)
