"""Retrieval-checked facts: BM25 by hand, hybrid retrieval on real Wikipedia paragraphs, and the fact check
against a scripted loopback judge (supported, contradicted, corrected, unusable, empty knowledge base)."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from datagen_core.checks import CHECKS, FactsCheck
from datagen_core.checks.apply import apply_check
from datagen_core.checks.knowledge import KnowledgeBase, add_passages, load_knowledge, read_documents, tokenize
from datagen_core.embed import Embedder
from datagen_core.errors import DatagenError
from datagen_core.llm import LLM
from datagen_core.records import NewSample, utcnow
from datagen_core.store import SampleFilter, Store

from .conftest import loopback_config, make_project, shared_csv
from .loopback_server import LoopbackServer

WIKI_PASSAGES = 150  # enough to make retrieval non-trivial, few enough to embed in seconds on 2 cores
HAINES = "Aubrey Leon Haines was born"
SUPPORTED = "Aubrey Haines earned a forestry degree from the University of Washington in 1938."
CHANGED = "Aubrey Haines earned a forestry degree from the University of Oregon in 1938."
CORRECTED = SUPPORTED
UNKNOWN = "The capital of Mars is Olympus City."
GARBAGE = "GARBAGE Haines liked forests."


@pytest.fixture(scope="module")
def kb_template(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    """A project with the first Wikipedia paragraphs loaded, built once and copied per test."""
    root = tmp_path_factory.mktemp("kb")
    source = root / "wiki.csv"
    pd.read_csv(shared_csv("wiki_paragraphs.csv")).head(WIKI_PASSAGES).to_csv(source, index=False)
    path = make_project(root / "projects", name="wiki")
    with Store.open(path) as store:
        assert load_knowledge(store, embedder, source) == WIKI_PASSAGES
        assert load_knowledge(store, embedder, source) == 0  # loading again adds nothing
    return path


@pytest.fixture
def kb_project(tmp_path: Path, kb_template: Path) -> Path:
    target = tmp_path / kb_template.name
    shutil.copy(kb_template, target)
    return target


def test_bm25_matches_a_hand_computed_score(home: Path, embedder: Embedder) -> None:
    docs = ["Cats chase mice.", "Dogs chase cats, and cats sleep.", "Birds sing."]
    with Store.open(make_project(home)) as store:
        assert store.kb_count() == 0 and store.kb_bm25(["cats"], 3) == []
        assert add_passages(store, embedder, [("toy", None, text) for text in docs]) == 3
        assert tokenize(docs[1]) == ["dogs", "chase", "cats", "cats", "sleep"]  # 'and' is a stop word
        avgdl = (3 + 5 + 2) / 3

        def term(tf: int, dl: int, n: int) -> float:
            idf = math.log(1 + (3 - n + 0.5) / (n + 0.5))
            return idf * tf * 2.2 / (tf + 1.2 * (1 - 0.75 + 0.75 * dl / avgdl))

        scores = dict(store.kb_bm25(tokenize("sleeping cats? cats sleep"), 3))
        assert set(scores) == {1, 2}
        assert scores[1] == pytest.approx(term(1, 3, 2))
        assert scores[2] == pytest.approx(term(2, 5, 2) + term(1, 5, 1))
        assert [doc for doc, _ in store.kb_bm25(["cats", "sleep"], 1)] == [2]


def test_read_documents_from_text_jsonl_and_bad_tables(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("First paragraph\nstill first.\n\n  \nSecond one.\n", encoding="utf-8")
    frame = read_documents(notes)
    assert list(frame["text"]) == ["First paragraph still first.", "Second one."]
    assert set(frame["source"]) == {"notes.txt"}
    lines = tmp_path / "docs.jsonl"
    lines.write_text('{"title": "A", "body": "alpha text"}\n{"title": "B", "body": ""}\n', encoding="utf-8")
    frame = read_documents(lines, text_col="body")
    assert list(frame["text"]) == ["alpha text"] and list(frame["title"]) == ["A"]
    with pytest.raises(DatagenError, match="no column 'text'"):
        read_documents(lines)
    (tmp_path / "notes.pdf").write_bytes(b"%PDF")
    with pytest.raises(DatagenError, match="unsupported file type"):
        read_documents(tmp_path / "notes.pdf")


def test_retrieval_finds_a_paragraph_from_its_distinctive_words(kb_project: Path, embedder: Embedder) -> None:
    with Store.open(kb_project) as store:
        documents = store.kb_documents()
        knowledge = KnowledgeBase(store, embedder)
        frequency: dict[str, int] = {}
        for text in documents["text"]:
            for word in set(tokenize(text)):
                frequency[word] = frequency.get(word, 0) + 1
        for row in documents.iloc[[0, 42, 99, 140]].itertuples():
            words = tokenize(row.text)
            distinctive = sorted(set(words), key=lambda w: (frequency[w], -words.count(w), w))[:5]
            query = " ".join(distinctive)
            assert knowledge.search_keywords(query, 1)[0][0] == row.id, query
            found = knowledge.retrieve(query, 3)
            assert found[0].doc_id == row.id and "bm25" in found[0].methods, query
            first_sentence = row.text.split(". ")[0]
            assert knowledge.search_embedding(first_sentence, 1)[0][0] == row.id
        haines = knowledge.retrieve(SUPPORTED, 3)
        assert haines[0].text.startswith(HAINES) and set(haines[0].methods) == {"embedding", "bm25"}
        assert haines[0].score == pytest.approx(2 / 61)  # first in both rankings


def entity_or_judge(body: dict[str, Any]) -> str:
    """Scripted LLM: entity requests by their prompt, judge requests by theirs; judges from the evidence."""
    prompt = body["messages"][-1]["content"]
    if prompt.startswith("List up to"):
        text = re.search(r"Text: (.*)\n", prompt).group(1)  # type: ignore[union-attr]
        if text.startswith("GARBAGE"):
            return "entities: Haines, forests"
        if "Mars" in text:
            return json.dumps({"entities": ["Mars", "Olympus City", "capital", "a fourth one"]})
        return json.dumps({"entities": ["Aubrey Haines", "University of Washington" if "Washington" in text
                                        else "University of Oregon"]})
    if "Passages:" in prompt:
        item = re.search(r"\nItem: (.*)\n", prompt).group(1)  # type: ignore[union-attr]
        if item.startswith("GARBAGE"):
            return "It looks right to me."
        evidence = prompt.split("Item:")[0]
        if "forestry from the University of Washington" not in evidence:
            return json.dumps({"verdict": "not_enough_evidence", "explanation": "nothing about this",
                               "correction": None})
        if "Oregon" in item:
            return json.dumps({"verdict": "contradicted", "explanation": "the degree was from Washington",
                               "correction": item.replace("Oregon", "Washington")})
        return json.dumps({"verdict": "supported", "explanation": "passage says so", "correction": None})
    return "OK"  # the connection check


def write_items(store: Store, texts: list[str]) -> dict[str, int]:
    ids = store.allocate_sample_ids(len(texts))
    samples = [NewSample(id=i, run_id="r1", label="HUM", text=text, method="test", parent_ids=(), gene_split=None,
                         prompt="", model="m", sampling={}, raw_response=text, llm_call_id="c", prompt_tokens=0,
                         completion_tokens=0, requested_at=utcnow())
               for i, text in zip(ids, texts, strict=True)]
    store.write_offspring(samples, [], {}, "none")
    return dict(zip(texts, ids, strict=True))


def details_of(store: Store, sample_id: int) -> dict[str, Any]:
    return json.loads(store.sample_checks(sample_id)["details"][0])


def test_fact_check_supports_contradicts_and_rejects(kb_project: Path, embedder: Embedder) -> None:
    assert CHECKS["facts"] is FactsCheck
    with Store.open(kb_project) as store, LoopbackServer(answer=entity_or_judge) as server:
        haines_id = int(store.kb_documents().query("text.str.startswith(@HAINES)", engine="python")["id"].iloc[0])
        ids = write_items(store, [SUPPORTED, CHANGED, UNKNOWN, GARBAGE])
        llm = LLM.from_config(loopback_config(server), store, use_cache=False, max_retries=0)
        check = FactsCheck(evidence=4, per_query=3)
        summary = apply_check(store, check, SampleFilter(origin="synthetic"), embedder, llm)
        assert summary.checked == 4 and summary.kept == 2 and summary.corrected == 0
        assert dict(summary.rejected) == {"contradicted": 1, "judge_unusable": 1}
        rows = store.samples_by_ids(list(ids.values())).set_index("id")
        assert list(rows.loc[[ids[SUPPORTED], ids[UNKNOWN]], "status"]) == ["pending", "pending"]
        assert list(rows.loc[[ids[CHANGED], ids[GARBAGE]], "status"]) == ["rejected", "rejected"]

        supported = details_of(store, ids[SUPPORTED])
        assert supported["verdict"] == "supported" and supported["explanation"] == "passage says so"
        assert supported["entities"] == ["Aubrey Haines", "University of Washington"]
        assert 1 <= len(supported["evidence"]) <= 4
        first = supported["evidence"][0]
        assert first["doc_id"] == haines_id and first["text"].startswith(HAINES) and len(first["text"]) <= 300
        assert set(first["methods"]) == {"embedding", "bm25"} and first["score"] > 0
        assert json.loads(store.sample_checks(ids[SUPPORTED])["options"][0]) == check.options()

        changed = store.sample_checks(ids[CHANGED])
        assert changed["reason"][0] == "contradicted"
        assert json.loads(changed["details"][0])["correction"] == CORRECTED
        unknown = details_of(store, ids[UNKNOWN])
        assert unknown["verdict"] == "not_enough_evidence" and len(unknown["entities"]) == 3  # capped at 3
        garbage = details_of(store, ids[GARBAGE])
        assert len(garbage["entity_problems"]) == 3 and garbage["entities"] == []  # fell back to the item text
        assert len(garbage["judge_problems"]) == 3 and garbage["evidence"][0]["doc_id"] == haines_id
        usage = dict(store.cursor().execute(
            "SELECT purpose, count(*) FROM llm_calls GROUP BY purpose ORDER BY purpose").fetchall())
        assert usage["facts_entities"] == 6 and usage["facts_judge"] == 6  # 3 good + 3 tries for each garbage


def test_fact_check_correction_mode_rewrites(kb_project: Path, embedder: Embedder) -> None:
    with Store.open(kb_project) as store, LoopbackServer(answer=entity_or_judge) as server:
        ids = write_items(store, [SUPPORTED, CHANGED])
        llm = LLM.from_config(loopback_config(server), store, use_cache=False, max_retries=0)
        summary = apply_check(store, FactsCheck(correct=True), SampleFilter(origin="synthetic"), embedder, llm)
        assert summary.kept == 2 and summary.corrected == 1 and not summary.rejected
        rows = store.samples_by_ids([ids[CHANGED]]).set_index("id")
        assert rows.loc[ids[CHANGED], "text"] == CORRECTED and rows.loc[ids[CHANGED], "status"] == "pending"
        history = store.sample_history(ids[CHANGED])
        assert list(history["old_value"]) == [CHANGED] and history["actor"][0] == "check:facts"
        record = details_of(store, ids[CHANGED])
        assert record["verdict"] == "contradicted" and record["corrected"] is True


def test_fact_check_needs_a_knowledge_base(home: Path, embedder: Embedder) -> None:
    with Store.open(make_project(home)) as store, LoopbackServer(answer=entity_or_judge) as server:
        write_items(store, [SUPPORTED])
        llm = LLM.from_config(loopback_config(server), store, use_cache=False, max_retries=0)
        with pytest.raises(DatagenError, match="load a knowledge base first"):
            apply_check(store, FactsCheck(), SampleFilter(origin="synthetic"), embedder, llm)
        assert server.stats.completions <= 1  # at most the connection check: nothing was judged
    with pytest.raises(DatagenError, match="unknown retrieval"):
        FactsCheck(retrieval="psychic")
