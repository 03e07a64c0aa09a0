"""The Review page in AppTest: filter, page, accept one, edit text, table edits, bulk reject; checked in the store."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from datagen_core.demo import DEMO_PROJECT
from datagen_core.store import SampleFilter, Store

from .studio_helpers import Studio, studio_session
from .test_review_store import add_offspring, new_run

PAGE = "pages/review.py"
SPAM = [f"WINNER! Claim prize {i} now, txt WIN to 8000{i}" for i in range(5)]
HAM = [f"Running late, see you at the cafe at {i} pm" for i in range(3)]


@pytest.fixture
def studio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Studio]:
    yield from studio_session(tmp_path, monkeypatch)


@pytest.fixture
def review(studio: Studio) -> tuple[AppTest, Store, list[int], list[int]]:
    """The demo project (60 accepted real seeds) plus 5 spam and 3 ham pending offspring, on the Review page."""
    at = studio.open_page(PAGE)
    store = studio.workspace().store(DEMO_PROJECT)
    new_run(store, "r1")
    spam = add_offspring(store, "r1", "spam", SPAM)
    ham = add_offspring(store, "r1", "ham", HAM)
    add_offspring(store, "r1", "spam", ["I'm sorry, I cannot write that."], "refusal")
    at.run()
    return at, store, spam, ham


def summary(at: AppTest) -> str:
    return next(m.value for m in at.markdown if "sample(s) match" in m.value)


def ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_filters_and_pages(review: tuple[AppTest, Store, list[int], list[int]]) -> None:
    at, _, spam, _ = review
    ok(at)
    assert summary(at) == "**68** sample(s) match · showing 1–25 · page 1 of 3"
    at.number_input(key="review_page").set_value(3).run()
    assert summary(at) == "**68** sample(s) match · showing 51–68 · page 3 of 3"
    assert at.selectbox(key="review_focus").options[0].startswith("#51 ")  # oldest first: ids 51..68
    at.multiselect(key="review_statuses").set_value(["pending"]).run()
    assert summary(at) == "**8** sample(s) match · showing 1–8 · page 1 of 1"  # a new filter goes back to page 1
    at.multiselect(key="review_labels").set_value(["spam"]).run()
    assert summary(at).startswith("**5** sample(s)")
    at.checkbox(key="review_filtered").check().run()
    assert summary(at).startswith("**6** sample(s)")
    at.text_input(key="review_search").input("prize 3").run()
    assert summary(at).startswith("**1** sample(s)")
    assert at.selectbox(key="review_focus").value == spam[3]
    at.text_input(key="review_search").input("").run()
    at.checkbox(key="review_filtered").uncheck().run()
    at.selectbox(key="review_origin").set_value("real").run()
    assert summary(at).startswith("**0** sample(s)")
    assert any("No sample matches" in i.value for i in at.info)
    at.selectbox(key="review_origin").set_value("synthetic").run()
    at.multiselect(key="review_statuses").set_value([]).run()
    at.multiselect(key="review_runs").set_value(["r1"]).run()
    at.selectbox(key="review_order").set_value("newest first").run()
    assert at.selectbox(key="review_focus").options[0].startswith(f"#{spam[-1]} ")
    ok(at)


def test_accept_one_edit_text_and_see_the_history(review: tuple[AppTest, Store, list[int], list[int]]) -> None:
    at, store, spam, _ = review
    at.multiselect(key="review_statuses").set_value(["pending"]).run()
    assert at.selectbox(key="review_focus").value == spam[0]
    at.button(key=f"FormSubmitter:review_one_{spam[0]}-Accept").click().run()
    ok(at)
    assert store.samples_by_ids([spam[0]])["status"][0] == "accepted"
    assert any(f"#{spam[0]} accepted" in s.value for s in at.success)
    assert summary(at).startswith("**7** sample(s)")  # it left the pending filter
    assert at.selectbox(key="review_focus").value == spam[1]  # focus moved on to the next one

    at.text_area(key=f"review_text_{spam[1]}").input("WINNER!! You won a cruise, call 0800 now")
    at.selectbox(key=f"review_label_{spam[1]}").set_value("spam")
    at.button(key=f"FormSubmitter:review_one_{spam[1]}-Save").click().run()
    ok(at)
    row = store.samples_by_ids([spam[1]]).iloc[0]
    assert (row["text"], row["label"], row["status"]) == ("WINNER!! You won a cruise, call 0800 now", "spam",
                                                          "pending")
    history = store.sample_history(spam[1])
    assert list(zip(history["field"], history["old_value"], history["new_value"], history["actor"],
                    strict=True)) == [("text", SPAM[1], "WINNER!! You won a cruise, call 0800 now", "studio")]
    assert at.selectbox(key="review_focus").value == spam[1]  # Save stays on the sample
    assert at.text_area(key=f"review_text_{spam[1]}").value == "WINNER!! You won a cruise, call 0800 now"
    assert any(e.label == f"History of #{spam[1]} (1 change(s))" for e in at.expander)

    at.text_area(key=f"review_text_{spam[1]}").input("   ")
    at.button(key=f"FormSubmitter:review_one_{spam[1]}-Reject").click().run()
    assert any("cannot be empty" in e.value for e in at.error)
    assert store.samples_by_ids([spam[1]])["status"][0] == "pending"  # nothing half-applied


def test_table_edits_apply_only_changed_cells(review: tuple[AppTest, Store, list[int], list[int]]) -> None:
    at, store, spam, _ = review
    at.multiselect(key="review_statuses").set_value(["pending"]).run()
    key = f"review_editor_{at.session_state['review_editor_version']}"
    # the grid cannot be typed into from AppTest: seed its state as the browser would send it
    at.session_state[key] = {"edited_rows": {0: {"label": "ham"}, 2: {"status": "rejected", "text": "Edited!"}},
                             "added_rows": [], "deleted_rows": []}
    at.button(key="review_save_table").click().run()
    ok(at)
    assert any("Saved 2 edited sample(s)" in s.value for s in at.success)
    assert store.samples_by_ids([spam[0]])["label"][0] == "ham"
    third = store.samples_by_ids([spam[2]]).iloc[0]
    assert (third["status"], third["text"]) == ("rejected", "Edited!")
    untouched = store.samples_by_ids([spam[1]]).iloc[0]
    assert (untouched["label"], untouched["status"], untouched["text"]) == ("spam", "pending", SPAM[1])
    edits = store.cursor().execute("SELECT sample_id, field FROM sample_edits ORDER BY sample_id, field").fetchall()
    assert edits == [(spam[0], "label"), (spam[2], "status"), (spam[2], "text")]
    assert at.session_state["review_editor_version"] > int(key.rsplit("_", 1)[1])  # a fresh grid after saving


def test_bulk_reject_asks_first_and_changes_only_the_filtered_set(
    review: tuple[AppTest, Store, list[int], list[int]],
) -> None:
    at, store, spam, _ = review
    at.multiselect(key="review_labels").set_value(["spam"]).run()
    at.multiselect(key="review_statuses").set_value(["pending"]).run()
    at.selectbox(key="review_bulk_status").set_value("rejected").run()
    at.button(key="review_bulk_ask").click().run()
    assert any("Set **rejected** on all 5 sample(s)" in w.value for w in at.warning)
    assert store.count_samples(SampleFilter(statuses=("rejected",))) == 0  # nothing before the confirmation
    at.button(key="review_bulk_cancel").click().run()
    assert not at.warning and store.count_samples(SampleFilter(statuses=("rejected",))) == 0

    at.button(key="review_bulk_ask").click().run()
    at.button(key="review_bulk_confirm").click().run()
    ok(at)
    assert any("5 sample(s) set to rejected" in s.value for s in at.success)
    assert sorted(store.sample_page(SampleFilter(statuses=("rejected",)))["id"]) == spam
    assert set(store.sample_page(SampleFilter(labels=("ham",), origin="synthetic"))["status"]) == {"pending"}
    refusal = store.sample_page(SampleFilter(include_filtered=True, search="sorry"))
    assert list(refusal["status"]) == ["pending"]  # filtered outputs were not shown, so not touched
    history = store.cursor().execute("SELECT count(*), min(actor) FROM sample_edits").fetchall()
    assert history == [(5, "studio")]
    assert summary(at).startswith("**0** sample(s)")

    # a question asked under one filter is dropped when the filter changes
    at.multiselect(key="review_labels").set_value(["ham"]).run()
    at.button(key="review_bulk_ask").click().run()
    at.multiselect(key="review_labels").set_value([]).run()
    assert not at.warning and "review_bulk_confirm" not in [b.key for b in at.button]
    assert store.count_samples(SampleFilter(statuses=("rejected",))) == 5


def test_group_check_on_the_filtered_samples(studio: Studio) -> None:
    at = studio.open_page(PAGE)
    store = studio.workspace().store(DEMO_PROJECT)
    new_run(store, "r2")
    seed = str(store.real_examples("ham")["text"][0])
    copy, fresh = add_offspring(store, "r2", "ham", [seed + " !!", "Running late, the bus broke down near the bridge"])
    at.run()
    at.selectbox(key="review_origin").set_value("synthetic").run()
    at.selectbox(key="review_check").set_value("dedup").run()
    at.button(key="review_check_run").click().run()
    ok(at)
    assert any(re.search(r"checked 2, kept 1, rejected near_duplicate_(text|embedding) 1", s.value)
               for s in at.success), [s.value for s in at.success]
    rows = store.samples_by_ids([copy, fresh]).set_index("id")
    assert rows.loc[copy, "status"] == "rejected" and rows.loc[fresh, "status"] == "pending"
    assert store.sample_checks(copy)["reason"][0].startswith("near_duplicate_")
    assert store.sample_history(copy)["actor"][0] == "check:dedup"
