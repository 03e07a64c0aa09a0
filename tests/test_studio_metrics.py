"""The Metrics page in AppTest: compute in the background once and read the cache after, held-out data, the Project
page's hold-out."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from datagen_core.config import Label, ProjectSpec
from datagen_core.demo import DEMO_PROJECT
from datagen_core.errors import DatagenError
from datagen_core.evaluation.evaluator import REAL, Evaluation, Evaluator
from datagen_core.evaluation.jobs import JobStep
from datagen_core.evaluation.trainers import ProgressFn
from datagen_core.store import Store
from pages.metrics import JOB_KEY

from .studio_helpers import Studio, button, errors, studio_session
from .test_review_store import add_offspring, new_run

PAGE = "pages/metrics.py"
COMPUTE_TIMEOUT = 240.0  # first embedder load (~7 s) plus metrics and probes on a busy 2-core machine


@pytest.fixture
def studio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Studio]:
    yield from studio_session(tmp_path, monkeypatch)


def demo_with_runs(studio: Studio) -> tuple[AppTest, Store]:
    """The demo project (60 seeds, 100 held out) with two runs of 6 spam and 6 ham each, on the Metrics page."""
    at = studio.app()
    at.run()
    store = studio.workspace().store(DEMO_PROJECT)
    for run_id, spam, ham in (("r1", "WINNER! Claim prize {i} now, txt WIN to 8000{i}",
                               "Running late, see you at the cafe at {i} pm"),
                              ("r2", "Free ringtone offer {i}: reply STOP to end, 150p/msg",
                               "Can you pick up milk on the way home? {i} pints")):
        new_run(store, run_id)
        add_offspring(store, run_id, "spam", [spam.format(i=i) for i in range(6)])
        add_offspring(store, run_id, "ham", [ham.format(i=i) for i in range(6)])
    return studio.open_page(PAGE, at), store


def ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not errors(at), errors(at)


def charts(at: AppTest) -> int:
    return len(at.get("plotly_chart"))


def compute(studio: Studio, at: AppTest, store: Store) -> None:
    """Press Compute, wait for the background job, then redraw (AppTest does not tick the progress fragment)."""
    at.button(key="metrics_compute").click().run()
    ok(at)
    job = studio.workspace().evaluations.job(store)
    assert job is not None
    if job.snapshot().active:  # the page returned at once and draws the job's progress
        assert at.button(key="metrics_compute").disabled
        assert at.button(key="metrics_cancel") and at.get("progress")
    assert job.wait(COMPUTE_TIMEOUT)
    at.run()
    ok(at)


def provenance(at: AppTest) -> pd.DataFrame:
    return next(d.value for d in at.dataframe if "params" in d.value.columns)


def test_compute_shows_both_runs_and_later_draws_read_the_cache(studio: Studio) -> None:
    at, store = demo_with_runs(studio)
    ok(at)
    assert at.multiselect(key=f"metrics_runs:{DEMO_PROJECT}").value == ["r2", "r1"]  # the newest two
    assert any("press **Compute**" in i.value for i in at.info) and charts(at) == 0
    at.multiselect(key="metrics_modes").set_value(["synthetic", "mixed"])
    at.number_input(key="metrics_mix_ratio").set_value(0.5)
    at.text_input(key="metrics_sizes").input("2, 4")
    at.run()
    ok(at)
    assert any("0 of 12 result(s)" in c.value for c in at.caption)  # real: 2; per run: metrics, 2 modes, 2 sizes
    assert store.evaluations().empty  # drawing computes nothing

    compute(studio, at, store)
    assert any("Computed 12 result(s)" in s.value for s in at.success)
    table = at.dataframe[0].value
    assert list(table["subject"]) == ["real seeds", "r2 · genetic", "r1 · genetic"]
    assert {"APS", "CMD", "self_BLEU", "distinct_2", "macro-F1 real logistic", "macro-F1 synthetic logistic",
            "micro-F1 mixed logistic ×0.5"} <= set(table.columns)
    assert table["macro-F1 synthetic logistic"].iloc[1:].between(0, 1).all()
    assert charts(at) == 6  # bars, labels, lengths, CMD per label, scale curve, confusion
    assert len(store.evaluations()) == 12 and provenance(at)["from cache"].all()  # the job cached, the page read

    # the next draw, and a fresh session, read the same results from the cache: nothing is recomputed
    at.run()
    ok(at)
    assert not at.success  # the job's outcome is shown once
    assert len(store.evaluations()) == 12 and provenance(at)["from cache"].all()
    assert at.button(key="metrics_compute").disabled
    assert any("12 of 12 result(s)" in c.value for c in at.caption)
    fresh = studio.open_page(PAGE)
    ok(fresh)
    assert list(fresh.dataframe[0].value["subject"]) == ["real seeds", "r2 · genetic", "r1 · genetic"]
    assert any("6 of 6 result(s)" in c.value for c in fresh.caption)  # default settings: no mixed, no curve
    assert charts(fresh) == 5 and len(store.evaluations()) == 12
    # a setting never computed shows what is cached (the metrics) and offers to compute the rest
    fresh.selectbox(key="metrics_trainer").set_value("finetune").run()
    ok(fresh)
    assert any("3 of 6 result(s)" in c.value for c in fresh.caption)
    assert not fresh.button(key="metrics_compute").disabled and len(store.evaluations()) == 12


def test_a_run_with_nothing_kept_is_named_not_a_crash(studio: Studio) -> None:
    at, store = demo_with_runs(studio)
    new_run(store, "empty")
    add_offspring(store, "empty", "spam", ["I'm sorry, I cannot write that."], "refusal")
    at.multiselect(key=f"metrics_runs:{DEMO_PROJECT}").set_value(["empty", "r1"])
    at.checkbox(key="metrics_real").uncheck()
    at.run()
    ok(at)
    assert [w.value for w in at.warning] == ["empty · genetic: metrics: empty has no samples to measure"]
    assert any("0 of 2 result(s)" in c.value for c in at.caption)  # r1: metrics and F1; nothing for "empty"


def test_without_heldout_data_the_page_says_so_and_an_upload_adds_it(studio: Studio) -> None:
    at = studio.app()
    at.run()
    seeds = pd.DataFrame({"text": ["Lunch at noon?", "See you at the station", "WIN a prize now", "Claim cash, call"],
                          "label": ["ham", "ham", "spam", "spam"]})
    studio.workspace().create_project(ProjectSpec(name="mini", task="SMS spam detection"),
                                      [Label(name="ham"), Label(name="spam")], seeds, source="inline")
    at.session_state["project"] = "mini"
    at = studio.open_page(PAGE, at)
    ok(at)
    assert any("no held-out real data" in w.value for w in at.warning)
    assert at.checkbox(key="metrics_downstream").disabled

    csv = b"message,category\nDinner tonight?,ham\nWIN a prize now,spam\n\"Free entry, txt GO\",spam\nOn my way,ham\n"
    at.file_uploader(key="metrics_heldout_upload").set_value(("test.csv", csv, "text/csv")).run()
    ok(at)
    assert at.selectbox(key="metrics_heldout_text").value == "message"
    button(at, "Add 4 held-out example(s)").click().run()
    ok(at)
    # "WIN a prize now" is a seed: a test text the generator saw would flatter F1
    assert any("Added 3 of 4 held-out example(s) from test.csv" in s.value for s in at.success)
    store = studio.workspace().store("mini")
    assert store.heldout_counts() == {"ham": 2, "spam": 1}
    assert not any("no held-out real data" in w.value for w in at.warning)
    assert any("scored on **3** held-out real examples" in c.value for c in at.caption)
    assert not at.checkbox(key="metrics_downstream").disabled


def test_the_project_page_holds_out_a_fraction_for_evaluation(studio: Studio) -> None:
    at = studio.open_page("pages/project.py")
    rows = [f"{i},Meet at the cafe at {i} pm?,ham" for i in range(10)] + \
           [f"{i + 10},WIN prize number {i}: call now,spam" for i in range(10)]
    at.file_uploader(key="upload").set_value(("sms.csv", ("id,text,label\n" + "\n".join(rows)).encode(), "text/csv"))
    at.run()
    ok(at)
    assert at.slider(key="new_heldout").value == 0.2
    assert any("16 seed(s) for the generator, 4 held out for evaluation (ham 2, spam 2)" in c.value
               for c in at.caption)
    at.slider(key="new_heldout").set_value(0.3).run()
    assert any("14 seed(s) for the generator, 6 held out" in c.value for c in at.caption)
    at.text_input(key="new_name").input("held")
    at.text_input(key="new_task").input("SMS spam detection")
    button(at, "Create project").click().run()
    ok(at)
    assert any("Created and opened **held** (14 examples, 6 held out for evaluation)" in s.value for s in at.success)
    store = studio.workspace().store("held")
    assert store.real_counts() == {"ham": 7, "spam": 7} and store.heldout_counts() == {"ham": 3, "spam": 3}
    assert not set(store.heldout()["text"]) & set(store.real_examples()["text"])
    labels = at.dataframe[0].value
    assert dict(zip(labels["label"], labels["held out"], strict=True)) == {"ham": 3, "spam": 3}


def test_a_running_job_shows_progress_cancels_and_a_failure_is_a_message(studio: Studio) -> None:
    at, store = demo_with_runs(studio)
    release, reached = threading.Event(), threading.Event()

    def slow(ev: Evaluator, progress: ProgressFn) -> Evaluation:
        progress(0.25, "training")
        reached.set()
        assert release.wait(COMPUTE_TIMEOUT)
        return ev.metrics(REAL)

    evaluations = studio.workspace().evaluations
    job = evaluations.start(store, [JobStep("real seeds: metrics", slow),
                                    JobStep("r1: metrics", lambda ev, progress: ev.metrics("r1"))])
    assert reached.wait(COMPUTE_TIMEOUT)
    at.session_state[JOB_KEY] = job.id  # as if this session had pressed Compute
    at.run()
    ok(at)
    assert at.button(key="metrics_compute").disabled  # one evaluation per project at a time
    assert at.get("progress")[0].proto.text == "Step 1 of 2: real seeds: metrics · training"
    at.button(key="metrics_cancel").click().run()
    ok(at)
    assert any("Cancelling after this step" in c.value for c in at.caption)
    release.set()
    assert job.wait(COMPUTE_TIMEOUT)
    at.run()
    ok(at)
    assert any(i.value.startswith("Cancelled after 1 of 2 step(s). Computed 1 result(s)") for i in at.info)
    assert list(store.evaluations()["subject"]) == [REAL] and not at.button(key="metrics_compute").disabled

    def broken(ev: Evaluator, progress: ProgressFn) -> Evaluation:
        raise DatagenError("the endpoint went away")

    job = evaluations.start(store, [JobStep("r2: metrics", broken)])
    assert job.wait(COMPUTE_TIMEOUT)
    at.session_state[JOB_KEY] = job.id
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == ["r2: metrics: the endpoint went away (Computed 0 result(s) in "
                                           f"{job.snapshot().seconds:.1f} s. Compute tries the rest again.)"]
