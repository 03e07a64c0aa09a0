"""Runs in background threads of one process, for interfaces that stay responsive while a run goes on.

The studio starts a run, the user browses other pages, pauses, resumes or stops it; every session of
the studio sees the same jobs. A job's truth is the store (what landed is committed); the job adds what
only lives in memory: live progress, recent messages and the thread itself. DuckDB lets one process hold
a project file, so a run started from the studio must run inside the studio's process.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from datagen_core.config import LLMConfig
from datagen_core.embed import Embedder
from datagen_core.engine.background import BackgroundJob, JobManager
from datagen_core.engine.progress import LabelProgress, RunObserver
from datagen_core.engine.runner import run_generation
from datagen_core.engine.runs import top_up_run
from datagen_core.errors import DatagenError
from datagen_core.records import NewSample, utcnow
from datagen_core.store import Store

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
    #: What the run is doing before its first batch lands ("" afterwards, and when it is not running).
    phase: str = ""

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def kept(self) -> int:
        return sum(p.kept for p in self.progress.values())

    @property
    def target(self) -> int:
        return sum(p.target for p in self.progress.values())


def run_state(stored: str, snap: JobSnapshot | None) -> str:
    """A run's state as this process knows it: its job's own state (paused, running) over the store's record
    `stored`, which only knows that a paused run was interrupted."""
    return snap.state if snap is not None and snap.state not in ("completed", "failed") else stored


class RunJob(BackgroundJob[JobState, JobSnapshot], RunObserver):
    """One run executing (or paused) in a background thread; pause and resume keep the same run id."""

    def __init__(self, store: Store, run_id: str, llm_config: LLMConfig, embedder: Embedder) -> None:
        super().__init__("paused", thread_name=f"run-{run_id}")
        self.store = store
        self.run_id = run_id
        self.llm_config = llm_config
        self.embedder = embedder
        self._progress: dict[str, LabelProgress] = {}
        self._messages: deque[JobMessage] = deque(maxlen=200)
        self._landed = 0
        self._phase = ""

    # -------------------------------------------------------------- control
    def start(self) -> None:
        """Start, or resume a paused run where it stopped (the store says what is missing)."""
        with self._lock:
            if self._thread_alive():
                return
            if self._state in ("stopped", "completed"):
                raise DatagenError(f"run {self.run_id} is {self._state}; start a new run instead")
            self._phase = "starting"
            self._start_thread("starting")

    def reopen(self, llm_config: LLMConfig) -> None:
        """A completed run may go on once more (a top-up after review); `start()` then runs it."""
        with self._lock:
            if self._state in ACTIVE_STATES:
                raise DatagenError(f"run {self.run_id} is still going; top it up when it has finished")
            if self._state == "completed":
                self._state = "paused"
            self.llm_config = llm_config

    def pause(self) -> None:
        """Cancel what is in flight (what landed is kept), ask nothing new; `start()` resumes."""
        with self._lock:
            if self._state in ("starting", "running"):
                self._state = "pausing"
                self._stop.set()

    def halt(self) -> None:
        """A shutdown pauses: what landed is kept, and the run can be resumed later."""
        self.pause()

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

    # --------------------------------------------------------------- thread
    def _work(self) -> JobState:
        summary = run_generation(self.store, self.llm_config, self.run_id, embedder=self.embedder,
                                 observer=self, stop=self._stop)
        return "completed" if summary.status == "completed" else "paused"

    def _settle(self, ended: JobState | None) -> JobState:
        if ended is None:
            self._messages.append(JobMessage(utcnow(), "error", self._error or ""))
            return "failed"
        return "stopped" if ended == "paused" and self._state == "stopping" else ended

    def _settled(self, final: JobState) -> None:
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
            self._phase = ""

    def on_phase(self, phase: str) -> None:
        with self._lock:
            self._phase = phase

    def on_message(self, level: str, message: str) -> None:
        with self._lock:
            self._messages.append(JobMessage(utcnow(), level, message))

    # ----------------------------------------------------------------- view
    def snapshot(self) -> JobSnapshot:
        with self._lock:
            return JobSnapshot(
                run_id=self.run_id, state=self._state, progress={k: replace(v) for k, v in self._progress.items()},
                messages=tuple(self._messages), error=self._error, seconds=self._elapsed(), landed=self._landed,
                phase=self._phase if self._state in ACTIVE_STATES else "",
            )


class RunManager(JobManager[tuple[str, str], RunJob]):
    """Every run job of this process, by project file and run id; safe to call from any thread."""

    def __init__(self, embedder: Embedder) -> None:
        super().__init__()
        self.embedder = embedder

    def launch(self, store: Store, run_id: str, llm_config: LLMConfig) -> RunJob:
        """Start (or resume) a recorded run in the background; one job per run."""

        def choose(job: RunJob | None) -> RunJob:
            if job is None:
                # No job in this process (studio restarted, CLI run): the store says whether it may go on.
                status = store.run(run_id).status
                if status in ("stopped", "completed"):
                    raise DatagenError(f"run {run_id} is {status}; start a new run instead")
                return RunJob(store, run_id, llm_config, self.embedder)
            if not job.snapshot().active:
                job.llm_config = llm_config  # a resume may use this session's model settings
            return job

        job = self._claim((str(store.path), run_id), choose)
        job.start()
        return job

    def top_up(self, store: Store, run_id: str, llm_config: LLMConfig) -> dict[str, int]:
        """Ask again, in the background, for the offspring of a run rejected in review; returns how many per
        label."""
        asked = top_up_run(store, run_id)

        def choose(job: RunJob | None) -> RunJob:
            job = job or RunJob(store, run_id, llm_config, self.embedder)
            job.reopen(llm_config)
            return job

        self._claim((str(store.path), run_id), choose).start()
        return asked

    def job(self, store: Store, run_id: str) -> RunJob | None:
        return self._get((str(store.path), run_id))

    def jobs(self, store: Store) -> list[RunJob]:
        path = str(store.path)
        return self._select(lambda key: key[0] == path)

    def active(self, store: Store) -> list[RunJob]:
        return [job for job in self.jobs(store) if job.snapshot().active]
