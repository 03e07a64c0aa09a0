"""DataGen-style generation: diverse example selection, several items per call, exact targets, bad JSON."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from datagen_core.config import RunConfig, SamplingParams
from datagen_core.embed import Embedder
from datagen_core.engine.runner import run_generation
from datagen_core.engine.runs import start_run
from datagen_core.methods.datagen import DataGenOptions, greedy_diverse, kmeans_clusters
from datagen_core.store import Store, project_path

from .conftest import loopback_config, make_project
from .loopback_server import LoopbackServer


def test_greedy_selection_raises_the_threshold_until_enough_are_diverse() -> None:
    a, b, c = np.eye(3, dtype=np.float32)
    near_a = np.array([0.99, 0.141, 0.0], dtype=np.float32)
    vectors = np.stack([a, near_a, b, c])
    # t = 0 keeps only the first; t = 0.05 admits b and c (similarity 0) but never near_a (0.99)
    assert greedy_diverse(vectors, 3, [0, 1, 2, 3]) == [0, 2, 3]
    assert greedy_diverse(vectors, 4, [0, 1, 2, 3]) == [0, 1, 2, 3]  # four need a threshold above 0.99
    assert greedy_diverse(vectors, 2, [1, 0, 2, 3]) == [1, 3]  # b is 0.141 from near_a, c is 0
    assert greedy_diverse(np.stack([a, a, a]), 2, [0, 1, 2]) == [0, 1]  # only duplicates: the first k


def test_kmeans_groups_cover_every_row_once() -> None:
    rng = np.random.default_rng(0)
    rows = np.concatenate([rng.normal(loc, 0.05, size=(5, 4)) for loc in (-1.0, 0.0, 1.0)])
    clusters = kmeans_clusters(rows, 3, seed=1)
    assert sorted(len(c) for c in clusters) == [5, 5, 5]
    assert sorted(i for c in clusters for i in c) == list(range(15))


def items_answer(body: dict[str, Any]) -> str:
    """N items when asked for N; one more than asked now and then; broken JSON now and then."""
    prompt = body["messages"][-1]["content"]
    asked = re.search(r"Write (\d+) new items", prompt)
    if asked is None:
        return "OK"
    digest = hashlib.sha256((prompt + str(body.get("seed"))).encode()).hexdigest()
    if digest[0] in "01":
        return '{"items": [{"text": "unterminated'
    count = int(asked.group(1)) + (1 if digest[1] in "012" else 0)
    return json.dumps({"items": [{"text": f"question {digest[:8]}-{i} about something new ?"}
                                 for i in range(count)]})


def test_datagen_runs_reach_exact_targets_with_several_items_per_call(home: Path, embedder: Embedder) -> None:
    path = make_project(home, per_label=6)
    config = RunConfig(per_label=7, seed=5, sampling=SamplingParams(max_tokens=40), method="datagen",
                       options=DataGenOptions(items_per_call=3, examples=3))
    with Store.open(path) as store, LoopbackServer(answer=items_answer) as server:
        llm_config = loopback_config(server, max_in_flight=4)
        run_id = start_run(store, config, llm_config)
        summary = run_generation(store, llm_config, run_id, embedder=embedder)
        assert summary.status == "completed"
        assert store.kept_counts(run_id) == {"HUM": 7, "LOC": 7, "NUM": 7}
        rows = store.samples(run_id=run_id, include_filtered=True)
        filtered = rows[rows["filter_reason"].notna()]
        assert set(filtered["filter_reason"]) <= {"invalid_json", "extra_item", "duplicate"}
        kept = rows[rows["filter_reason"].isna()]
        for label, group in kept.groupby("label"):
            real = set(store.real_examples(label)["id"])
            for row in group.itertuples():
                assert len(row.parent_ids) == 3 and set(row.parent_ids) <= real  # diverse real examples shown
                assert "Write " in row.prompt and f"'{label}' category" in row.prompt
        details = [json.loads(d) for d in kept["details"]]
        assert any(d.get("items", 1) > 1 for d in details)  # several samples came from one call
        assert all(d["selection"] == "greedy" for d in details)
        calls = store.cursor().execute(
            "SELECT params FROM llm_calls WHERE run_id = ? AND purpose = 'datagen'", [run_id]).fetchall()
        params = [json.loads(p) for (p,) in calls]
        assert all(p["schema"] is not None and p["max_tokens"] <= 120 for p in params)
        # a call asks for at most what its label still needed: never more than 3, and 1 for the last one
        assert {int(re.search(r"Write (\d+) new items", r.prompt).group(1)) for r in kept.itertuples()} <= {1, 2, 3}


def test_cli_datagen_run_with_kmeans_examples(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from .test_cli import run_cli

    make_project(home, per_label=6)
    with LoopbackServer(answer=items_answer) as server:
        endpoint = ["--base-url", server.base_url, "--model", "loopback"]
        code, _, err = run_cli(capsys, home, "run", "trec", "--per-label", "4", "--method", "datagen",
                               "--items-per-call", "2", "--diverse", "kmeans", "--seed", "9", *endpoint)
        assert code == 0, err
        code, _, err = run_cli(capsys, home, "run", "trec", "--per-label", "4", "--method", "datagen",
                               "--diverse", "random", *endpoint)
        assert code == 1 and "--diverse must be 'greedy' or 'kmeans'" in err
    with Store.open(project_path(home, "trec")) as store:
        (run,) = store.runs()
        assert run.config.options.items_per_call == 2 and run.config.options.selection == "kmeans"
        assert store.kept_counts(run.id) == {"HUM": 4, "LOC": 4, "NUM": 4}
        details = [json.loads(d) for d in store.samples(run_id=run.id)["details"]]
        assert {d["selection"] for d in details} == {"kmeans"}
