"""The store: atomic creation, edit history, gene versions, embeddings cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from datagen_core.config import Gene, Label, ProjectSpec
from datagen_core.errors import DatagenError
from datagen_core.store import Store

from .conftest import make_project


def test_failed_creation_leaves_no_file(home: Path) -> None:
    bad = pd.DataFrame({"text": ["a", "b"], "label": ["x", "y"]})
    path = home / "p.duckdb"
    with pytest.raises(Exception, match="duplicate key"):
        Store.create(path, ProjectSpec(name="p", task="t"), [Label(name="x"), Label(name="x")], bad, None)
    assert not path.exists()
    make_project(home, "p")
    with pytest.raises(DatagenError, match="already exists"):
        make_project(home, "p")


def test_edits_keep_history_and_never_lose_the_original(home: Path) -> None:
    with Store.open(make_project(home)) as store:
        sample_id = int(store.real_examples("HUM")["id"][0])
        original = store.real_examples("HUM")["text"][0]
        store.edit_sample(sample_id, text="Who wrote Hamlet ?")
        store.edit_sample(sample_id, text="Who wrote Macbeth ?", status="rejected")
        store.edit_sample(sample_id, label="LOC", actor="reviewer")
        store.edit_sample(sample_id, label="LOC")  # no change, no history row
        history = store.sample_history(sample_id)
        assert list(history["field"]) == ["text", "text", "status", "label"]
        assert history["old_value"][0] == original and history["new_value"][1] == "Who wrote Macbeth ?"
        assert history["actor"].iloc[-1] == "reviewer"
        with pytest.raises(DatagenError, match="status must be"):
            store.edit_sample(sample_id, status="maybe")
        with pytest.raises(DatagenError, match="unknown label 'ENTY'"):
            store.edit_sample(sample_id, label="ENTY")
        with pytest.raises(DatagenError, match="unknown sample"):
            store.edit_sample(10**9, text="x")


def test_gene_sets_are_versioned(home: Path) -> None:
    with Store.open(make_project(home, genes=False)) as store:
        assert store.gene_set() is None
        store.add_gene_set([Gene(name="tone")], "llm")
        store.add_gene_set([Gene(name="tone"), Gene(name="length", description="words")], "user")
        assert [s.version for s in store.gene_sets()] == [1, 2]
        assert store.gene_set(1).genes == (Gene(name="tone"),)
        assert store.gene_set().genes[1].description == "words"


def test_embedding_cache_round_trip(home: Path) -> None:
    with Store.open(make_project(home)) as store:
        vectors = {"h1": np.arange(4, dtype=np.float32), "h2": np.ones(4, dtype=np.float32)}
        store.put_embeddings("m", vectors)
        store.put_embeddings("m", {"h1": np.zeros(4, dtype=np.float32)})  # first write wins, no error
        got = store.embeddings("m", ["h1", "h2", "h3"])
        assert set(got) == {"h1", "h2"} and np.array_equal(got["h1"], vectors["h1"])
        assert store.embeddings("other", ["h1"]) == {}
