"""The background-job base both run jobs and evaluation jobs stand on: thread, stop, error, time, manager."""

from __future__ import annotations

import threading
from typing import Literal

import pytest

from datagen_core.engine.background import BackgroundJob, JobManager, error_line
from datagen_core.errors import DatagenError

State = Literal["idle", "working", "done", "stopped", "failed"]
WAIT = 10.0


class Counter(BackgroundJob[State, tuple[State, str | None, float]]):
    """Counts until stopped (or fails when told to); enough to watch the base at work."""

    def __init__(self, fail: Exception | None = None) -> None:
        super().__init__("idle", thread_name="counter")
        self.fail = fail
        self.began = threading.Event()
        self.settled: list[State] = []

    def start(self) -> None:
        with self._lock:
            if not self._thread_alive():
                self._start_thread("working")

    def _work(self) -> State:
        self.began.set()
        if self.fail is not None:
            raise self.fail
        return "stopped" if self._stop.wait(WAIT) else "done"

    def _settle(self, ended: State | None) -> State:
        return ended or "failed"

    def _settled(self, final: State) -> None:
        self.settled.append(final)

    def snapshot(self) -> tuple[State, str | None, float]:
        with self._lock:
            return self._state, self._error, self._elapsed()


def test_a_job_runs_in_a_thread_stops_and_starts_again_with_a_fresh_stop() -> None:
    job = Counter()
    assert job.snapshot() == ("idle", None, 0.0) and job.wait(0)
    job.start()
    assert job.began.wait(WAIT) and job.snapshot()[0] == "working"
    job.halt()
    assert job.wait(WAIT)
    state, error, first = job.snapshot()
    assert (state, error, job.settled) == ("stopped", None, ["stopped"]) and first > 0
    assert job.snapshot()[2] == first  # no time passes while it does not work
    job.began.clear()
    job.start()  # a restart does not inherit the old stop
    assert job.began.wait(WAIT) and job.snapshot()[0] == "working"
    job.halt()
    assert job.wait(WAIT) and job.snapshot()[2] > first


def test_a_stop_asked_before_the_first_start_applies_to_it() -> None:
    job = Counter()
    job.halt()
    job.start()
    assert job.wait(WAIT) and job.snapshot()[0] == "stopped"


@pytest.mark.parametrize(("exc", "line"), [(DatagenError("the model is gone"), "the model is gone"),
                                           (KeyError("label"), "KeyError: 'label'")])
def test_an_error_fails_the_job_with_one_line(exc: Exception, line: str) -> None:
    job = Counter(fail=exc)
    job.start()
    assert job.wait(WAIT)
    assert job.snapshot()[:2] == ("failed", line) and job.settled == ["failed"]
    assert error_line(exc) == line


def test_a_manager_keeps_one_job_per_key_and_halts_them_all() -> None:
    manager: JobManager[str, Counter] = JobManager()

    def refuse_running(current: Counter | None) -> Counter:
        if current is not None and current.snapshot()[0] == "working":
            raise DatagenError("already running")
        return Counter()

    first = manager._claim("a", refuse_running)
    first.start()
    assert first.began.wait(WAIT)
    with pytest.raises(DatagenError, match="already running"):
        manager._claim("a", refuse_running)
    other = manager._claim("b", refuse_running)
    assert manager._get("a") is first and manager._select(lambda key: key != "a") == [other]
    manager.shutdown(WAIT)
    assert first.snapshot()[0] == "stopped" and other.snapshot()[0] == "idle"
