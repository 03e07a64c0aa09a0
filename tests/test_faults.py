"""Faults the run loop must survive: a crash before the first batch, a hung endpoint, SIGTERM, flaky calls, a
connection failure before a resume, and a top-up after review."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from datagen_core.config import RunConfig, SamplingParams
from datagen_core.embed import Embedder
from datagen_core.engine.progress import RunObserver
from datagen_core.engine.runner import run_generation
from datagen_core.engine.runs import start_run, top_up_run
from datagen_core.errors import DatagenError, LLMFatalError
from datagen_core.methods.genetic import GeneticOptions
from datagen_core.store import SampleFilter, Store

from .conftest import loopback_config, make_project
from .loopback_server import LoopbackServer

ENV = {**os.environ, "DATAGEN_BASE_URL": "", "DATAGEN_MODEL": ""}

# The CLI with the batch writer stuck before it embeds: what a SIGKILL while the first batch is embedded finds.
_STUCK_WRITER = """
import sys, threading
from datagen_core.engine.runner import Runner
Runner._write = lambda self, candidates: threading.Event().wait()
from datagen_core.cli.app import main
main(sys.argv[1:])
"""


def config(per_label: int, **kwargs: object) -> RunConfig:
    return RunConfig(per_label=per_label, seed=7, sampling=SamplingParams(max_tokens=64),
                     options=GeneticOptions(), **kwargs)  # type: ignore[arg-type]


def cli(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "datagen_core.cli.app", *args, "--home", str(home)]


def wait_for(condition: object, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.02)


def test_sigkill_before_the_first_batch_keeps_every_answered_call_and_resume_uses_them(home: Path) -> None:
    make_project(home)
    target, in_flight = 20, 8
    with LoopbackServer(latency_s=0.02) as server:
        url = ["--base-url", server.base_url, "--model", "loopback", "--in-flight", str(in_flight)]
        proc = subprocess.Popen(
            [sys.executable, "-c", _STUCK_WRITER, "run", "trec", "--per-label", str(target), "--seed", "3", *url,
             "--home", str(home)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
        wait_for(lambda: server.stats.completions >= 31 or proc.poll() is not None)
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        time.sleep(0.3)  # answers keep landing while the first batch is stuck; each is stored as it lands
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        answered = server.stats.completions - 1  # the first completion is the connection check

        with Store.open(home / "trec.duckdb") as store:
            (run,) = store.runs()
            stored = store.run_usage(run.id)["calls"]
            assert store.count_samples(SampleFilter(run_ids=(run.id,), include_filtered=True)) == 0
            assert len(store.unused_answers(run.id)) == stored
        # at most what was in the air when the process died is lost, never the answers that landed before
        assert answered - in_flight <= stored <= answered and stored >= 30

        resumed = subprocess.run(cli(home, "run", "trec", "--resume", *url), capture_output=True, text=True,
                                 env=ENV, timeout=300)
        assert resumed.returncode == 0, resumed.stderr
        asked_again = server.stats.completions - 1 - answered - 1  # minus the resume's connection check

    with Store.open(home / "trec.duckdb") as store:
        (run,) = store.runs()
        assert run.status == "completed"
        assert store.kept_counts(run.id) == {"HUM": target, "LOC": target, "NUM": target}
        assert not store.unused_answers(run.id)  # every stored answer became a sample
        samples = store.sample_page(SampleFilter(run_ids=(run.id,), include_filtered=True), limit=1000)
        assert samples["llm_call_id"].is_unique
        filtered = int(samples["filter_reason"].notna().sum())
        # nothing stored was asked for again: only what the target still lacked (plus what filters dropped)
        assert asked_again <= 3 * target - stored + filtered + in_flight


def test_a_hung_endpoint_stops_the_run_with_one_line_and_the_run_resumes(home: Path, embedder: Embedder) -> None:
    messages: list[str] = []

    class Notes(RunObserver):
        def on_message(self, level: str, message: str) -> None:
            messages.append(message)

    hang = LoopbackServer(faults=lambda number, body: None if number == 1 else "timeout", timeout_sleep_s=30)
    with Store.open(make_project(home)) as store, hang:
        chosen = loopback_config(hang, first_byte_timeout_s=0.3, give_up_after_s=2.0, max_retries=1)
        run_id = start_run(store, config(5, max_failures=1000), chosen)
        started = time.monotonic()
        with pytest.raises(LLMFatalError, match="answered nothing for") as caught:
            run_generation(store, chosen, run_id, embedder=embedder, observer=Notes())
        assert time.monotonic() - started < 20
        assert "\n" not in str(caught.value)
        assert store.run(run_id).status == "failed"
        assert any(m.startswith("endpoint fault: no answer within 0.3 s") for m in messages), messages
        assert store.run_faults(run_id).get("timeout", 0) >= 2
        assert store.run_usage(run_id)["lost_s"] > 0
    with Store.open(home / "trec.duckdb") as store, LoopbackServer() as healthy:
        summary = run_generation(store, loopback_config(healthy), run_id, embedder=embedder)
        assert summary.status == "completed" and store.kept_counts(run_id) == {"HUM": 5, "LOC": 5, "NUM": 5}


def test_sigterm_leaves_the_run_interrupted_and_resume_finishes_it(home: Path) -> None:
    make_project(home)
    with LoopbackServer(latency_s=0.3) as server:
        url = ["--base-url", server.base_url, "--model", "loopback", "--in-flight", "4"]
        proc = subprocess.Popen(cli(home, "run", "trec", "--per-label", "30", *url), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=ENV)
        wait_for(lambda: server.stats.completions >= 12 or proc.poll() is not None)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 143, stderr
        assert "Traceback" not in stderr and "--resume" in stderr
        with Store.open(home / "trec.duckdb") as store:
            (run,) = store.runs()
            assert run.status == "interrupted"
            assert not store.unused_answers(run.id)
        resumed = subprocess.run(cli(home, "run", "trec", "--resume", *url), capture_output=True, text=True,
                                 env=ENV, timeout=300)
        assert resumed.returncode == 0, resumed.stderr
    with Store.open(home / "trec.duckdb") as store:
        assert store.kept_counts(run.id) == {"HUM": 30, "LOC": 30, "NUM": 30}


def test_retries_by_kind_and_time_lost_are_shown_in_the_cli_and_runs(home: Path) -> None:
    make_project(home)
    kinds = {0: "500", 1: "429", 2: "garbage"}

    def flaky(number: int, body: dict[str, Any]) -> str | None:  # 30 % of generation calls fail once
        checking = body["messages"][-1]["content"] == "Say OK."  # the connection check
        return None if checking or number % 10 >= 3 else kinds[number % 10]

    with LoopbackServer(faults=flaky) as server:
        url = ["--base-url", server.base_url, "--model", "loopback", "--in-flight", "4"]
        done = subprocess.run(cli(home, "run", "trec", "--per-label", "10", *url), capture_output=True, text=True,
                              env=ENV, timeout=300)
        assert done.returncode == 0, done.stderr
        listing = subprocess.run(cli(home, "runs", "trec"), capture_output=True, text=True, env=ENV, timeout=60)
    with Store.open(home / "trec.duckdb") as store:
        (run,) = store.runs()
        faults = store.run_faults(run.id)
        retries = int(store.run_usage(run.id)["retries"])
    assert set(faults) == {"server_error", "rate_limited", "unreadable"} and sum(faults.values()) == retries > 5
    summary = done.stdout.strip().splitlines()[-1]  # one line, however wide the terminal
    assert f"retries {retries} (" in summary and "server_error" in summary and "s lost" in summary
    assert "server_error" in " ".join(listing.stdout.split()) and str(retries) in listing.stdout


def test_resume_picks_the_run_with_work_over_one_that_never_reached_its_endpoint(
    home: Path, embedder: Embedder
) -> None:
    stop = threading.Event()

    class StopAfterFirstBatch(RunObserver):
        def on_batch(self, samples: object, progress: object) -> None:
            stop.set()

    with Store.open(make_project(home)) as store, LoopbackServer(latency_s=0.05) as server:
        worked = start_run(store, config(20), loopback_config(server))
        run_generation(store, loopback_config(server), worked, embedder=embedder, observer=StopAfterFirstBatch(),
                       stop=stop)
        dead = loopback_config(server).model_copy(update={"base_url": "http://127.0.0.1:9/v1"})
        unreachable = start_run(store, config(20), dead)
        with pytest.raises(LLMFatalError, match="cannot reach"):
            run_generation(store, dead, unreachable, embedder=embedder)
        assert store.run(unreachable).status == "failed"
        assert store.latest_unfinished_run().id == worked  # type: ignore[union-attr]


def test_top_up_asks_again_for_exactly_the_rejected_offspring(home: Path, embedder: Embedder) -> None:
    with Store.open(make_project(home)) as store, LoopbackServer() as server:
        chosen = loopback_config(server, max_in_flight=4)
        run_id = start_run(store, config(6), chosen)
        run_generation(store, chosen, run_id, embedder=embedder)
        with pytest.raises(DatagenError, match="nothing to top up"):
            top_up_run(store, run_id)
        kept = store.sample_page(SampleFilter(run_ids=(run_id,)), limit=100)
        rejected = [int(i) for i in kept[kept["label"] == "HUM"]["id"][:2]] + [int(kept[kept["label"] == "LOC"]
                                                                                   ["id"].iloc[0])]
        for sample_id in rejected:
            store.edit_sample(sample_id, status="rejected", actor="reviewer")
        assert top_up_run(store, run_id) == {"HUM": 2, "LOC": 1}
        before = server.stats.completions
        summary = run_generation(store, chosen, run_id, embedder=embedder)
        assert summary.status == "completed"
        assert server.stats.completions - before == 1 + 3  # the connection check and exactly the three
        assert store.counted_offspring(run_id) == {"HUM": 6, "LOC": 6, "NUM": 6}
        assert store.rejected_offspring(run_id) == {"HUM": 2, "LOC": 1}
        fresh = store.sample_page(SampleFilter(run_ids=(run_id,)), limit=100)
        fresh = fresh[~fresh["id"].isin(kept["id"])]
        assert len(fresh) == 3
        for parents in fresh["parent_ids"]:  # a sample the reviewer rejected is no parent
            assert len(parents) == 2 and not set(map(int, parents)) & set(rejected)
