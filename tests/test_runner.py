"""The run loop end to end against the loopback server: exact targets, lineage, faults, kill and resume."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from datagen_core.config import RunConfig, SamplingParams
from datagen_core.embed import Embedder
from datagen_core.engine.runner import run_generation
from datagen_core.engine.runs import start_run
from datagen_core.errors import DatagenError, LLMFatalError
from datagen_core.methods.genetic import GeneticOptions
from datagen_core.store import Store

from .conftest import loopback_config, make_project
from .loopback_server import LoopbackServer

SAMPLING = SamplingParams(max_tokens=64)


def config(per_label: int, **kwargs: object) -> RunConfig:
    return RunConfig(per_label=per_label, seed=7, sampling=SAMPLING, **kwargs)  # type: ignore[arg-type]


def assert_no_duplicates(store: Store, run_id: str) -> None:
    cur = store.cursor()
    dup_texts = cur.execute(
        "SELECT count(*) - count(DISTINCT (label, text_hash)) FROM samples "
        "WHERE run_id = ? AND filter_reason IS NULL",
        [run_id],
    ).fetchone()[0]
    dup_pairs = cur.execute(
        "SELECT count(*) - count(DISTINCT (label, list_sort(parent_ids))) FROM samples WHERE run_id = ?", [run_id]
    ).fetchone()[0]
    assert dup_texts == 0 and dup_pairs == 0


def test_run_reaches_exact_targets_with_full_lineage(home: Path, embedder: Embedder) -> None:
    path = make_project(home)
    with Store.open(path) as store, LoopbackServer(latency_s=0.01) as server:
        llm_config = loopback_config(server, max_in_flight=8)
        run_id = start_run(store, config(10), llm_config)
        summary = run_generation(store, llm_config, run_id, embedder=embedder)
        assert summary.status == "completed"
        assert store.kept_counts(run_id) == {"HUM": 10, "LOC": 10, "NUM": 10}
        assert server.stats.peak_in_flight > 1
        assert_no_duplicates(store, run_id)
        rows = store.samples(run_id=run_id)
        real_ids = set(store.real_examples()["id"])
        population_ids = real_ids | set(rows["id"])
        for row in rows.itertuples():
            assert len(row.parent_ids) == 2 and set(row.parent_ids) <= population_ids
            split = json.loads(row.gene_split)
            genes = split["parent1"] + split["parent2"] + split["mutated"]
            assert sorted(genes) == sorted(["length", "subtopic", "style", "wh-word"]) and split["mutated"]
            assert f"Category: {row.label}" in row.prompt and row.model == "loopback"
            assert row.raw_response and row.completion_tokens > 0 and row.requested_at <= row.created_at
            assert json.loads(row.sampling)["max_tokens"] == 64
        # parents of each offspring belong to its own label's population
        labels = dict(zip(store.samples()["id"], store.samples()["label"], strict=True))
        labels.update(dict(zip(store.real_examples()["id"], store.real_examples()["label"], strict=True)))
        assert all(labels[p] == row.label for row in rows.itertuples() for p in row.parent_ids)
        usage = store.run_usage(run_id)
        assert usage["calls"] == 30 and usage["completion_tokens"] > 0
        vectors = store.embeddings(embedder.name, list(store.cursor().execute(
            "SELECT text_hash FROM samples WHERE run_id = ?", [run_id]).fetchnumpy()["text_hash"]))
        assert len(vectors) == 30


def test_first_pair_is_the_farthest_seed_pair(home: Path, embedder: Embedder) -> None:
    import numpy as np

    path = make_project(home)
    with Store.open(path) as store, LoopbackServer() as server:
        llm_config = loopback_config(server, max_in_flight=1)
        run_id = start_run(store, config(1, labels=("HUM",)), llm_config)
        run_generation(store, llm_config, run_id, embedder=embedder)
        seeds = store.real_examples("HUM")
        vectors = embedder.encode(list(seeds["text"]))
        distances = np.linalg.norm(vectors[:, None] - vectors[None], axis=-1)
        i, j = np.unravel_index(distances.argmax(), distances.shape)
        chosen = sorted(store.samples(run_id=run_id)["parent_ids"][0])
        assert chosen == sorted([seeds["id"][i], seeds["id"][j]])


def test_faults_and_refusals_never_break_the_target(home: Path, embedder: Embedder) -> None:
    plan = {3: "429", 5: "500", 7: "garbage", 9: "refusal", 11: "empty", 13: "refusal"}
    path = make_project(home)
    with Store.open(path) as store, LoopbackServer(faults=lambda n, _: plan.get(n)) as server:
        llm_config = loopback_config(server, max_in_flight=4)
        run_id = start_run(store, config(6), llm_config)
        summary = run_generation(store, llm_config, run_id, embedder=embedder, backoff_base_s=0.01)
        assert summary.status == "completed"
        assert store.kept_counts(run_id) == {"HUM": 6, "LOC": 6, "NUM": 6}
        assert store.filtered_counts(run_id) == {"refusal": 2, "empty": 1}
        assert sum(server.stats.faults.values()) == len(plan)
        assert_no_duplicates(store, run_id)


def test_random_parents_and_no_mutation_ablations(home: Path, embedder: Embedder, loopback: LoopbackServer) -> None:
    path = make_project(home)
    with Store.open(path) as store:
        llm_config = loopback_config(loopback)
        options = GeneticOptions(parent_selection="random", mutation=False)
        run_id = start_run(store, config(5, genetic=options), llm_config)
        run_generation(store, llm_config, run_id, embedder=embedder)
        splits = [json.loads(s) for s in store.samples(run_id=run_id)["gene_split"]]
        assert len(splits) == 15 and all(not s["mutated"] and s["parent1"] and s["parent2"] for s in splits)
        assert all("must be different" not in p for p in store.samples(run_id=run_id)["prompt"])


def test_a_run_without_genes_or_with_a_dead_endpoint_fails_clearly(home: Path, embedder: Embedder) -> None:
    with (
        Store.open(make_project(home, "nogenes", genes=False)) as store,
        LoopbackServer() as server,
        pytest.raises(DatagenError, match="no genes"),
    ):
        start_run(store, config(3), loopback_config(server))
    path = make_project(home)
    with Store.open(path) as store, LoopbackServer(api_key="secret") as server:
        llm_config = loopback_config(server, api_key_env="NO_SUCH_KEY")
        run_id = start_run(store, config(3), llm_config)
        with pytest.raises(LLMFatalError, match="API key"):
            run_generation(store, llm_config, run_id, embedder=embedder)
        assert store.run(run_id).status == "failed"
        assert store.samples(run_id=run_id).empty


def _cli(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "datagen_core.cli.app", *args, "--home", str(home)]


def test_sigkill_midway_then_resume_reaches_exact_target_without_duplicates(home: Path) -> None:
    make_project(home)
    target = 40
    env = {**os.environ, "DATAGEN_BASE_URL": "", "DATAGEN_MODEL": ""}
    with LoopbackServer(latency_s=0.05) as server:
        url_args = ["--base-url", server.base_url, "--model", "loopback", "--in-flight", "8"]
        proc = subprocess.Popen(
            _cli(home, "run", "trec", "--per-label", str(target), "--seed", "3", *url_args),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
        )
        # Kill once answers were served and a batch was committed (the write-ahead log grew after the first
        # generation answer): on a busy machine the first commit can lag well behind the answers. The first
        # completion is the connection check, after which the run writes its status; the second is an offspring,
        # asked only once that status is written, so later growth of the log is a batch.
        wal = home / "trec.duckdb.wal"
        deadline = time.monotonic() + 120
        while server.stats.completions < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.005)
        committed_before = wal.stat().st_size if wal.exists() else 0
        while (server.stats.completions < 45 or (wal.stat().st_size if wal.exists() else 0) <= committed_before) \
                and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        served_before_kill = server.stats.completions

        with Store.open(home / "trec.duckdb") as store:
            (run,) = store.runs()
            partial = sum(store.kept_counts(run.id).values())
            assert run.status == "running"  # killed: nobody could mark it
        assert 0 < partial < 3 * target

        resumed = subprocess.run(_cli(home, "run", "trec", "--resume", *url_args), capture_output=True,
                                 text=True, env=env, timeout=300)
        assert resumed.returncode == 0, resumed.stderr
        assert "resuming run" in resumed.stdout
        served_after = server.stats.completions - served_before_kill

    with Store.open(home / "trec.duckdb") as store:
        (run,) = store.runs()
        assert run.status == "completed"
        assert store.kept_counts(run.id) == {"HUM": target, "LOC": target, "NUM": target}
        assert_no_duplicates(store, run.id)
        assert served_after <= 3 * target - partial + 8  # only the missing offspring were asked for again


def test_ctrl_c_marks_the_run_interrupted_and_resume_finishes_it(home: Path) -> None:
    make_project(home)
    env = {**os.environ, "DATAGEN_BASE_URL": "", "DATAGEN_MODEL": ""}
    with LoopbackServer(latency_s=0.05) as server:
        url_args = ["--base-url", server.base_url, "--model", "loopback", "--in-flight", "4"]
        proc = subprocess.Popen(_cli(home, "run", "trec", "--per-label", "30", *url_args),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        deadline = time.monotonic() + 120
        while server.stats.completions < 20 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 130 and "--resume" in stderr
        with Store.open(home / "trec.duckdb") as store:
            (run,) = store.runs()
            assert run.status == "interrupted"
            assert 0 < sum(store.kept_counts(run.id).values()) < 90
        resumed = subprocess.run(_cli(home, "run", "trec", "--resume", *url_args), capture_output=True, text=True,
                                 env=env, timeout=300)
        assert resumed.returncode == 0, resumed.stderr
    with Store.open(home / "trec.duckdb") as store:
        (run,) = store.runs()
        assert run.status == "completed" and store.kept_counts(run.id) == {"HUM": 30, "LOC": 30, "NUM": 30}
        assert_no_duplicates(store, run.id)


def test_stop_cancels_what_is_in_flight_and_keeps_what_landed(home: Path, embedder: Embedder,
                                                              loopback: LoopbackServer) -> None:
    import threading

    from datagen_core.engine.progress import LabelProgress, RunObserver

    stop = threading.Event()
    asked_before_stop: list[int] = []

    class StopAfterFirstBatch(RunObserver):
        def on_batch(self, samples: object, progress: dict[str, LabelProgress]) -> None:
            if not stop.is_set():  # everything asked so far: landed (kept, filtered, failed) or still in flight
                asked_before_stop.append(sum(p.kept + p.filtered + p.failed + p.in_flight for p in progress.values()))
                stop.set()

    with Store.open(make_project(home)) as store:
        llm_config = loopback_config(loopback, max_in_flight=4)
        run_id = start_run(store, config(20), llm_config)
        summary = run_generation(store, llm_config, run_id, embedder=embedder, observer=StopAfterFirstBatch(),
                                 stop=stop)
        assert summary.status == "interrupted" and store.run(run_id).status == "interrupted"
        landed = sum(store.kept_counts(run_id).values()) + sum(store.filtered_counts(run_id).values())
        assert 0 < landed < 60
        # requests still waiting when the stop came are cancelled, nothing new is asked, and every answer that
        # landed is stored and made into its sample
        assert landed == store.run_usage(run_id)["calls"] <= asked_before_stop[0]
        assert not store.unused_answers(run_id)
        # the server answered no more than was asked before the stop (plus the one connection check)
        assert store.run_usage(run_id)["calls"] + 1 <= loopback.stats.completions <= asked_before_stop[0] + 1


def test_a_model_that_only_repeats_itself_cannot_keep_a_label_asking_forever(home: Path, embedder: Embedder) -> None:
    with Store.open(make_project(home)) as store, LoopbackServer(answer=lambda body: "Where is it ?") as server:
        llm_config = loopback_config(server, max_in_flight=2)
        run_id = start_run(store, config(10, max_failures=5, labels=("HUM",)), llm_config)
        summary = run_generation(store, llm_config, run_id, embedder=embedder)
        assert summary.status == "completed" and store.kept_counts(run_id) == {"HUM": 1}
        assert summary.progress["HUM"].exhausted
        filtered = store.filtered_counts(run_id)  # the kept answer may be a parent later: then a copy of it
        assert set(filtered) <= {"duplicate", "source_copy"} and sum(filtered.values()) >= 5
        events = store.events(run_id)
        stopped = events[events["message"].str.contains("5 answers in a row were filtered")]
        assert len(stopped) == 1
        # What was already asked still lands, but nothing is asked for the label once it is stopped.
        asked = store.samples(run_id=run_id, include_filtered=True)["requested_at"]
        assert (asked <= stopped["created_at"].iloc[0]).all()


def test_word_as_gene_ablation_runs_with_words_of_the_parents(home: Path, embedder: Embedder,
                                                              loopback: LoopbackServer) -> None:
    with Store.open(make_project(home)) as store:
        llm_config = loopback_config(loopback, max_in_flight=4)
        run_id = start_run(store, config(4, options=GeneticOptions(word_genes=True)), llm_config)
        assert run_generation(store, llm_config, run_id, embedder=embedder).status == "completed"
        rows = store.samples(run_id=run_id)
        assert len(rows) == 12
        texts = {int(r.id): r.text.lower() for r in store.samples_by_ids(
            sorted({int(p) for ids in rows["parent_ids"] for p in ids})).itertuples()}
        for row in rows.itertuples():
            split = json.loads(row.gene_split)
            assert all(word in texts[int(row.parent_ids[0])] for word in split["parent1"])
            assert all(word in texts[int(row.parent_ids[1])] for word in split["parent2"])
            assert all(f"must use the word '{word}'" in row.prompt for word in split["parent1"] + split["parent2"])


def test_in_run_group_check_filters_near_copies_of_the_population(home: Path, embedder: Embedder) -> None:
    """Every other answer is parent 1 with a remark appended: close in embedding space, a new text hash."""
    import re as regex

    def near_copies(body: dict[str, object]) -> str:
        messages = body["messages"]  # type: ignore[index]
        parent = regex.search(r"Example 1: (.+)\n", messages[-1]["content"])
        if parent and hashlib.sha256(messages[-1]["content"].encode()).digest()[0] % 2 == 0:  # not hash(): seeded
            return parent.group(1) + " Thanks!"
        from .loopback_server import deterministic_text

        return deterministic_text(messages, body.get("seed"))  # type: ignore[arg-type]

    with Store.open(make_project(home)) as store, LoopbackServer(answer=near_copies) as server:
        llm_config = loopback_config(server, max_in_flight=4)
        run_id = start_run(store, config(6, dedup_distance=0.3), llm_config)
        summary = run_generation(store, llm_config, run_id, embedder=embedder)
        assert summary.status == "completed" and store.kept_counts(run_id) == {"HUM": 6, "LOC": 6, "NUM": 6}
        rows = store.samples(run_id=run_id, include_filtered=True)
        copies = rows[rows["text"].str.endswith(" Thanks!")]
        # a copy is filtered as near the population, or (the same parent copied twice) as an exact duplicate; one
        # that the remark moved 0.3 or more away is a new member, which the distances below check
        assert len(copies) > 0 and "near_duplicate" in set(copies["filter_reason"])
        assert set(copies["filter_reason"].dropna()) <= {"near_duplicate", "duplicate"}
        kept = rows[rows["filter_reason"].isna()]
        vectors = embedder.encode(list(kept["text"]))
        for label in ("HUM", "LOC", "NUM"):
            mine = vectors[(kept["label"] == label).to_numpy()]
            seeds = embedder.encode(list(store.real_examples(label)["text"]))
            pool = np.concatenate([seeds, mine])
            distances = np.linalg.norm(pool[:, None, :] - pool[None, :, :], axis=2) + 10 * np.eye(len(pool))
            assert distances[len(seeds):].min() >= 0.3 - 1e-4  # no kept offspring is near another member


def test_a_seed_copied_with_other_punctuation_is_a_duplicate(home: Path, embedder: Embedder) -> None:
    with Store.open(make_project(home)) as store:
        seed = store.real_examples("HUM")["text"].iloc[0]
        copied = seed.replace(",", "").replace("?", " ?!").upper()
        assert copied != seed
        with LoopbackServer(answer=lambda body: copied) as server:
            llm_config = loopback_config(server, max_in_flight=1)
            run_id = start_run(store, config(3, max_failures=3, labels=("HUM",)), llm_config)
            run_generation(store, llm_config, run_id, embedder=embedder)
        assert store.kept_counts(run_id) == {}
        filtered = store.filtered_counts(run_id)  # a copy of a parent, or of another seed of the label
        assert set(filtered) <= {"duplicate", "source_copy"} and sum(filtered.values()) >= 3  # stops after 3
