"""Work in a background thread of this process, for interfaces that stay responsive meanwhile (the studio).

Generation runs (`engine/jobs.py`) and evaluations (`evaluation/jobs.py`) share one shape: a daemon thread, one
lock that every read and write of the job's state takes, a stop event the work polls, the error that ended it
as one line, the seconds spent working, and a consistent snapshot for drawing. A job lives in the process,
not in a browser session, so `JobManager` keeps the jobs by key and every session sees the same ones.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

from datagen_core.errors import DatagenError

StateT = TypeVar("StateT", bound=str)
SnapshotT = TypeVar("SnapshotT")
KeyT = TypeVar("KeyT")
JobT = TypeVar("JobT", bound="BackgroundJob[Any, Any]")


def error_line(exc: Exception) -> str:
    """A `DatagenError` already says what went wrong; anything else is a bug, shown with its type."""
    return str(exc) if isinstance(exc, DatagenError) else f"{type(exc).__name__}: {exc}"


class BackgroundJob(ABC, Generic[StateT, SnapshotT]):
    """`_work` in a daemon thread; once that thread has ended the job may be started again in a new one."""

    def __init__(self, state: StateT, thread_name: str) -> None:
        self._lock = threading.Lock()
        self._state: StateT = state
        self._error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_name = thread_name
        self._seconds = 0.0
        self._since: float | None = None

    # ------------------------------------------------------------- for the job
    @abstractmethod
    def _work(self) -> StateT:
        """The work itself, polling `self._stop`; returns the state it ended in, or raises to fail the job."""

    @abstractmethod
    def _settle(self, ended: StateT | None) -> StateT:
        """The final state, from what `_work` returned (None: it raised, `_error` says why); lock held."""

    def _settled(self, final: StateT) -> None:
        """What follows the final state outside the lock (a store write, say); nothing by default."""

    def _describe(self, exc: Exception) -> str:
        """The one line `_error` shows for an exception `_work` raised."""
        return error_line(exc)

    @abstractmethod
    def snapshot(self) -> SnapshotT:
        """A consistent copy of the job's state for drawing; never shares mutable objects with the thread."""

    # ------------------------------------------------------------ the thread
    def _start_thread(self, state: StateT) -> None:
        """Enter `state` and start `_work` in a new thread; call with the lock held, after checking none runs.

        A stop asked before the first start still applies to it; a restart gets a fresh stop event.
        """
        if self._thread is not None:
            self._stop = threading.Event()
        self._state, self._error, self._since = state, None, time.monotonic()
        self._thread = threading.Thread(target=self._main, name=self._thread_name, daemon=True)
        self._thread.start()

    def _thread_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _elapsed(self) -> float:
        """Seconds spent working over every start, the one in progress included; call with the lock held."""
        return self._seconds + (time.monotonic() - self._since if self._since is not None else 0.0)

    def _main(self) -> None:
        ended: StateT | None = None
        error: str | None = None
        try:
            ended = self._work()
        except Exception as exc:  # a bug must not vanish with the thread: show it on the page
            error = self._describe(exc)
        with self._lock:
            self._seconds, self._since = self._elapsed(), None
            if error is not None:
                self._error = error
            final = self._state = self._settle(ended)
        self._settled(final)

    # ------------------------------------------------------------ the caller
    def halt(self) -> None:
        """Ask the work to end at its next check, keeping what it finished (process exit, tests)."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the thread ends; True when it has (or never started)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True


class JobManager(Generic[KeyT, JobT]):
    """The jobs of this process by key; safe to call from any thread."""

    SHUTDOWN_TIMEOUT: ClassVar[float] = 30.0

    def __init__(self) -> None:
        self._jobs: dict[KeyT, JobT] = {}
        self._lock = threading.Lock()

    def _claim(self, key: KeyT, choose: Callable[[JobT | None], JobT]) -> JobT:
        """The job to keep under `key`: `choose` gets the current one (or None) under the manager's lock, so no
        two callers decide at once; it returns the job to keep or raises to refuse."""
        with self._lock:
            job = choose(self._jobs.get(key))
            self._jobs[key] = job
            return job

    def _get(self, key: KeyT) -> JobT | None:
        with self._lock:
            return self._jobs.get(key)

    def _select(self, keep: Callable[[KeyT], bool]) -> list[JobT]:
        with self._lock:
            return [job for key, job in self._jobs.items() if keep(key)]

    def shutdown(self, timeout: float | None = None) -> None:
        """Halt every job, then wait for each to end (`SHUTDOWN_TIMEOUT` seconds unless told)."""
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.halt()
        for job in jobs:
            job.wait(self.SHUTDOWN_TIMEOUT if timeout is None else timeout)
