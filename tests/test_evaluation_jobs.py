"""Evaluation jobs: steps in a background thread, live progress, cancel between steps, failures as messages."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from datagen_core.embed import Embedder
from datagen_core.errors import DatagenError
from datagen_core.evaluation.evaluator import REAL, Evaluation, Evaluator
from datagen_core.evaluation.jobs import EvaluationJobs, JobStep
from datagen_core.evaluation.trainers import ProgressFn
from datagen_core.store import Store

from . import test_evaluation

project = test_evaluation.project  # the fixture: 10 seeds and 20 held-out questions per label, two runs

WAIT = 120.0  # the first step loads the embedder (~7 s) on a busy machine

StepFn = Callable[[Evaluator, ProgressFn], Evaluation]


@pytest.fixture(scope="module")
def jobs() -> EvaluationJobs:
    return EvaluationJobs(Embedder())


def metrics(subject: str) -> JobStep:
    return JobStep(f"{subject}: metrics", lambda ev, progress: ev.metrics(subject))


def f1(subject: str) -> JobStep:
    return JobStep(f"{subject}: F1", lambda ev, progress: ev.downstream(subject, ev.trainer("logistic"),
                                                                        progress=progress))


def held(step: JobStep, release: threading.Event, reached: threading.Event) -> JobStep:
    """`step`, but it reports half way and waits for `release` first, so a test can look at the job mid-step."""

    def run(ev: Evaluator, progress: ProgressFn) -> Evaluation:
        progress(0.5, "half way")
        reached.set()
        assert release.wait(WAIT)
        return step.run(ev, progress)

    return JobStep(step.title, run)


def test_a_job_runs_its_steps_in_a_thread_and_shows_progress(project: Store, jobs: EvaluationJobs) -> None:
    run_id = project.runs()[0].id
    release, reached = threading.Event(), threading.Event()
    job = jobs.start(project, [metrics(REAL), held(metrics(run_id), release, reached), f1(run_id)])
    assert reached.wait(WAIT)
    snap = job.snapshot()
    assert (snap.state, snap.done, snap.total, snap.step) == ("running", 1, 3, f"{run_id}: metrics")
    assert (snap.fraction, snap.message, snap.overall) == (0.5, "half way", 0.5)
    assert [ev.subject for ev in snap.results] == [REAL]
    with pytest.raises(DatagenError, match="already running"):  # one evaluation per project at a time
        jobs.start(project, [metrics(REAL)])
    assert jobs.job(project) is job
    release.set()
    assert job.wait(WAIT)
    snap = job.snapshot()
    assert (snap.state, snap.done, snap.step, snap.error) == ("completed", 3, None, None)
    assert [ev.kind for ev in snap.results] == ["metrics", "metrics", "downstream"]
    assert 0 <= snap.results[2].result["macro_f1"] <= 1 and not any(ev.cached for ev in snap.results)
    assert len(project.evaluations()) == 3  # every result is cached: the page then reads it read-only
    again = jobs.start(project, [metrics(REAL)])  # a finished job makes room for the next
    assert again.wait(WAIT) and again.snapshot().results[0].cached
    with pytest.raises(DatagenError, match="nothing to compute"):
        jobs.start(project, [])


def test_cancel_stops_between_steps_and_keeps_what_finished(project: Store, jobs: EvaluationJobs) -> None:
    release, reached = threading.Event(), threading.Event()
    job = jobs.start(project, [held(metrics(REAL), release, reached), metrics(project.runs()[0].id)])
    assert reached.wait(WAIT)
    job.cancel()
    assert job.snapshot().cancelling
    release.set()  # the step in progress finishes and is cached; the next one never starts
    assert job.wait(WAIT)
    snap = job.snapshot()
    assert (snap.state, snap.done, snap.total, snap.cancelling) == ("cancelled", 1, 2, False)
    assert list(project.evaluations()["subject"]) == [REAL]


def test_a_failing_step_fails_the_job_with_its_message(project: Store, jobs: EvaluationJobs) -> None:
    job = jobs.start(project, [metrics(REAL), metrics("no-such-run"), metrics(project.runs()[0].id)])
    assert job.wait(WAIT)
    snap = job.snapshot()
    assert (snap.state, snap.done, snap.total) == ("failed", 1, 3)
    assert snap.error is not None and snap.error.startswith("no-such-run: metrics: ")
    assert len(project.evaluations()) == 1  # the real seeds' metrics stay cached; nothing ran after the failure
