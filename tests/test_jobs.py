"""Background runs (what the Evolve page drives): launch, pause, resume, stop and failure, against the loopback."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from datagen_core.config import LLMConfig, RunConfig, SamplingParams
from datagen_core.embed import Embedder
from datagen_core.engine.jobs import RunJob, RunManager
from datagen_core.engine.runs import start_run
from datagen_core.errors import DatagenError
from datagen_core.store import Store

from .conftest import loopback_config, make_project
from .loopback_server import LoopbackServer
from .test_runner import assert_no_duplicates

TIMEOUT = 120.0


def config(per_label: int) -> RunConfig:
    return RunConfig(per_label=per_label, seed=11, sampling=SamplingParams(max_tokens=64))


def wait_for(condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def kept(store: Store, run_id: str) -> int:
    return sum(store.kept_counts(run_id).values())


@pytest.fixture
def store(home: Path) -> Iterator[Store]:
    with Store.open(make_project(home)) as opened:
        yield opened


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer(latency_s=0.05) as running:
        yield running


@pytest.fixture
def manager(embedder: Embedder) -> Iterator[RunManager]:
    runs = RunManager(embedder)
    yield runs
    runs.shutdown()


def test_a_launched_run_completes_in_the_background(
    store: Store, server: LoopbackServer, manager: RunManager
) -> None:
    llm = loopback_config(server, max_in_flight=4)
    run_id = start_run(store, config(8), llm)
    job = manager.launch(store, run_id, llm)
    assert job.snapshot().active  # launch returns at once; the thread does the work
    assert manager.launch(store, run_id, llm) is job  # one job per run: a second launch is a no-op
    assert manager.active(store) == [job]
    assert job.wait(TIMEOUT)
    snap = job.snapshot()
    assert snap.state == "completed" and snap.error is None and not snap.active
    assert snap.kept == snap.target == 24 and snap.landed == 24 and snap.seconds > 0
    assert {p.label: p.kept for p in snap.progress.values()} == {"HUM": 8, "LOC": 8, "NUM": 8}
    assert store.kept_counts(run_id) == {"HUM": 8, "LOC": 8, "NUM": 8}
    assert store.run(run_id).status == "completed"
    assert manager.active(store) == [] and manager.job(store, run_id) is job
    assert_no_duplicates(store, run_id)
    with pytest.raises(DatagenError, match="completed"):
        manager.launch(store, run_id, llm)


def test_pause_then_resume_reaches_exactly_the_target(
    store: Store, server: LoopbackServer, manager: RunManager, embedder: Embedder
) -> None:
    llm = loopback_config(server, max_in_flight=4)
    run_id = start_run(store, config(40), llm)
    job = manager.launch(store, run_id, llm)
    wait_for(lambda: kept(store, run_id) >= 6)
    job.pause()
    assert job.snapshot().state in ("pausing", "paused")
    assert job.wait(TIMEOUT)
    snap = job.snapshot()
    assert snap.state == "paused" and not snap.active and snap.error is None
    assert store.run(run_id).status == "interrupted"
    paused_at = kept(store, run_id)
    assert 6 <= paused_at < 120
    time.sleep(0.3)
    assert kept(store, run_id) == paused_at  # nothing is asked while paused

    # resume in the same job, pause once more, then resume as a restarted studio would (a new manager)
    assert manager.launch(store, run_id, llm) is job
    wait_for(lambda: kept(store, run_id) > paused_at)
    job.pause()
    assert job.wait(TIMEOUT) and job.snapshot().state == "paused"
    restarted = RunManager(embedder)
    resumed = restarted.launch(store, run_id, llm)
    assert resumed is not job
    assert resumed.wait(TIMEOUT)
    assert resumed.snapshot().state == "completed", resumed.snapshot().error
    assert store.kept_counts(run_id) == {"HUM": 40, "LOC": 40, "NUM": 40}
    assert store.run(run_id).status == "completed"
    assert_no_duplicates(store, run_id)
    assert store.run_usage(run_id)["calls"] == 120  # only the missing offspring were asked for


def test_stop_ends_a_run_for_good(store: Store, server: LoopbackServer, manager: RunManager,
                                  embedder: Embedder) -> None:
    llm = loopback_config(server, max_in_flight=4)
    running = start_run(store, config(40), llm)
    job = manager.launch(store, running, llm)
    wait_for(lambda: kept(store, running) >= 4)
    job.stop()
    assert job.wait(TIMEOUT)
    assert job.snapshot().state == "stopped" and store.run(running).status == "stopped"
    landed = kept(store, running)
    assert 4 <= landed < 120
    with pytest.raises(DatagenError, match="stopped"):
        job.start()
    with pytest.raises(DatagenError, match="stopped"):
        manager.launch(store, running, llm)
    with pytest.raises(DatagenError, match="stopped"):  # a restarted studio refuses it too
        RunManager(embedder).launch(store, running, llm)
    time.sleep(0.2)
    assert kept(store, running) == landed

    paused = start_run(store, config(40), llm)  # a paused run can be stopped without resuming it
    job = manager.launch(store, paused, llm)
    wait_for(lambda: kept(store, paused) >= 2)
    job.pause()
    assert job.wait(TIMEOUT) and job.snapshot().state == "paused"
    job.stop()
    assert job.snapshot().state == "stopped" and store.run(paused).status == "stopped"


def test_a_dead_endpoint_fails_with_a_message(store: Store, manager: RunManager) -> None:
    llm = LLMConfig(backend="openai", base_url="http://127.0.0.1:9/v1", model="loopback", max_retries=0,
                    timeout_s=5)
    run_id = start_run(store, config(3), llm)
    job: RunJob = manager.launch(store, run_id, llm)
    assert job.wait(TIMEOUT)
    snap = job.snapshot()
    assert snap.state == "failed" and not snap.active
    assert snap.error is not None and "cannot reach" in snap.error and "127.0.0.1:9" in snap.error
    assert [m.level for m in snap.messages] == ["error"] and snap.messages[0].text == snap.error
    run = store.run(run_id)
    assert run.status == "failed" and run.error == snap.error
    assert kept(store, run_id) == 0
    job.stop()  # a failed run may be given up
    assert job.snapshot().state == "stopped" and store.run(run_id).status == "stopped"


def test_a_jobs_own_state_wins_over_the_stores_record() -> None:
    from datagen_core.engine.jobs import JobSnapshot, run_state

    def snap(state: str) -> JobSnapshot:
        return JobSnapshot(run_id="r", state=state, progress={}, messages=(), error=None, seconds=0.0,  # type: ignore[arg-type]
                           landed=0)

    assert run_state("interrupted", snap("paused")) == "paused"  # the store only knows it was interrupted
    assert run_state("running", snap("running")) == "running"
    assert run_state("completed", snap("completed")) == "completed" and run_state("failed", snap("failed")) == "failed"
    assert run_state("interrupted", None) == "interrupted"  # no job in this process: the store's record
