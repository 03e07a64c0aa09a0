"""The Evolve page in AppTest: start a run on the loopback server, watch its cards, pause, resume, stop."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from datagen_core.config import Label, LLMConfig, ProjectSpec
from datagen_core.demo import DEMO_PROJECT
from datagen_core.jobs import RunJob
from datagen_core.store import SampleFilter, Store

from .loopback_server import LoopbackServer
from .studio_helpers import Studio, studio_session

PAGE = "pages/evolve.py"
TIMEOUT = 120.0


@pytest.fixture
def studio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Studio]:
    yield from studio_session(tmp_path, monkeypatch)


def unescaped(at: AppTest) -> list[str]:
    """Markdown on the page with the page's escaping undone, to compare with stored texts."""
    return [re.sub(r"\\(.)", r"\1", m.value) for m in at.markdown]


def open_evolve(studio: Studio, llm: LLMConfig, project: str | None = None) -> AppTest:
    at = studio.app()
    at.session_state["llm_config"] = llm
    if project is not None:
        at.session_state["project"] = project
    return studio.open_page(PAGE, at)


def start(at: AppTest, per_label: int, in_flight: int | None = None) -> None:
    at.number_input(key="evolve_per_label").set_value(per_label)
    if in_flight is not None:
        at.number_input(key="evolve_in_flight").set_value(in_flight)
    at.button(key="FormSubmitter:evolve_new_run-Start run").click().run()
    assert not at.exception, [e.value for e in at.exception]


def only_job(studio: Studio, store: Store) -> RunJob:
    (job,) = studio.workspace().runs.jobs(store)
    return job


def test_start_a_run_and_see_offspring_with_both_parents_and_the_gene_split(studio: Studio) -> None:
    with LoopbackServer(latency_s=0.02) as server:
        llm = LLMConfig(backend="openai", base_url=server.base_url, model="loopback")
        at = open_evolve(studio, llm)
        assert "Start run" in [b.label for b in at.button]
        at.multiselect(key="evolve_labels").set_value(["spam"])
        start(at, per_label=4)
        store = studio.workspace().store(DEMO_PROJECT)
        job = only_job(studio, store)
        assert job.wait(TIMEOUT)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    (run,) = store.runs()
    assert run.status == "completed" and run.config.labels == ("spam",) and run.config.per_label == 4
    assert run.llm["model"] == "loopback" and not run.config.worked_example  # a real model needs no example
    assert at.selectbox(key="evolve_run").value == run.id
    assert [p.value for p in at.get("progress")] == [100]
    assert any("4/4 kept" in p.proto.text for p in at.get("progress"))
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Job"] == "completed" and metrics["LLM calls"] == "4" and metrics["Retries"] == "0"

    offspring = store.sample_page(SampleFilter(run_ids=(run.id,), include_filtered=True))
    assert len(offspring) == 4
    shown = unescaped(at)
    for row in offspring.itertuples():
        assert any(m.startswith(f"**#{row.id}** · spam") for m in shown)
        assert f"> {row.text}" in shown
        parents = store.samples_by_ids(list(row.parent_ids)).set_index("id")
        for parent_id in row.parent_ids:
            assert f"> {parents.loc[parent_id, 'text'].strip()}" in shown  # both parents' texts, in full
        split = json.loads(row.gene_split)
        line = (f"From parent 1: {', '.join(f'`{g}`' for g in split['parent1'])} · From parent 2: "
                f"{', '.join(f'`{g}`' for g in split['parent2'])} · Mutated: "
                f"{', '.join(f'`{g}`' for g in split['mutated'])}")
        assert line in shown
    captions = [c.value for c in at.caption]
    first = offspring.iloc[0]
    split = json.loads(first["gene_split"])
    assert any(c.startswith(f"Parent 1 · #{first['parent_ids'][0]} · real · gives") and split["parent1"][0] in c
               for c in captions)


def test_pause_resume_and_stop_from_the_page(studio: Studio) -> None:
    with LoopbackServer(latency_s=0.1) as server:
        llm = LLMConfig(backend="openai", base_url=server.base_url, model="loopback")
        at = open_evolve(studio, llm)
        start(at, per_label=60, in_flight=2)
        store = studio.workspace().store(DEMO_PROJECT)
        job = only_job(studio, store)
        (run,) = store.runs()
        deadline = time.monotonic() + TIMEOUT
        while sum(store.kept_counts(run.id).values()) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        at.run()
        assert not at.button(key="evolve_pause").disabled and at.button(key="evolve_resume").disabled

        at.button(key="evolve_pause").click().run()
        assert job.wait(TIMEOUT) and job.snapshot().state == "paused"
        at.run()
        assert store.run(run.id).status == "interrupted"
        assert at.button(key="evolve_pause").disabled and not at.button(key="evolve_resume").disabled
        assert {m.label: m.value for m in at.metric}["Job"] == "paused"
        paused_at = sum(store.kept_counts(run.id).values())

        at.button(key="evolve_resume").click().run()
        assert not at.exception, [e.value for e in at.exception]
        assert job.snapshot().active
        while sum(store.kept_counts(run.id).values()) <= paused_at:
            assert time.monotonic() < deadline
            time.sleep(0.05)

        at.button(key="evolve_stop").click().run()
        assert any("for good" in w.value for w in at.warning)
        at.button(key="evolve_stop_yes").click().run()
        assert job.wait(TIMEOUT)
        at.run()
    assert job.snapshot().state == "stopped" and store.run(run.id).status == "stopped"
    assert 0 < sum(store.kept_counts(run.id).values()) < 120
    for key in ("evolve_pause", "evolve_resume", "evolve_stop"):
        assert at.button(key=key).disabled, key
    assert {m.label: m.value for m in at.metric}["Job"] == "stopped"


def test_no_genes_and_a_dead_endpoint_are_clear_messages(studio: Studio) -> None:
    dead = LLMConfig(backend="openai", base_url="http://127.0.0.1:9/v1", model="loopback", max_retries=0)
    at = open_evolve(studio, dead)
    workspace = studio.workspace()
    examples = pd.DataFrame({"text": ["hi there", "see you", "WIN cash", "free prize"],
                             "label": ["ham", "ham", "spam", "spam"]})
    workspace.create_project(ProjectSpec(name="bare", task="spam"), [Label(name="ham"), Label(name="spam")],
                             examples, None)
    at.session_state["project"] = "bare"
    at.run()
    assert any("no genes yet" in w.value for w in at.warning)
    start(at, per_label=2)
    assert any("no genes" in e.value for e in at.error)
    assert workspace.store("bare").runs() == []

    at.session_state["project"] = DEMO_PROJECT
    at.run()
    start(at, per_label=2)
    store = workspace.store(DEMO_PROJECT)
    job = only_job(studio, store)
    assert job.wait(TIMEOUT)
    at.run()
    (run,) = store.runs()
    assert store.run(run.id).status == "failed"
    errors = [e.value for e in at.error]
    assert any("cannot reach the LLM endpoint http://127.0.0.1:9/v1" in e for e in errors), errors
    assert {m.label: m.value for m in at.metric}["Job"] == "failed"
    assert not at.button(key="evolve_resume").disabled  # a failed run may be retried, e.g. after fixing the URL


def test_a_few_shot_run_shows_the_examples_it_was_given(studio: Studio) -> None:
    with LoopbackServer(latency_s=0.02) as server:
        llm = LLMConfig(backend="openai", base_url=server.base_url, model="loopback")
        at = open_evolve(studio, llm)
        at.selectbox(key="evolve_method").set_value("few_shot")
        at.number_input(key="evolve_shots").set_value(3)
        at.multiselect(key="evolve_labels").set_value(["ham"])
        start(at, per_label=3)
        store = studio.workspace().store(DEMO_PROJECT)
        assert only_job(studio, store).wait(TIMEOUT)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    (run,) = store.runs()
    assert run.status == "completed" and run.method == "few_shot" and run.config.few_shot.k == 3
    offspring = store.sample_page(SampleFilter(run_ids=(run.id,)))
    real_ham = set(store.real_examples("ham")["id"])
    captions = [c.value for c in at.caption]
    assert any(c.startswith("Few-shot · model loopback · 3 examples per call") for c in captions)
    for row in offspring.itertuples():
        assert len(row.parent_ids) == 3 and set(row.parent_ids) <= real_ham  # real examples of its own label
        assert any(c.startswith(f"Example 3 · #{row.parent_ids[2]} · real") for c in captions)
