"""What the Review page relies on in the store: filters, server-side pages, edits, bulk status, concurrency."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytest

from datagen_core.config import LLMConfig, RunConfig, SamplingParams
from datagen_core.errors import DatagenError
from datagen_core.records import GeneSplit, NewSample, text_hash, utcnow
from datagen_core.store import SampleFilter, Store

from .conftest import make_project

SPLIT = GeneSplit(parent1=("length", "style"), parent2=("subtopic",), mutated=("wh-word",))


def new_run(store: Store, run_id: str) -> str:
    config = RunConfig(per_label=100, seed=1, sampling=SamplingParams())
    store.create_run(run_id, config, 1, LLMConfig())
    return run_id


def add_offspring(
    store: Store, run_id: str, label: str, texts: Sequence[str], filter_reason: str | None = None,
    parents: tuple[int, int] | None = None,
) -> list[int]:
    """Offspring written as the runner writes them (one transaction), with parents from the label's seeds."""
    seeds = parents or tuple(int(i) for i in store.real_examples(label)["id"][:2])
    ids = store.allocate_sample_ids(len(texts))
    samples = [
        NewSample(id=i, run_id=run_id, label=label, text=t, method="genetic", parent_ids=(seeds[0], seeds[1]),
                  gene_split=SPLIT, prompt="p", model="m", sampling={}, raw_response=t, llm_call_id=f"c{i}",
                  prompt_tokens=1, completion_tokens=1, requested_at=utcnow(), filter_reason=filter_reason)
        for i, t in zip(ids, texts, strict=True)
    ]
    store.write_offspring(samples, [], {}, "none")
    return ids


@pytest.fixture
def store(home: Path) -> Store:
    """18 real seeds (HUM, LOC, NUM) and two runs: a: 4 HUM + 3 LOC kept, 2 HUM filtered; b: 5 NUM kept."""
    opened = Store.open(make_project(home))
    new_run(opened, "a")
    new_run(opened, "b")
    add_offspring(opened, "a", "HUM", [f"Who painted picture {i} ?" for i in range(4)])
    add_offspring(opened, "a", "LOC", [f"Where is Lake {i} ?" for i in range(3)])
    add_offspring(opened, "a", "HUM", ["I'm sorry, I cannot.", "Who painted picture 0 ?"], "refusal")
    add_offspring(opened, "b", "NUM", [f"How many MOONS does planet {i} have ?" for i in range(5)])
    yield opened
    opened.close()


def ids_of(store: Store, chosen: SampleFilter) -> set[int]:
    return {int(i) for i in store.sample_page(chosen)["id"]}


def test_filters_combine_and_counts_match_the_listing(store: Store) -> None:
    everything = store.sample_page(SampleFilter(include_filtered=True))
    assert len(everything) == 18 + 4 + 3 + 2 + 5
    cases = {
        SampleFilter(): 18 + 12,
        SampleFilter(include_filtered=True): 32,
        SampleFilter(origin="real"): 18,
        SampleFilter(origin="synthetic"): 12,
        SampleFilter(origin="synthetic", include_filtered=True): 14,
        SampleFilter(run_ids=("a",)): 7,
        SampleFilter(run_ids=("a",), include_filtered=True): 9,
        SampleFilter(run_ids=("a", "b")): 12,
        SampleFilter(labels=("HUM",)): 6 + 4,
        SampleFilter(labels=("HUM", "NUM")): 6 + 4 + 6 + 5,
        SampleFilter(labels=("HUM",), origin="real"): 6,
        SampleFilter(labels=("LOC",), run_ids=("b",)): 0,
        SampleFilter(statuses=("pending",)): 12,
        SampleFilter(statuses=("accepted",)): 18,  # real seeds are accepted on import
        SampleFilter(statuses=("pending", "accepted")): 30,
        SampleFilter(search="moons"): 5,  # case-insensitive
        SampleFilter(search="  Lake 2 "): 1,  # trimmed
        SampleFilter(search="cannot", include_filtered=True): 1,
        SampleFilter(search="cannot"): 0,
        SampleFilter(search="picture", labels=("HUM",), run_ids=("a",), statuses=("pending",)): 4,
    }
    for chosen, expected in cases.items():
        assert store.count_samples(chosen) == expected, chosen
        assert len(store.sample_page(chosen)) == expected, chosen
    page = store.sample_page(SampleFilter(labels=("LOC",), origin="synthetic"))
    assert set(page["label"]) == {"LOC"} and set(page["origin"]) == {"synthetic"} and set(page["run_id"]) == {"a"}
    filtered = store.sample_page(SampleFilter(run_ids=("a",), include_filtered=True, search="sorry"))
    assert list(filtered["filter_reason"]) == ["refusal"]


def test_pages_cover_the_filter_once_in_order(store: Store) -> None:
    chosen = SampleFilter(include_filtered=True)
    full = list(store.sample_page(chosen)["id"])
    assert full == sorted(full, reverse=True)  # newest first by default
    pages = [list(store.sample_page(chosen, offset=offset, limit=7)["id"]) for offset in range(0, 35, 7)]
    assert [len(p) for p in pages] == [7, 7, 7, 7, 4]
    assert list(itertools.chain(*pages)) == full
    oldest = [list(store.sample_page(chosen, offset=o, limit=10, order="oldest")["id"]) for o in (0, 10, 20, 30)]
    assert list(itertools.chain(*oldest)) == sorted(full)
    assert store.sample_page(chosen, offset=100, limit=10).empty
    narrow = SampleFilter(labels=("HUM",), origin="synthetic", include_filtered=True)
    assert list(store.sample_page(narrow, offset=2, limit=2)["id"]) == list(store.sample_page(narrow)["id"])[2:4]
    with pytest.raises(ValueError, match="unsupported order"):
        store.sample_page(chosen, order="text; DROP TABLE samples")


def test_bulk_status_keeps_history_counts_changes_and_is_idempotent(store: Store) -> None:
    chosen = SampleFilter(run_ids=("a",), labels=("HUM",))
    before_other = store.sample_page(SampleFilter(run_ids=("b",)))
    assert store.set_status_where(chosen, "rejected", actor="studio") == 4
    assert set(store.sample_page(chosen)["status"]) == {"rejected"}
    assert store.set_status_where(chosen, "rejected", actor="studio") == 0  # nothing changes, no history
    edits = store.cursor().execute("SELECT * FROM sample_edits").df()
    assert len(edits) == 4 and set(edits["field"]) == {"status"} and set(edits["actor"]) == {"studio"}
    assert set(edits["old_value"]) == {"pending"} and set(edits["new_value"]) == {"rejected"}
    assert set(edits["sample_id"]) == ids_of(store, chosen)
    # the filtered refusals of the same run and label stay as they were (bulk acts on what the filter shows)
    refusals = store.sample_page(SampleFilter(run_ids=("a",), include_filtered=True, search="sorry"))
    assert list(refusals["status"]) == ["pending"]
    pd.testing.assert_frame_equal(store.sample_page(SampleFilter(run_ids=("b",))), before_other)
    # a wider filter changes only the rows not already at the target
    assert store.set_status_where(SampleFilter(run_ids=("a",)), "rejected") == 3
    assert store.set_status_where(SampleFilter(run_ids=("a",)), "accepted") == 7
    history = store.sample_history(int(store.sample_page(chosen)["id"][0]))
    assert list(history["new_value"]) == ["rejected", "accepted"]
    assert store.set_status_where(SampleFilter(search="no such text"), "accepted") == 0
    with pytest.raises(DatagenError, match="status must be"):
        store.set_status_where(chosen, "maybe")


def test_edit_sample_validates_and_keeps_every_change(store: Store) -> None:
    sample_id = int(store.sample_page(SampleFilter(run_ids=("b",)), limit=1)["id"][0])
    original = store.samples_by_ids([sample_id])["text"][0]
    store.edit_sample(sample_id, text="How many rings does Saturn have ?", label="NUM", status="accepted",
                      actor="studio")  # the label does not change: no history row for it
    store.edit_sample(sample_id, label="LOC", actor="studio")
    with pytest.raises(DatagenError, match="unknown label"):
        store.edit_sample(sample_id, label="NOPE")
    for empty in ("", "   \n"):
        with pytest.raises(DatagenError, match="cannot be empty"):
            store.edit_sample(sample_id, text=empty)
    history = store.sample_history(sample_id)
    assert list(zip(history["field"], history["old_value"], history["new_value"], strict=True)) == [
        ("text", original, "How many rings does Saturn have ?"),
        ("status", "pending", "accepted"),
        ("label", "NUM", "LOC"),
    ]
    row = store.samples_by_ids([sample_id]).iloc[0]
    assert (row["text"], row["label"], row["status"]) == ("How many rings does Saturn have ?", "LOC", "accepted")
    stored_hash = store.cursor().execute("SELECT text_hash FROM samples WHERE id = ?", [sample_id]).fetchall()
    assert stored_hash[0][0] == text_hash("How many rings does Saturn have ?")  # the map places the new text
    assert ids_of(store, SampleFilter(search="saturn")) == {sample_id}
    assert ids_of(store, SampleFilter(labels=("LOC",), statuses=("accepted",), origin="synthetic")) == {sample_id}


def test_concurrent_edits_bulk_updates_and_a_writer_lose_nothing(store: Store) -> None:
    """Editors and bulk updates hit the same rows while offspring land: every change is in the history."""
    real = store.real_examples()
    rows = [int(i) for i in real["id"]]
    owned = {name: rows[k::3] for k, name in enumerate(("e0", "e1", "e2"))}  # each editor owns its rows' texts
    rounds = 12
    errors: list[BaseException] = []
    bulk_changed: list[int] = []
    written: list[int] = []
    start = threading.Barrier(5)

    def guard(work: object) -> object:
        def run() -> None:
            try:
                start.wait()
                work()  # type: ignore[operator]
            except BaseException as exc:
                errors.append(exc)
        return run

    def editor(name: str) -> None:
        labels = ["HUM", "LOC", "NUM"]
        for r in range(rounds):
            for sample_id in owned[name]:
                store.edit_sample(sample_id, text=f"{name} round {r} sample {sample_id} ?",
                                  label=labels[(r + sample_id) % 3], status=("accepted", "rejected")[r % 2],
                                  actor=name)

    def bulk() -> None:  # flips the status of every real seed back and forth, over the editors' rows
        for r in range(rounds):
            bulk_changed.append(store.set_status_where(SampleFilter(origin="real"), ("pending", "accepted")[r % 2],
                                                       actor="bulk"))

    # the parents are chosen before the editors start relabelling the seeds they would be looked up by
    parents = (rows[0], rows[1])

    def writer() -> None:
        run_id = new_run(store, "w")
        for batch in range(15):
            texts = [f"How far is star {batch}-{i} ?" for i in range(4)]
            written.extend(add_offspring(store, run_id, "NUM", texts, parents=parents))

    threads = [threading.Thread(target=guard(lambda n=n: editor(n))) for n in owned]
    threads += [threading.Thread(target=guard(bulk)), threading.Thread(target=guard(writer))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors

    edits = store.cursor().execute("SELECT * FROM sample_edits ORDER BY edited_at").df()
    current = store.samples_by_ids(rows).set_index("id")
    original = real.set_index("id")
    for name, mine in owned.items():
        for sample_id in mine:
            # texts are unique per edit: the chain from the original to the final text has every edit, in order
            texts = edits[(edits["sample_id"] == sample_id) & (edits["field"] == "text")]
            assert list(texts["actor"]) == [name] * rounds
            assert texts["old_value"].iloc[0] == original.loc[sample_id, "text"]
            assert list(texts["old_value"])[1:] == list(texts["new_value"])[:-1]
            assert current.loc[sample_id, "text"] == f"{name} round {rounds - 1} sample {sample_id} ?"
            for field in ("label", "status"):  # every change follows the previous one: none was overwritten
                chain = edits[(edits["sample_id"] == sample_id) & (edits["field"] == field)]
                assert list(chain["old_value"])[1:] == list(chain["new_value"])[:-1], (sample_id, field)
                if len(chain):
                    assert current.loc[sample_id, field] == chain["new_value"].iloc[-1]
            assert current.loc[sample_id, "label"] == ["HUM", "LOC", "NUM"][(rounds - 1 + sample_id) % 3]
    assert (edits["actor"] == "bulk").sum() == sum(bulk_changed) > 0
    assert len(written) == 60
    assert store.count_samples(SampleFilter(run_ids=("w",))) == 60
    assert ids_of(store, SampleFilter(run_ids=("w",))) == set(written)
