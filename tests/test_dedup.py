"""Group checking (dedup): hand-computable similarity, in-batch and pool duplicates, and the CLI on a real run."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from datagen_core.checks import CheckContext, DedupCheck, Item
from datagen_core.checks.dedup import jaccard, shingles
from datagen_core.config import RunConfig, SamplingParams
from datagen_core.embed import Embedder
from datagen_core.engine.runner import run_generation
from datagen_core.engine.runs import start_run
from datagen_core.store import Store

from .conftest import loopback_config, make_project
from .loopback_server import LoopbackServer, deterministic_text
from .test_cli import run_cli


def test_shingles_and_jaccard_by_hand() -> None:
    assert shingles("Where is the Eiffel tower?") == {("where", "is", "the"), ("is", "the", "eiffel"),
                                                       ("the", "eiffel", "tower")}
    assert shingles("Hi there") == {("hi", "there")}
    assert shingles("") == set()
    a, b = shingles("a b c d"), shingles("a b c e")  # {abc, bcd} vs {abc, bce}: 1 shared of 3
    assert jaccard(a, b) == pytest.approx(1 / 3)
    assert jaccard(set(), set()) == 1.0


def check(items: list[Item], store: Store, embedder: Embedder, **options: Any) -> list[Any]:
    return asyncio.run(DedupCheck(**options).check(items, CheckContext(store, embedder)))


def test_pool_and_in_batch_duplicates(home: Path, embedder: Embedder) -> None:
    with Store.open(make_project(home)) as store:
        seed = store.real_examples("HUM")["text"][0]
        items = [
            Item(None, "HUM", seed.upper() + " !"),  # the same question, shouted: same embedding region
            Item(None, "NUM", "How many moons does Jupiter have according to the latest count ?"),
            Item(None, "NUM", "How many moons does Jupiter have according to the latest count?"),  # in-batch repeat
            Item(None, "LOC", "Which river flows through the middle of Budapest ?"),
        ]
        verdicts = check(items, store, embedder)
        assert [v.keep for v in verdicts] == [False, True, False, True]
        assert verdicts[0].reason == "near_duplicate_embedding" and verdicts[0].details["distance"] < 0.3
        assert verdicts[0].details["nearest_id"] == int(store.real_examples("HUM")["id"][0])
        assert verdicts[2].details["nearest_id"] is None  # its twin is the unsaved item kept before it
        assert verdicts[1].details["distance"] >= 0.3


def test_text_near_duplicates_are_caught_among_neighbours(home: Path, embedder: Embedder) -> None:
    with Store.open(make_project(home)) as store:
        seed = store.real_examples("LOC")["text"][0]
        words = seed.split()
        variant = " ".join([*words[:-1], "please", words[-1]])  # one word inserted: most shingles survive
        expected = jaccard(shingles(seed), shingles(variant))
        verdicts = check([Item(None, "LOC", variant)], store, embedder, distance=0.0,
                         text_similarity=min(expected, 0.99))
        assert not verdicts[0].keep and verdicts[0].reason == "near_duplicate_text"
        assert verdicts[0].details["text_similarity"] == pytest.approx(expected, abs=1e-4)
        kept = check([Item(None, "LOC", variant)], store, embedder, distance=0.0, text_similarity=expected + 0.01)
        assert kept[0].keep


def near_copies(body: dict[str, Any]) -> str:
    """Every third answer repeats parent 1 with a trailing remark: a near-duplicate the run loop cannot see."""
    text = deterministic_text(body["messages"], body.get("seed"))
    parent = re.search(r"Example 1: (.+)\n", body["messages"][-1]["content"])
    if parent and int(re.sub(r"\D", "", text)[:6] or "0") % 3 == 0:
        return parent.group(1) + " Thanks!"
    return text


def test_cli_check_rejects_near_duplicates_and_keeps_the_record(
    home: Path, embedder: Embedder, capsys: pytest.CaptureFixture[str]
) -> None:
    path = make_project(home)
    with Store.open(path) as store, LoopbackServer(answer=near_copies) as server:
        llm_config = loopback_config(server, max_in_flight=4)
        run_id = start_run(store, RunConfig(per_label=8, seed=3, sampling=SamplingParams(max_tokens=64)), llm_config)
        run_generation(store, llm_config, run_id, embedder=embedder)
        copies = store.samples(run_id=run_id)
        copies = copies[copies["text"].str.endswith(" Thanks!")]
        assert len(copies) > 0
    code, out, err = run_cli(capsys, home, "check", "trec", "--check", "dedup", "--run", run_id)
    assert code == 0, err
    with Store.open(path) as store:
        rows = store.samples(run_id=run_id)
        rejected = rows[rows["status"] == "rejected"]
        assert set(copies["id"]) <= set(rejected["id"])  # every near-copy of a parent is caught
        assert f"checked {len(rows)}" in out and f"kept {len(rows) - len(rejected)}" in out
        sample_id = int(copies["id"].iloc[0])
        history = store.sample_history(sample_id)
        assert list(history["new_value"]) == ["rejected"] and history["actor"].iloc[0] == "check:dedup"
        record = store.sample_checks(sample_id)
        assert not record["keep"].iloc[0] and record["reason"].iloc[0].startswith("near_duplicate")
        assert json.loads(record["options"].iloc[0])["distance"] == 0.3
        assert len(rows) == 24  # rejected samples stay in the store
    code, _, err = run_cli(capsys, home, "check", "trec", "--check", "spellcheck")
    assert code == 1 and "--check must be one of" in err
